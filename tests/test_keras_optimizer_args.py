"""Keras 2 and Keras 3 optimizer arguments fastnn's signatures do not list."""
import numpy as np
import pytest

import fastnn as fn

O = fn.optimizers


@pytest.mark.parametrize("cls", [O.RMSprop, O.Adagrad, O.Adadelta, O.Adam, O.Adamax,
                                 O.Nadam])
def test_keras2_epsilon_none_is_the_backend_epsilon(cls):
    with pytest.warns(DeprecationWarning, match="use epsilon=1e-7"):
        opt = cls(lr=0.01, epsilon=None)
    assert opt.epsilon == 1e-7


def test_nadam_schedule_decay_names_its_replacement():
    with pytest.raises(ValueError, match="schedule_decay .* removed in Keras 3"):
        O.Nadam(lr=0.002, schedule_decay=0.004)


def test_adam_weight_decay_is_adamw():
    def trajectory(opt):
        w = np.linspace(-1, 1, 7)
        opt.build(w, np.array([0, 7]))
        for k in range(3):
            opt.apply(w, np.cos(w + k))
        return w
    np.testing.assert_array_equal(trajectory(O.Adam(0.01, weight_decay=0.1)),
                                  trajectory(O.AdamW(0.01, weight_decay=0.1)))
    assert O.Adam(weight_decay=0.1).get_config()["weight_decay"] == 0.1
    assert O.from_config(O.Adam(weight_decay=0.1).get_config()).weight_decay == 0.1


def test_keras3_base_arguments_at_neutral_values_are_accepted():
    opt = O.SGD(0.1, weight_decay=None, use_ema=False, ema_momentum=0.99,
                ema_overwrite_frequency=None, loss_scale_factor=None,
                gradient_accumulation_steps=None, name="sgd")
    assert opt.learning_rate == 0.1


@pytest.mark.parametrize("kwargs, match", [
    ({"weight_decay": 0.1}, r"SGD: weight_decay=0.1 is not supported .* AdamW"),
    ({"use_ema": True}, r"SGD: use_ema=True is not supported"),
    ({"gradient_accumulation_steps": 4}, r"gradient_accumulation_steps=4 is not supported"),
    ({"loss_scale_factor": 128.0}, r"loss_scale_factor=128.0 is not supported"),
    ({"name": "mine"}, r"name='mine' is not supported"),
])
def test_keras3_base_arguments_fastnn_cannot_do_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        O.SGD(0.1, **kwargs)
