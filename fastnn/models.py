"""Sequential: a stack of layers, trained by minibatch gradient descent.

The parameters live in a fastnn.parameters.ParameterStore (one flat array for all
parameters, one for all gradients; each layer's W and b are views into them), and the
training step is fastnn.engine.train_step (gather -> forward -> loss -> backward ->
finiteness -> one fused optimizer update). This module holds the structure (layers,
build, weights, summary, get_config/from_config, compile, pickling); fit / evaluate /
predict come from fastnn.training.Trainer, which Sequential inherits.
"""
import collections
import numbers
import threading

import numpy as np

from fastnn import _random, _threads
from fastnn import _validation as v
from fastnn import layers as layers_module, losses, metrics as metrics_module
from fastnn import optimizers, parameters, saving, training
from fastnn.saving import load_model   # noqa: F401 - Keras's keras.models.load_model


@saving.register_model_class
class Sequential(training.Trainer):
    """A linear stack of layers (Keras's Sequential).

    Sequential([Dense(500, activation="sigmoid", input_dim=784), Dense(10, "softmax")],
               dtype="float32")
    dtype is 'float32' (default) or 'float64'; inputs of another dtype are converted once
    per call, not per batch.
    """

    def __init__(self, layers=None, dtype=None, name="sequential", trainable=True):
        # An fn.Input(dtype='float64') chooses the dtype of a model made without one.
        self._dtype_given = dtype is not None
        if dtype is None:
            dtype = "float32"
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"Sequential: dtype must be 'float32' or 'float64', got "
                            f"{dtype!r}") from None
        if dt not in (np.float32, np.float64):
            raise ValueError(f"Sequential: dtype must be 'float32' or 'float64', got {dt}")
        self.dtype = dt
        self.name = name
        self.layers = []
        self.built = False
        self.compiled = False
        self.loss = self.optimizer = None
        self.metrics = []
        self.stop_training = False
        self.history = None
        self.seed = None
        # Epochs trained so far, over all fit calls: each epoch's shuffle and dropout masks
        # derive from (seed, this counter), so fit(2) + fit(2) == fit(4), and a model
        # saved after 2 epochs and loaded elsewhere continues exactly.
        self.epochs_trained = 0
        self._version = 0
        self._train_cache = collections.OrderedDict()
        self._local = threading.local()
        self._train_lock = threading.Lock()
        self._input_layer = None     # an fn.Input given first (not part of self.layers)
        self._input_shape = None     # the shape of one sample, fixed by build
        self._submodels = []         # nested models: (model, first layer, end) in self.layers
        self._parent = None          # the model this one is nested in
        self._trainable = True
        self.parameter_store = None  # fastnn.parameters.ParameterStore, made by build
        self._optimizer_buffer = None     # (optimizer, the parameter buffer it was built on)
        self._stateful = []          # (index, layer) of layers with state updated per step
        self._step_ws = None         # the workspace of the last training forward/backward
        self._distribute = None      # the fastnn.distributed strategy of the last fit
        if layers is not None:
            if isinstance(layers, (layers_module.Layer, Sequential)):
                layers = [layers]
            if not isinstance(layers, (list, tuple)):
                raise TypeError(f"Sequential: layers must be a list of fn.layers layers, got "
                                f"{type(layers).__name__}")
            for layer in layers:
                self.add(layer)
        if trainable is not True:
            self.trainable = trainable     # (Keras's argument: sets every layer's flag)

    # ---------------------------------------------------------------- structure --
    def add(self, layer, rebuild=True):
        """Append a layer: an fn.layers layer, an fn.Input (first only), or another
        Sequential, whose layers and weights are then shared with this model (see
        ``_add_model``). On a built model (Keras 3's add(layer, rebuild=True)) the model is
        rebuilt at once with a new parameter buffer, the existing layers keeping their
        weights; a compiled model stays compiled, as after pop(): its optimizer continues on
        the new buffer with its step count, its moments restarting since the set of weights
        changed (compile again for other settings). rebuild=False leaves the model unbuilt
        until the next build/fit."""
        if not isinstance(rebuild, bool):
            raise TypeError(f"Sequential.add: rebuild must be True or False, got "
                            f"{rebuild!r}")
        if isinstance(layer, Sequential):
            self._add_model(layer, rebuild)
            return
        if not isinstance(layer, layers_module.Layer):
            raise TypeError(f"Sequential.add: expected a fn.layers layer, got {layer!r}")
        self._check_can_change("add")
        if isinstance(layer, layers_module.InputLayer):
            if self.layers or self._input_layer is not None:
                raise ValueError(f"Sequential.add: an Input must be the first element of a "
                                 f"model; model {self.name!r} already has "
                                 f"{'an Input' if self._input_layer else 'layers'}")
            self._input_layer = layer
            if not self._dtype_given and layer.dtype in ("float32", "float64"):
                self.dtype = np.dtype(layer.dtype)
            return
        if any(layer is other for other in self.layers):
            raise ValueError(f"Sequential.add: layer {layer.name!r} is already in the model")
        shape = self._unbuild()
        self.layers.append(layer)
        layer._model = self
        self._rebuild(shape, rebuild)

    def _unbuild(self):
        """Before a layer is added: mark a built model unbuilt; returns the sample shape
        it was built for (None if it was not built)."""
        shape = self._input_shape if self.built else None
        self.built = False
        return shape

    def _rebuild(self, shape, rebuild):
        """After a layer is added: rebuild a model that was built for ``shape``."""
        if rebuild and shape is not None:
            self._build(shape)

    def _build_if_declared(self):
        """Build now if the input shape is known (a layer's weights were asked for)."""
        if not self.built and self.layers and self._known_input_shape() is not None:
            self.build()

    def _add_model(self, model, rebuild=True):
        """Nest a Sequential: its layers join this model's list (``model.layers`` shows them
        in place; ``get_layer(name)`` finds the nested model by its name too). One flat
        buffer per model still holds every parameter: when this model is built, the nested
        layers' current weights are copied into it and the nested model is pointed at the
        contiguous part of it its layers use, so both models see, train and save the same
        weights (a nested model that was compiled keeps its optimizer state)."""
        self._check_can_change("add")
        if model is self:
            raise ValueError("Sequential.add: a model cannot contain itself")
        if model._parent is not None:
            raise ValueError(f"Sequential.add: model {model.name!r} is already nested in "
                             f"model {model._parent.name!r}")
        if model.dtype != self.dtype:
            raise ValueError(f"Sequential.add: model {model.name!r} is {model.dtype.name} but "
                             f"this model is {self.dtype.name}; both must have one dtype")
        if not model.layers:
            raise ValueError(f"Sequential.add: model {model.name!r} has no layers")
        for layer in model.layers:
            if any(layer is other for other in self.layers):
                raise ValueError(f"Sequential.add: layer {layer.name!r} is already in the "
                                 f"model")
        if not self.layers and self._input_layer is None:
            if model._input_layer is not None:
                self._input_layer = model._input_layer
            elif model.built:
                self._input_layer = layers_module.InputLayer(shape=model._input_shape)
        shape = self._unbuild()
        start = len(self.layers)
        self.layers.extend(model.layers)
        self._submodels.append((model, start, len(self.layers)))
        model._parent = self
        for layer in model.layers:
            layer._model = self
        self._rebuild(shape, rebuild)

    def _check_can_change(self, what):
        if self._parent is not None:
            raise ValueError(f"Sequential.{what}: model {self.name!r} is nested in model "
                             f"{self._parent.name!r}; change that model instead")

    def get_layer(self, name=None, index=None):
        """A layer by its name or its index in ``model.layers`` (Keras's get_layer; a nested
        model is found by its name too)."""
        if index is not None and name is not None:
            raise ValueError(f"Provide only a layer name or a layer index. Received: "
                             f"index={index}, name={name}.")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                raise TypeError(f"get_layer: index must be an integer, got {index!r}")
            if not -len(self.layers) <= index < len(self.layers):
                raise ValueError(f"Was asked to retrieve layer at index {index} but model "
                                 f"only has {len(self.layers)} layers.")
            return self.layers[index]
        if name is not None:
            for item in self.layers + [sub for sub, _, _ in self._submodels]:
                if item.name == name:
                    return item
            for sub, _, _ in self._submodels:
                try:
                    return sub.get_layer(name)
                except ValueError:
                    pass
            raise ValueError(f"No such layer: {name}. Existing layers are: "
                             f"{[layer.name for layer in self.layers]}.")
        raise ValueError("Provide either a layer name or layer index at `get_layer`.")

    def pop(self, rebuild=True):
        """Remove the last layer (a nested model as a whole) and return it. A built model
        is rebuilt at once (unless rebuild=False) keeping the other layers' weights; a
        compiled one stays compiled (its optimizer restarts its moments, since the set of
        weights changed, and keeps its step count)."""
        self._check_can_change("pop")
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        if self._submodels and self._submodels[-1][2] == len(self.layers):
            removed, start, _ = self._submodels.pop()
            del self.layers[start:]
            removed._parent = None
        else:
            removed = self.layers.pop()
        for layer in getattr(removed, "layers", [removed]):
            layer._model = None
        shape, self.built = self._input_shape, False
        if rebuild and self.layers and shape is not None:
            self._build(shape)
        return removed

    @property
    def input_dim(self):
        """The number of input features (the product of the input shape)."""
        if self.built:
            return self.layers[0].input_dim
        shape = self._known_input_shape()
        return None if shape is None else int(np.prod(shape))

    @property
    def input_shape(self):
        """(None, d1, ...): Keras's input shape, the batch dimension first."""
        shape = self._input_shape if self.built else self._known_input_shape()
        if shape is None:
            raise ValueError(f"Sequential model '{self.name}' has no defined input shape "
                             f"yet.")
        return (None, *shape)

    @property
    def output_dim(self):
        return self.layers[-1].units if self.built else None

    @property
    def output_shape(self):
        if not self.built:
            raise ValueError(f"Sequential model '{self.name}' has no defined output shape "
                             f"yet.")
        return (None, self.output_dim)

    def _known_input_shape(self, flat_ok=True):
        """The sample shape the model declares (an Input, or the first layer's input_shape,
        or, when flat_ok, its input_dim); None if it declares none."""
        if self._input_layer is not None:
            return self._input_layer.shape
        if not self.layers:
            return None
        first = self.layers[0]
        if first.input_shape is not None:
            return first.input_shape
        if flat_ok and first.input_dim is not None:
            return (first.input_dim,)
        return None

    def build(self, input_shape=None):
        """Fix every shape and initialize the weights (from the model's seed).

        input_shape: needed only when the model declares no input (no fn.Input, no
        input_dim/input_shape on its first layer; fit() passes the data's shape): the
        number of input features, or Keras's batch shape (None, d1, ...).
        """
        if self.built:
            return
        if input_shape is None:
            self._build(None)
        elif isinstance(input_shape, (tuple, list)):
            if len(input_shape) < 2:
                raise ValueError(f"Sequential.build: input_shape is a batch shape (None, "
                                 f"features, ...) as in Keras, got {tuple(input_shape)!r}; "
                                 f"for n features use build(n) or build((None, n))")
            self._build(layers_module._sample_shape("Sequential.build", "input_shape",
                                                    tuple(input_shape[1:])))
        else:
            self._build((v.positive_int("input_dim", input_shape),))

    def _build(self, shape):
        """build() for the sample shape ``shape`` (a tuple, or None: the declared one)."""
        if not self.layers:
            raise ValueError("Sequential.build: the model has no layers")
        declared = self._known_input_shape()
        if declared is not None and shape is not None and tuple(shape) != declared and \
                (self._known_input_shape(flat_ok=False) is not None or
                 int(np.prod(shape)) != declared[0]):
            raise ValueError(f"Sequential.build: the model's input shape is {declared}, "
                             f"cannot build it for samples of shape {tuple(shape)}")
        shape = tuple(shape) if shape is not None else declared
        if shape is None:
            raise ValueError("Sequential.build: the input width is unknown; give the first "
                             "layer input_dim=..., or call build(input_dim)/fit(x, y)")
        first = self.layers[0]
        if len(shape) > 1 and not first._takes_nd_input:
            raise ValueError(f"Sequential.build: samples of shape {shape} need "
                             f"fn.layers.Flatten() as the first layer (layer {first.name!r} "
                             f"takes flat (features,) samples)")
        dim = int(np.prod(shape))
        _threads.ensure_default()
        for layer in self.layers:
            if layer._bound_params is not None and layer.input_dim != dim:
                raise ValueError(f"Sequential.build: layer {layer.name!r} was built for "
                                 f"{layer.input_dim} input features but gets {dim} here")
            dim = layer.build(dim)
        if self.seed is None:      # (a loaded model comes with its seed)
            self.seed = _random.new_model_seed()
        self._input_shape = shape
        self._allocate_parameters()
        self.built = True
        self._version += 1
        if self.compiled:
            self._finish_compile()

    def _allocate_parameters(self):
        self.parameter_store = parameters.ParameterStore.allocate(self.layers, self.dtype,
                                                                  self.seed)
        self._index_layers()
        self._share_with_submodels()

    def _index_layers(self):
        self._dropout_layers = [(i, layer) for i, layer in enumerate(self.layers)
                                if isinstance(layer, layers_module.Dropout)]
        self._stateful = [(i, layer) for i, layer in enumerate(self.layers)
                          if type(layer).update_state is not layers_module.Layer.update_state]

    def _share_with_submodels(self):
        """Point each nested model at the part of this model's buffers its layers use
        (contiguous, since its layers are), so that it predicts, trains and saves the very
        weights this model has."""
        if not self._submodels:
            return
        seg = np.cumsum([0] + [len(layer.param_specs()) for layer in self.layers])
        for sub, start, stop in self._submodels:
            sub._adopt_parameters(self.parameter_store.part(seg[start], seg[stop]), self)

    def _adopt_parameters(self, store, outer):
        """Use ``store``, views of the enclosing model ``outer``'s buffers, as this model's
        own."""
        self.parameter_store = store
        if not self.built:
            self.seed = outer.seed if self.seed is None else self.seed
            self._input_shape = self._known_input_shape() or (self.layers[0].input_dim,)
            self.built = True
        self._index_layers()
        self._version += 1
        self._train_cache.clear()
        if self.compiled:
            self._finish_compile()
        self._share_with_submodels()

    @property
    def trainable(self):
        """Setting it sets every layer's trainable flag (Keras's rule: takes effect at the
        next compile)."""
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"Sequential: trainable must be True or False, got {value!r}")
        self._trainable = bool(value)
        for layer in self.layers:
            layer.trainable = bool(value)

    def count_params(self):
        self._require_built("count_params")
        return sum(layer.count_params() for layer in self.layers)

    def summary(self, print_fn=print):
        """Print each layer's type, output shape and parameter count, and the totals."""
        self._require_built("summary")
        rows = [(f"{layer.name} ({type(layer).__name__})", f"(None, {layer.units})",
                 f"{layer.count_params():,}") for layer in self.layers]
        w0 = max(len("Layer (type)"), *(len(r[0]) for r in rows)) + 2
        w1 = max(len("Output Shape"), *(len(r[1]) for r in rows)) + 2
        line = "=" * (w0 + w1 + 12)
        shape = ", ".join(str(d) for d in self._input_shape)
        out = [f'Model: "{self.name}" ({self.dtype.name}, input (None, {shape}))', line,
               f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}Param #", line]
        out += [f"{a:<{w0}}{b:<{w1}}{c}" for a, b, c in rows]
        total = self.count_params()
        trainable = sum(w.size for w in self.trainable_weights)
        out += [line, f"Total params: {total:,} "
                      f"({total * self.dtype.itemsize / 1024:,.1f} KiB)",
                f"Trainable params: {trainable:,}",
                f"Non-trainable params: {total - trainable:,}", line]
        print_fn("\n".join(out))

    def get_config(self):
        """The architecture as plain data, in Keras's layout: {"name", "dtype", "trainable",
        "layers": [{"class_name", "config"}, ...], "build_input_shape": [None, d1, ...]}
        (the last once the input shape is known). A nested model appears as its layers."""
        entries = []
        if self._input_layer is not None:
            entries.append({"class_name": "InputLayer",
                            "config": self._input_layer.get_config()})
        entries += [{"class_name": type(layer).__name__, "config": layer.get_config()}
                    for layer in self.layers]
        config = {"name": self.name, "dtype": self.dtype.name, "trainable": self.trainable,
                  "layers": entries}
        shape = self._input_shape if self.built else self._known_input_shape()
        if shape is not None:
            config["build_input_shape"] = [None, *shape]
        return config

    @classmethod
    def from_config(cls, config):
        """A new model (new layers, fresh weights; built if the input shape is given) from
        ``get_config()`` output."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise TypeError(f"Sequential.from_config: expected a dict with a 'layers' list "
                            f"(from get_config()), got {type(config).__name__}")
        model = cls(dtype=config.get("dtype"), name=config.get("name", "sequential"))
        for i, entry in enumerate(config["layers"]):
            if not isinstance(entry, dict) or not isinstance(entry.get("class_name"), str) \
                    or not isinstance(entry.get("config"), dict):
                raise TypeError(f"Sequential.from_config: layers[{i}] must be a dict "
                                f"{{'class_name': str, 'config': dict}}, got {entry!r}")
            if entry["class_name"] == "InputLayer":
                model.add(layers_module.InputLayer(**entry["config"]))
            else:
                model.add(layers_module.from_config(entry["class_name"], entry["config"]))
        if config.get("trainable") is False:
            model._trainable = False
        if config.get("build_input_shape") is not None:
            model.build(config["build_input_shape"])
        return model

    # ------------------------------------------------------------------ weights --
    def get_weights(self):
        """Copies of the weights: [W0, b0, W1, b1, ...], W of shape (inputs, units); each
        layer's in its get_weights() order (batch normalization: gamma, beta, moving_mean,
        moving_variance)."""
        self._require_built("get_weights")
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Set the weights from a list shaped like get_weights() (values are copied)."""
        self._require_built("set_weights")
        layers_module.assign_weights("set_weights", self.weights, weights, self.dtype)

    @property
    def weights(self):
        """Live views of every weight, in get_weights() order."""
        self._require_built("weights")
        return [w for layer in self.layers for w in layer.weights]

    @property
    def trainable_weights(self):
        """Live views of the weights fit updates (changing them changes the model)."""
        self._require_built("trainable_weights")
        return [w for layer in self.layers for w in layer.trainable_weights]

    @property
    def non_trainable_weights(self):
        """Live views of the weights fit leaves alone: frozen layers' and moving
        statistics."""
        self._require_built("non_trainable_weights")
        return [w for layer in self.layers for w in layer.non_trainable_weights]

    # ------------------------------------------------------------------ compile --
    def compile(self, optimizer="rmsprop", loss=None, metrics=None):
        """Choose the loss, the optimizer and the metrics (Keras's names).

        loss: a name ('mse', 'mae', 'huber', 'categorical_crossentropy', ... see
        fn.losses.LOSSES) or a fn.losses.Loss such as
        SparseCategoricalCrossentropy(from_logits=True). optimizer: a name ('sgd', 'momentum',
        'nesterov', 'adagrad', 'rmsprop', 'adam', 'adamw') or a fn.optimizers object.
        metrics: a list of names ('accuracy', 'mae', 'auc', ... see fn.metrics.NAMES)
        and fn.metrics objects (Precision(thresholds=...), AUC(curve='PR'), ...).
        """
        if loss is None:
            raise ValueError("compile: loss is required, e.g. loss='categorical_crossentropy'")
        loss = losses.get(loss)
        optimizer = optimizers.get(optimizer)
        if metrics is None:
            metrics = []
        if isinstance(metrics, str):
            metrics = [metrics]
        if not isinstance(metrics, (list, tuple)):
            raise TypeError(f"compile: metrics must be a list of names, got {metrics!r}")
        metrics = metrics_module.check_all(metrics, loss)
        if not self.built and self.layers and self._known_input_shape() is not None:
            self.build()
        previous = (self.loss, self.optimizer, list(getattr(self, "_metric_names", [])),
                    self.compiled)
        self.loss, self.optimizer, self._metric_names = loss, optimizer, list(metrics)
        try:
            if self.built:
                self._finish_compile()
        except Exception:
            self.loss, self.optimizer, self._metric_names, self.compiled = previous
            raise
        self.compiled = True

    def _finish_compile(self):
        store = self.parameter_store
        if self._optimizer_buffer is not None and self._optimizer_buffer[0] is \
                self.optimizer and self._optimizer_buffer[1] is not store.params:
            self._move_optimizer()
        last = self.layers[-1]
        self.metrics = [metrics_module.get(m, self.loss, self.output_dim)
                        for m in self._metric_names]
        self._fused = last.output_activation() == self.loss.fuses_with is not None
        self.loss.check_output(last.output_activation())
        for layer in self.layers:
            layer.keep_logits(layer is last and self._fused)
        self.optimizer.build(store.params, store.bounds)
        self._optimizer_buffer = (self.optimizer, store.params)
        store.freeze([f for layer in self.layers for f in layer.spec_trainable()])
        self._version += 1
        self._train_cache.clear()

    def _move_optimizer(self):
        """The parameter buffer changed under a compiled optimizer (pop(), or this model was
        nested and now lives in the enclosing model's buffer): continue with a copy of the
        optimizer built on the new buffer, with its state when the size is unchanged (else
        only its step count)."""
        old, old_buffer = self._optimizer_buffer
        config = old.get_config()
        config["learning_rate"] = old.learning_rate
        try:
            new = optimizers.from_config(config)
        except (TypeError, ValueError, KeyError):
            raise ValueError(f"the weights of model {self.name!r} moved (pop() or nesting) "
                             f"and its optimizer {old!r} cannot be copied to follow them; "
                             f"compile the model again") from None
        store = self.parameter_store
        new.build(store.params, store.bounds)
        state = old.variables()
        if old_buffer.shape != store.params.shape:
            state = {"iterations": state["iterations"]}
        new.set_variables(state)
        self.optimizer = new
        self._optimizer_buffer = (new, store.params)

    def _require_built(self, what):
        if not self.built and self.layers and self._known_input_shape() is not None:
            self.build()
        if not self.built:
            raise ValueError(f"{what}: the model is not built yet; give the first layer "
                             f"input_dim=..., or call build() or fit() first")

    def _require_compiled(self, what):
        if not self.compiled:
            raise ValueError(f"{what}: call model.compile(loss=..., optimizer=...) first")

    # Read-only views of the store, for code written before fastnn.parameters.
    @property
    def _params(self):
        return self.parameter_store.params

    @property
    def _grads(self):
        return self.parameter_store.grads

    @property
    def _bounds(self):
        return self.parameter_store.bounds

    # ------------------------------------------------------------------- saving --
    def save(self, path):
        """Save architecture, weights, dtype, compile settings and optimizer state to one
        file (format: fastnn/saving.py; no pickle). The write is atomic. After a
        data-parallel fit only the chief (rank 0) writes: on the other ranks, which hold
        the same model, it does nothing."""
        if self._writes_files():
            saving.save_model(self, path)

    def save_weights(self, path):
        """Save only the weights (atomically; on the chief only, as save)."""
        if self._writes_files():
            saving.save_weights(self, path)

    def _writes_files(self):
        return self._distribute is None or self._distribute.is_chief

    def load_weights(self, path):
        """Load weights saved from a model of the same architecture."""
        saving.load_weights(self, path)

    def __repr__(self):
        return f"Sequential({self.layers!r}, dtype={self.dtype.name!r})"

    # ----------------------------------------------------------------- pickling --
    def __getstate__(self):
        """What pickle, copy.copy and copy.deepcopy carry: the description and arrays of
        the model file (saving.describe: architecture, dtype, seed, epoch counter,
        weights, compile settings, optimizer state), never locks, thread-locals or
        workspaces (rebuilt lazily). A custom loss or an arbitrary learning-rate callable
        travels as the object itself. An unbuilt model gets its seed here, so the copy
        and the original initialize and train identically."""
        if self.seed is None:
            self.seed = _random.new_model_seed()
        doc, arrays, objects = saving.describe(self, strict=False)
        # The class reference makes unpickling import the module that registered an
        # optimizer class outside fastnn.optimizers (e.g. fastnn.sklearn's Adam).
        return {"doc": doc, "arrays": arrays, "objects": objects,
                "optimizer_class": type(self.optimizer) if self.compiled else None}

    def __setstate__(self, state):
        model = saving.build_model(state["doc"], state["arrays"], state["objects"],
                                   path="<unpickled model>")
        self.__dict__.update(model.__dict__)

    # ------------------------------------------------------------------- export --
    def export(self, filepath, format="onnx", verbose=None, input_signature=None, **kwargs):
        """Export the model for inference outside Python (Keras's name and arguments).

        format: 'onnx' (the only format fastnn writes). The file has one input "input"
        (batch, input_dim) and one output "output" (batch, units) in the model's dtype,
        with a dynamic batch dimension; Dropout is the identity. verbose (None = True)
        prints where the file went; input_signature must be None; opset_version=
        chooses the ONNX opset (default 17). Needs `pip install 'fastnn[onnx]'`.
        See fastnn/export/onnx.py.
        """
        if format != "onnx":
            raise ValueError(f"export: format must be 'onnx' (the only format fastnn "
                             f"writes), got {format!r}")
        self._require_built("export")
        # Imported here: the exporter uses the model, never the reverse, and onnx stays
        # optional (it is imported only when an export runs).
        from fastnn.export import onnx as onnx_export
        onnx_export.export_model(self, filepath, verbose, input_signature, **kwargs)

