"""ONNX export: a fastnn Sequential as an ONNX inference graph (export_model), and the
fastnn.sklearn estimators as the graphs skl2onnx writes for scikit-learn's own MLPs
(export_estimator, at the end).

    model.export("model.onnx", format="onnx")          # Sequential.export calls export_model
    session = onnxruntime.InferenceSession("model.onnx")
    probs = session.run(None, {"input": x})[0]          # == model.predict(x)

The graph has one input, "input" (batch, *sample shape): (batch, input_dim), or e.g.
(batch, 28, 28) for a model that starts with Flatten — and one output, "output"
(batch, units), both in the model's dtype (float32 or float64); the batch dimension is
symbolic ("batch"), so any number of rows runs. Weights are read through the public
``layer.weights`` views and stored as initializers in the model's dtype. A nested
Sequential needs nothing of its own: its layers are in the outer model's ``layers``.

Each layer class is translated by one function in ``LAYER_EXPORTERS`` (class -> function),
looked up by the layer's exact class: a subclass of Dense may compute something else, so it
is refused rather than exported as a Dense. A new layer becomes exportable by adding
``@exports(TheLayer)`` to a function ``(layer, graph, x) -> output name``.

Opset: 17 by default (``opset_version=`` chooses another, 13 or newer). 17 is the oldest
opset that has every operator the layers can need (LayerNormalization is new in 17), so a
model's file never changes opset because a layer kind was added; and it is ONNX 1.12's
(2022), old enough for the runtimes deployed today, where the newest opset (what
onnx.helper.make_model stamps by default) often is not. 13 is the lowest accepted: Softmax before 13 flattened its input to 2-D
around `axis` (the same here, but not for wider inputs), and ReduceMax / ReduceMean take
their axes as an attribute up to 17 and as an input from 18 (both written, see `_reduce`). The IR
version is the lowest the opset needs, not the installed onnx's newest, for the same
reason.

float64: ONNX Runtime's CPU provider has double kernels for Gemm, Sigmoid, Tanh, Relu,
Softmax, Max, Mul, Reshape and ReduceMax, but none for LeakyRelu at opsets 13 and >= 18
(checked with onnxruntime 1.32), so in float64 leaky ReLU is written as
Max(x, alpha * x), which equals it exactly for 0 < alpha < 1 (what Dense and Activation
enforce). float32 uses the LeakyRelu operator.
The normalization operators (BatchNormalization, LayerNormalization) take epsilon as a
float attribute, a float32: 1e-3 becomes 1e-3 + 4.7e-11, which moves a float64 output by
up to ~2.4e-8 (relative) where the variance is small next to epsilon. In float64 the
layers are therefore written with elementary operators whose constants are double
initializers: BatchNormalization as (x - mean) * scale + beta with scale = gamma /
sqrt(var + epsilon) computed here in float64, LayerNormalization as ReduceMean, Sub, Mul,
Add(epsilon), Sqrt, Div (all with double kernels in ONNX Runtime), the order of operations
fastnn's kernels use. float32 uses the operators (the attribute's rounding is far below
float32's 1e-5).
"""
import numbers
import os

import numpy as np

from fastnn import _atomic, layers as L

DEFAULT_OPSET = 17
MIN_OPSET = 13
_ONNX_MIN_VERSION = (1, 14)
INPUT_NAME = "input"
OUTPUT_NAME = "output"
BATCH_DIM = "batch"


def _import_onnx():
    """The onnx module, or an ImportError that says how to install it."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError("ONNX export needs the onnx package, an optional extra of fastnn: "
                          "pip install 'fastnn[onnx]'") from e
    version = tuple(int(p) for p in onnx.__version__.split(".")[:2] if p.isdigit())
    if version < _ONNX_MIN_VERSION:
        raise ImportError(f"ONNX export needs onnx >= 1.14, found {onnx.__version__}: "
                          f"pip install -U 'fastnn[onnx]'")
    return onnx


def _check_opset(onnx, opset_version):
    if opset_version is None:
        return DEFAULT_OPSET
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset_version, bool) or not isinstance(opset_version, numbers.Integral) \
            or not MIN_OPSET <= opset_version <= newest:
        raise ValueError(f"export: opset_version must be an integer from {MIN_OPSET} to "
                         f"{newest} (the newest the installed onnx knows), got "
                         f"{opset_version!r}")
    return int(opset_version)


class Graph:
    """The ONNX graph being written: nodes, initializers, and unique tensor names.

    dtype is the model's float dtype; every weight is stored in it and every float tensor
    flowing through the graph has it.
    """

    def __init__(self, onnx, dtype, opset):
        self.onnx = onnx
        self.helper = onnx.helper
        self.dtype = np.dtype(dtype)
        self.elem_type = self.helper.np_dtype_to_tensor_dtype(self.dtype)
        self.opset = opset
        self.nodes = []
        self.initializers = []
        self._names = set()

    def name(self, base):
        """A tensor/node name not used yet: base, base_1, base_2, ..."""
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        return name

    def constant(self, base, array):
        """Store array as an initializer (dtype kept as given); returns its name."""
        name = self.name(base)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def weight(self, base, array):
        """Store a weight in the graph's float dtype; returns its name."""
        return self.constant(base, np.asarray(array, dtype=self.dtype))

    def node(self, op_type, inputs, base, domain="", **attributes):
        """Append a node with one output; returns the output's name."""
        out = self.name(base)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out],
                                                name=out, domain=domain, **attributes))
        return out

    def require_opset(self, opset, layer, why):
        if self.opset < opset:
            raise ValueError(f"export: layer {layer.name!r} ({type(layer).__name__}) needs "
                             f"opset_version >= {opset} ({why}); got {self.opset}")


# ------------------------------------------------------------------- the layer table --
LAYER_EXPORTERS = {}


def exports(layer_class):
    """Decorator: register fn(layer, graph, x) -> output name as layer_class's exporter."""
    def register(fn):
        LAYER_EXPORTERS[layer_class] = fn
        return fn
    return register


def activation(graph, x, name, kind, alpha):
    """Apply a fastnn activation ('relu', ...) to tensor x; returns the output's name."""
    if kind == "linear":
        return x
    if kind == "sigmoid":
        return graph.node("Sigmoid", [x], f"{name}/Sigmoid")
    if kind == "tanh":
        return graph.node("Tanh", [x], f"{name}/Tanh")
    if kind == "relu":
        return graph.node("Relu", [x], f"{name}/Relu")
    if kind == "softmax":
        return graph.node("Softmax", [x], f"{name}/Softmax", axis=-1)
    if kind == "leaky_relu":
        if graph.dtype == np.float32:
            return graph.node("LeakyRelu", [x], f"{name}/LeakyRelu", alpha=float(alpha))
        # No double LeakyRelu kernel in ONNX Runtime (module docstring): max(x, alpha x)
        # is the same function for 0 < alpha < 1.
        scaled = graph.node("Mul", [x, graph.weight(f"{name}/alpha", alpha)],
                            f"{name}/alpha_x")
        return graph.node("Max", [x, scaled], f"{name}/LeakyRelu")
    raise ValueError(f"export: activation {kind!r} has no ONNX translation")


def _affine(layer, graph, x):
    """x @ W + b through the layer's public weights ([W] or [W, b])."""
    weights = layer.weights
    inputs = [x, graph.weight(f"{layer.name}/kernel", weights[0])]
    if len(weights) > 1:
        inputs.append(graph.weight(f"{layer.name}/bias", weights[1]))
    return graph.node("Gemm", inputs, f"{layer.name}/Gemm")


def _reduce(graph, op, x, axis, name, keepdims=0):
    """ReduceMax / ReduceMean over one axis (their axes moved to an input in 18)."""
    if graph.opset >= 18:
        axes = graph.constant(f"{name}/axes", np.array([axis], np.int64))
        return graph.node(op, [x, axes], name, keepdims=keepdims)
    return graph.node(op, [x], name, axes=[axis], keepdims=keepdims)


@exports(L.Dense)
def _dense(layer, graph, x):
    return activation(graph, _affine(layer, graph, x), layer.name, layer.activation,
                      layer.alpha)


@exports(L.Maxout)
def _maxout(layer, graph, x):
    # The kernel's layout: column u * pieces + p of z is piece p of unit u, so a row of z
    # reshaped to (units, pieces) has one unit per row. 0 copies the batch dimension
    # (also when it is 0, where -1 would be ambiguous).
    z = _affine(layer, graph, x)
    shape = graph.constant(f"{layer.name}/shape",
                           np.array([0, layer.units, layer.pieces], np.int64))
    grouped = graph.node("Reshape", [z, shape], f"{layer.name}/pieces")
    return _reduce(graph, "ReduceMax", grouped, 2, f"{layer.name}/Max")


@exports(L.Activation)
@exports(L.Softmax)
def _activation_layer(layer, graph, x):
    return activation(graph, x, layer.name, layer.activation, layer.alpha)


@exports(L.Flatten)
def _flatten(layer, graph, x):
    # Row-major, as fastnn's reshape view of the samples: (n, d1, d2, ...) -> (n, d1·d2·...)
    # (a no-op on rows that are flat already).
    return graph.node("Flatten", [x], f"{layer.name}/Flatten", axis=1)


@exports(L.Dropout)
def _dropout(layer, graph, x):
    return x        # the identity at inference


def _normalization_weights(layer):
    """[gamma, beta, *moving statistics] from the layer's public weights, which leave out
    gamma / beta when scale / center is off: then they are 1 and 0, as the layer computes."""
    weights = list(layer.weights)
    gamma = weights.pop(0) if layer.scale else np.ones(layer.input_dim)
    beta = weights.pop(0) if layer.center else np.zeros(layer.input_dim)
    return [gamma, beta] + weights


@exports(L.BatchNormalization)
def _batch_normalization(layer, graph, x):
    # Inference: normalized by the moving statistics.
    gamma, beta, mean, variance = (np.asarray(w, np.float64)
                                   for w in _normalization_weights(layer))
    name = layer.name
    if graph.dtype == np.float64:
        # No float32 epsilon (module docstring): (x - mean) * scale + beta, scale as
        # fastnn's kernel forms it, inv = 1 / sqrt(var + eps) in double, times gamma.
        scale = 1.0 / np.sqrt(variance + layer.epsilon) * gamma
        centered = graph.node("Sub", [x, graph.weight(f"{name}/moving_mean", mean)],
                              f"{name}/centered")
        scaled = graph.node("Mul", [centered, graph.weight(f"{name}/scale", scale)],
                            f"{name}/scaled")
        return graph.node("Add", [scaled, graph.weight(f"{name}/beta", beta)],
                          f"{name}/BatchNormalization")
    names = ("gamma", "beta", "moving_mean", "moving_variance")
    inputs = [x] + [graph.weight(f"{name}/{n}", array) for n, array in
                    zip(names, (gamma, beta, mean, variance))]
    return graph.node("BatchNormalization", inputs, f"{name}/BatchNormalization",
                      epsilon=layer.epsilon)


@exports(L.LayerNormalization)
def _layer_normalization(layer, graph, x):
    gamma, beta = _normalization_weights(layer)
    name = layer.name
    if graph.dtype == np.float64:
        # No float32 epsilon (module docstring); fastnn's order: mean, the centred rows'
        # mean square (the biased variance), (x - mean) / sqrt(var + eps) * gamma + beta.
        mean = _reduce(graph, "ReduceMean", x, -1, f"{name}/mean", keepdims=1)
        centered = graph.node("Sub", [x, mean], f"{name}/centered")
        squares = graph.node("Mul", [centered, centered], f"{name}/squares")
        variance = _reduce(graph, "ReduceMean", squares, -1, f"{name}/variance", keepdims=1)
        shifted = graph.node("Add", [variance, graph.weight(f"{name}/epsilon", layer.epsilon)],
                             f"{name}/variance_epsilon")
        std = graph.node("Sqrt", [shifted], f"{name}/std")
        normalized = graph.node("Div", [centered, std], f"{name}/normalized")
        scaled = graph.node("Mul", [normalized, graph.weight(f"{name}/gamma", gamma)],
                            f"{name}/scaled")
        return graph.node("Add", [scaled, graph.weight(f"{name}/beta", beta)],
                          f"{name}/LayerNormalization")
    graph.require_opset(17, layer, "ONNX has LayerNormalization from opset 17; a float64 "
                                   "model exports it at any opset")
    return graph.node("LayerNormalization",
                      [x, graph.weight(f"{name}/gamma", gamma),
                       graph.weight(f"{name}/beta", beta)],
                      f"{name}/LayerNormalization", axis=-1, epsilon=layer.epsilon)


def layers_graph(layers, graph, x):
    """Translate a list of built layers, in order, starting from tensor x; returns the
    name of the last output."""
    for layer in layers:
        fn = LAYER_EXPORTERS.get(type(layer))
        if fn is None:
            known = ", ".join(sorted(c.__name__ for c in LAYER_EXPORTERS))
            raise ValueError(
                f"export: layer {layer.name!r} ({type(layer).__name__}) cannot be exported "
                f"to ONNX: there is no ONNX translation for {type(layer).__name__} (layers "
                f"are looked up by their exact class, a subclass may compute something "
                f"else); exportable layers: {known}")
        x = fn(layer, graph, x)
    return x


def _describe(model):
    import fastnn
    steps = " -> ".join(repr(layer) for layer in model.layers)
    return (f"fastnn {fastnn.__version__} Sequential {model.name!r} ({model.dtype.name}): "
            f"input (batch, {', '.join(map(str, model.input_shape[1:]))}) -> {steps} -> "
            f"output (batch, {model.output_dim}). Dropout is the identity at inference.")


def name_output(graph, tensor, output):
    """Make tensor available under the graph output name `output`."""
    consumed = any(tensor in node.input for node in graph.nodes)
    for node in graph.nodes:
        if tensor in node.output and not consumed:   # rename rather than copy
            node.output[list(node.output).index(tensor)] = output
            return
    graph.nodes.append(graph.helper.make_node("Identity", [tensor], [output], name=output))


def make_model(graph, inputs, outputs, doc_string, graph_name, opsets=()):
    """The ModelProto: graph, fastnn as producer, the lowest IR version the opsets need."""
    import fastnn
    helper = graph.helper
    opset_imports = [helper.make_opsetid("", graph.opset)] + \
        [helper.make_opsetid(domain, version) for domain, version in opsets]
    proto = helper.make_graph(graph.nodes, graph_name, inputs, outputs,
                              initializer=graph.initializers)
    model = helper.make_model(proto, opset_imports=opset_imports,
                              producer_name="fastnn", producer_version=fastnn.__version__,
                              doc_string=doc_string)
    model.ir_version = helper.find_min_ir_version_for(opset_imports)
    return model


def build_onnx_model(model, opset_version=None):
    """The ONNX ModelProto of a built Sequential (nothing is written)."""
    onnx = _import_onnx()
    graph = Graph(onnx, model.dtype, _check_opset(onnx, opset_version))
    graph.name(INPUT_NAME)
    graph.name(OUTPUT_NAME)
    last = layers_graph(model.layers, graph, INPUT_NAME)
    name_output(graph, last, OUTPUT_NAME)
    helper = graph.helper
    inputs = [helper.make_tensor_value_info(INPUT_NAME, graph.elem_type,
                                            [BATCH_DIM, *model.input_shape[1:]])]
    outputs = [helper.make_tensor_value_info(OUTPUT_NAME, graph.elem_type,
                                             [BATCH_DIM, model.output_dim])]
    return make_model(graph, inputs, outputs, _describe(model), str(model.name))


def write_atomically(onnx_model, filepath):
    """Serialize and write through fastnn._atomic (a temporary file in the target's
    directory, fsync, rename): a reader, or a crash, never sees half a file at filepath."""
    if onnx_model.ByteSize() >= 2**31:
        raise ValueError(f"export: the model is {onnx_model.ByteSize() / 2**30:.1f} GiB; "
                         f"a single ONNX file holds at most 2 GiB (protobuf's limit)")
    data = onnx_model.SerializeToString()
    with _atomic.atomic_write(filepath) as f:
        f.write(data)


def _check_path(filepath):
    if not isinstance(filepath, (str, os.PathLike)):
        raise TypeError(f"export: filepath must be a str or os.PathLike, got "
                        f"{type(filepath).__name__}")
    if os.path.isdir(filepath):
        raise ValueError(f"export: filepath {os.fspath(filepath)!r} is a directory; give "
                         f"the path of the .onnx file to write")


def export_model(model, filepath, verbose=None, input_signature=None, opset_version=None):
    """Write a built Sequential to filepath as ONNX (see the module docstring).

    verbose: print "Saved artifact at ..." (None means True, as in Keras).
    input_signature: must be None: the input is always the model's input_shape
    (batch, ...) in its dtype, with a dynamic batch dimension.
    opset_version: the ONNX opset (default 17, see the module docstring).
    """
    _check_path(filepath)
    if input_signature is not None:
        raise ValueError(f"export: input_signature must be None: a fastnn Sequential has "
                         f"one input, {model.input_shape} in {model.dtype.name}, exported "
                         f"with a dynamic batch dimension; got {input_signature!r}")
    write_atomically(build_onnx_model(model, opset_version), filepath)
    if verbose is None or verbose:
        print(f"Saved artifact at '{os.fspath(filepath)}'.")


# ------------------------------------------------------- scikit-learn estimators --
# The graphs skl2onnx writes for scikit-learn's own MLPClassifier / MLPRegressor (read
# from skl2onnx 1.20's output), so code that serves those serves fastnn's unchanged:
#   classifier, zipmap=True (its default): "output_label" (N,) int64 or string — (N, k)
#     int64 for multi-label — and "output_probability", a sequence of maps
#     class -> float (ai.onnx.ml ZipMap);
#   classifier, zipmap=False: "label" as above and "probabilities" (N, n_classes);
#   regressor: "variable" (N, n_outputs).
# The input is "X" (batch, n_features), as skl2onnx.to_onnx names it, float32 by default
# (FloatTensorType, the usual conversion of a scikit-learn MLP). Labels are int64
# for integer, bool or whole-number float classes (skl2onnx casts those too), strings for
# string classes. The batch dimension is unnamed (None), as in skl2onnx's files. One
# difference, where skl2onnx's file is wrong: a multi-output regressor's "variable" is
# (N, n_outputs), where skl2onnx 1.20 reshapes it to (N * n_outputs, 1).
_ML_DOMAIN = ("ai.onnx.ml", 1)
_ANY_ROWS = None      # skl2onnx leaves the batch dimension unnamed
_ESTIMATOR_OUTPUTS = ("output_label", "output_probability", "label", "probabilities",
                      "variable")
# out_activation_ -> the activation model_ ends with; 'exp' (loss='poisson'): model_ gives
# the log of the prediction (fastnn.sklearn), the graph appends Exp.
_OUT_ACTIVATIONS = {"identity": "linear", "logistic": "sigmoid", "softmax": "softmax",
                    "exp": "linear"}


def _label_values(classes):
    """classes_ as the int64 or string array the label output holds."""
    classes = np.asarray(classes)
    if classes.dtype.kind == "u" and classes.size and int(classes.max()) >= 2**63:
        raise ValueError(f"export: the class {int(classes.max())} does not fit the int64 "
                         f"labels of an ONNX classifier (at most 2^63 - 1); refit with "
                         f"smaller integer or string labels")
    if classes.dtype.kind in "biu":
        return classes.astype(np.int64)
    if classes.dtype.kind == "f" and np.all(np.isfinite(classes)) and \
            np.all(classes == np.round(classes)) and np.all(np.abs(classes) < 2**62):
        return classes.astype(np.int64)
    if classes.dtype.kind in "US" or (classes.dtype.kind == "O" and
                                      all(isinstance(c, str) for c in classes)):
        return classes.astype(object)
    raise ValueError(f"export: the classes {classes.tolist()!r} cannot be ONNX labels: "
                     f"ONNX classifiers (as skl2onnx writes them) label with int64 or "
                     f"strings; refit with integer or string labels")


def _check_out_activation(estimator):
    """model_ must end with out_activation_ (the outputs are read as probabilities or
    values as they come out of it)."""
    wanted = estimator.out_activation_
    last = estimator.model_.layers[-1].output_activation()
    if _OUT_ACTIVATIONS.get(wanted, wanted) != last:
        raise ValueError(f"export: out_activation_ is {wanted!r} but model_ ends with "
                         f"{last!r}; cannot export this estimator")


def _classifier_outputs(estimator, graph, probs, zipmap):
    """Label and probability outputs of a fitted classifier from its probabilities."""
    helper, onnx = graph.helper, graph.onnx
    multilabel = estimator.out_activation_ == "logistic" and estimator.n_outputs_ > 1
    labels = _label_values(estimator.classes_)
    n_columns = len(labels)
    if n_columns == 1:
        # Fitted on one class, a scikit-learn classifier predicts it always and its
        # predict_proba still has 2 columns [1 - p, p] (a binary net's); Gather over the
        # class twice gives the constant label. ZipMap would need a key per column.
        if zipmap:
            raise ValueError(f"export: this classifier was fitted on one class "
                             f"({np.asarray(estimator.classes_).tolist()[0]!r}); its predict_proba has 2 columns "
                             f"for 1 class, which ZipMap cannot key: export it with "
                             f"zipmap=False")
        labels, n_columns = np.repeat(labels, 2), 2
    label_type = onnx.TensorProto.STRING if labels.dtype == object else \
        onnx.TensorProto.INT64
    if multilabel:
        # scikit-learn predicts p > 0.5 per label (LabelBinarizer's threshold).
        half = graph.weight("threshold", np.array(0.5))
        label = graph.node("Cast", [graph.node("Greater", [probs, half], "above")],
                           "label", to=onnx.TensorProto.INT64)
        label_shape = [_ANY_ROWS, estimator.n_outputs_]
    else:
        if estimator.n_outputs_ == 1 and estimator.out_activation_ == "logistic":
            one = graph.weight("one", np.array(1.0))
            # Binary: [1 - p, p]; its argmax is class 1 exactly when p > 0.5 (1 - p is
            # exact for p >= 0.5), scikit-learn's rule.
            probs = graph.node("Concat", [graph.node("Sub", [one, probs], "p0"), probs],
                               "probs", axis=1)
        index = graph.node("ArgMax", [probs], "argmax", axis=1, keepdims=0)
        classes = graph.constant("classes", labels)
        label = graph.node("Gather", [classes, index], "label", axis=0)
        label_shape = [_ANY_ROWS]
    if not zipmap:
        outputs = [("label", label, label_type, label_shape),
                   ("probabilities", probs, graph.elem_type, [_ANY_ROWS, n_columns])]
        return _rename_outputs(graph, outputs), ()
    # ZipMap takes float only: float64 probabilities become float32 here (zipmap=False
    # keeps them in float64).
    if graph.dtype != np.float32:
        probs = graph.node("Cast", [probs], "probs_float", to=onnx.TensorProto.FLOAT)
    keys = {"classlabels_strings": [str(c) for c in labels]} if label_type == \
        onnx.TensorProto.STRING else {"classlabels_int64s": [int(c) for c in labels]}
    graph.nodes.append(helper.make_node("ZipMap", [probs], ["output_probability"],
                                        name="ZipMap", domain=_ML_DOMAIN[0], **keys))
    seq = helper.make_sequence_type_proto(helper.make_map_type_proto(
        label_type, helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, [])))
    outputs = _rename_outputs(graph, [("output_label", label, label_type, label_shape)])
    outputs.append(helper.make_value_info("output_probability", seq))
    return outputs, (_ML_DOMAIN,)


def _rename_outputs(graph, outputs):
    """[(output name, tensor, elem type, shape)] -> value infos, each tensor exposed
    under its (reserved) output name."""
    infos = []
    for name, tensor, elem_type, shape in outputs:
        name_output(graph, tensor, name)
        infos.append(graph.helper.make_tensor_value_info(name, elem_type, shape))
    return infos


def _estimator_doc(estimator):
    import fastnn
    model = estimator.model_
    steps = " -> ".join(repr(layer) for layer in model.layers)
    return (f"fastnn {fastnn.__version__} {type(estimator).__name__} "
            f"(fastnn.sklearn, trained in {model.dtype.name}, out_activation_ "
            f"{estimator.out_activation_!r}): X (batch, {model.input_dim}) -> {steps}. "
            f"Outputs as skl2onnx writes them for scikit-learn's "
            f"{type(estimator).__name__}.")


def export_estimator(estimator, filepath, zipmap=True, dtype="float32", input_name="X",
                     opset_version=None, verbose=False):
    """Write a fitted fastnn.sklearn MLPClassifier or MLPRegressor to filepath as ONNX,
    with the inputs and outputs skl2onnx gives scikit-learn's own estimators (see above).

    zipmap: True (skl2onnx's default) for "output_label" + "output_probability" (a
    sequence of {class: probability} maps), False for "label" + "probabilities" (a
    tensor). Regressors ignore it.
    dtype: the graph's input and arithmetic, 'float32' (default: skl2onnx's
    FloatTensorType, what code serving scikit-learn's MLPs feeds, whatever the training
    data was; a float64 model's weights are rounded to float32) or 'float64'
    (DoubleTensorType; the model's precision when it is float64).
    input_name: "X", as skl2onnx.to_onnx names it. opset_version as for export_model; the
    ai.onnx.ml domain (ZipMap) is at version 1.
    """
    _check_path(filepath)
    if dtype not in ("float32", "float64", np.float32, np.float64):
        raise ValueError(f"export: dtype must be 'float32' or 'float64', got {dtype!r}")
    if not isinstance(zipmap, bool):
        raise TypeError(f"export: zipmap must be True or False, got {zipmap!r}")
    if not isinstance(input_name, str) or not input_name:
        raise TypeError(f"export: input_name must be a non-empty string, got "
                        f"{input_name!r}")
    if input_name in _ESTIMATOR_OUTPUTS:
        raise ValueError(f"export: input_name {input_name!r} is the name of an output")
    from sklearn.utils.validation import check_is_fitted
    check_is_fitted(estimator)
    model = estimator.model_
    _check_out_activation(estimator)
    onnx = _import_onnx()
    graph = Graph(onnx, dtype, _check_opset(onnx, opset_version))
    for name in (input_name,) + _ESTIMATOR_OUTPUTS:     # reserved: no node takes them
        graph.name(name)
    scores = layers_graph(model.layers, graph, input_name)
    if hasattr(estimator, "classes_"):
        outputs, domains = _classifier_outputs(estimator, graph, scores, zipmap)
    else:
        if estimator.out_activation_ == "exp":
            scores = graph.node("Exp", [scores], "exp")
        outputs = _rename_outputs(graph, [("variable", scores, graph.elem_type,
                                           [_ANY_ROWS, estimator.n_outputs_])])
        domains = ()
    inputs = [graph.helper.make_tensor_value_info(input_name, graph.elem_type,
                                                  [_ANY_ROWS, model.input_dim])]
    proto = make_model(graph, inputs, outputs, _estimator_doc(estimator),
                       f"fastnn_{type(estimator).__name__}", domains)
    write_atomically(proto, filepath)
    if verbose:
        print(f"Saved artifact at '{os.fspath(filepath)}'.")
