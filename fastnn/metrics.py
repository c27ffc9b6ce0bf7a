"""Accuracy metrics, counted by kernels (no per-element Python). Which accuracy 'accuracy'
means follows Keras: sparse labels -> sparse categorical accuracy; binary cross-entropy or
a single output -> binary accuracy (threshold 0.5, counted per entry); otherwise
categorical accuracy (argmax of prediction vs argmax of target). Accuracy is unweighted
(sample and class weights change the loss only).
"""
from fastnn._core import losses as _k

NAMES = {"accuracy", "acc", "categorical_accuracy", "sparse_categorical_accuracy",
         "binary_accuracy"}


class Accuracy:
    def __init__(self, kind, name="accuracy"):
        self.kind = kind          # 'categorical' | 'sparse' | 'binary'
        self.name = name

    def count(self, p, y):
        """(hits, total) for predictions p (n, m) and targets y."""
        if self.kind == "sparse":
            return _k.count_correct_sparse(p, y), p.shape[0]
        if self.kind == "binary":
            return _k.count_correct_binary(p, y), p.shape[0] * p.shape[1]
        return _k.count_correct_onehot(p, y), p.shape[0]


def check(name, loss):
    """ValueError for an unknown metric name or one the loss's targets cannot give."""
    if not isinstance(name, str) or name not in NAMES:
        raise ValueError(f"compile: unknown metric {name!r}; supported: {sorted(NAMES)}")
    if name == "sparse_categorical_accuracy" and loss.target != "sparse":
        raise ValueError("compile: sparse_categorical_accuracy needs integer labels, i.e. "
                         "loss='sparse_categorical_crossentropy'")


def get(name, loss, output_width):
    """The metric object for a metric name (already check()ed) given the compiled loss."""
    if loss.target == "sparse":
        kind = "sparse"
    elif name == "binary_accuracy" or (name in ("accuracy", "acc") and
                                       (loss.target == "binary" or output_width == 1)):
        kind = "binary"
    else:
        kind = "categorical"
    return Accuracy(kind, "accuracy" if name == "acc" else name)


def serialize(metric):
    """What a model file stores for a compiled metric: its name."""
    return metric


def deserialize(doc):
    """The compile() argument a serialize() result stands for."""
    return doc
