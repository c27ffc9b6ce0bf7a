"""MonitorCallback: the one base of the callbacks that watch a logged value (EarlyStopping,
ReduceLROnPlateau, ModelCheckpoint), in Keras 3's shape."""
import math

import pytest

import fastnn as fn

MonitorCallback = fn.callbacks.MonitorCallback


@pytest.mark.parametrize("cls", [fn.callbacks.EarlyStopping, fn.callbacks.ReduceLROnPlateau,
                                 fn.callbacks.ModelCheckpoint])
def test_the_monitoring_callbacks_share_the_base(cls):
    assert issubclass(cls, MonitorCallback)
    args = ("ckpt.fnn",) if cls is fn.callbacks.ModelCheckpoint else ()
    assert cls(*args, monitor="val_accuracy").mode == "max"
    assert cls(*args, monitor="val_loss").mode == "min"
    with pytest.raises(ValueError, match=rf"{cls.__name__}: mode must be 'auto', 'min' or "
                                         r"'max', got 'up'"):
        cls(*args, mode="up")


@pytest.mark.parametrize("monitor,mode", [("loss", "min"), ("val_mae", "min"),
                                          ("accuracy", "max"), ("val_sparse_categorical_"
                                                                "accuracy", "max"),
                                          ("val_auc", "max")])
def test_auto_mode_from_the_name(monitor, mode):
    assert MonitorCallback(monitor).mode == mode


def test_is_improvement_by_more_than_min_delta():
    low = MonitorCallback("val_loss", "min", min_delta=0.1)
    assert low._is_improvement(0.0, None)          # nothing to beat yet
    assert low._is_improvement(0.89, 1.0)
    assert not low._is_improvement(0.9, 1.0)       # exactly min_delta is not more
    assert not low._is_improvement(1.5, 1.0)
    assert not low._is_improvement(math.nan, 1.0)
    high = MonitorCallback("val_accuracy", "auto", min_delta=0.0)
    assert high._is_improvement(0.51, 0.5) and not high._is_improvement(0.5, 0.5)


def test_a_missing_value_warns_with_what_is_logged():
    class Watch(MonitorCallback):
        def on_epoch_end(self, epoch, logs=None):
            self.seen = self._monitored_value(logs)
    cb = Watch("val_loss")
    with pytest.warns(UserWarning, match=r"Watch: metric 'val_loss' is not available; "
                                         r"available: \['loss'\]"):
        cb.on_epoch_end(0, {"loss": 1.0})
    assert cb.seen is None
    cb.on_epoch_end(1, {"val_loss": 0.5})
    assert cb.seen == 0.5
