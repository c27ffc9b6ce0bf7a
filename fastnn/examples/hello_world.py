"""The "hello world" of deep learning: a 784-500-500-10 network (the lecture's Keras
example) trained on Fashion-MNIST.

    fastnn-hello-world                                     # defaults: ReLU, Adam, 10 epochs
    python -m fastnn.examples.hello_world                  # the same
    python -m fastnn.examples.hello_world --activation sigmoid --optimizer sgd \\
        --learning-rate 0.1 --batch-size 100 --epochs 20   # the lecture's original

It uses the full data set when it is installed (Debian's dataset-fashion-mnist,
$FASTNN_DATA, ~/.fastnn/datasets, or --data PATH) and otherwise the small subset that ships
inside fastnn, and says which. It never downloads unless asked (--download).
"""
import argparse
import sys
import time

import numpy as np

import fastnn as fn
from fastnn import datasets


def load(which, path, download):
    """(x_train, y_train), (x_test, y_test) scaled to [0, 1], and a description."""
    if which == "small":
        data, label = datasets.load_fashion_mnist(subset="small"), "the shipped subset"
    else:
        try:
            data = datasets.load_fashion_mnist(path=path, download=download)
            label = "the full set"
        except datasets.DatasetNotFoundError as e:
            if which == "full":
                raise SystemExit(str(e))
            data, label = datasets.load_fashion_mnist(subset="small"), \
                "the shipped subset (the full set was not found; install Debian's " \
                "dataset-fashion-mnist or pass --data)"
    (xtr, ytr), (xte, yte) = data
    return (datasets.prepare_images(xtr), ytr.astype(np.int64),
            datasets.prepare_images(xte), yte.astype(np.int64), label)


def build(hidden, activation, dropout, l2, dtype):
    layers = []
    reg = fn.regularizers.l2(l2) if l2 > 0 else None
    init = "he_uniform" if activation in ("relu", "leaky_relu") else "glorot_uniform"
    for i, units in enumerate(hidden):
        layers.append(fn.layers.Dense(units, activation=activation, kernel_initializer=init,
                                      kernel_regularizer=reg,
                                      input_dim=784 if i == 0 else None))
        if dropout > 0:
            layers.append(fn.layers.Dropout(dropout))
    layers.append(fn.layers.Dense(10, activation="softmax"))
    return fn.Sequential(layers, dtype=dtype)


def make_optimizer(name, lr, cosine_steps):
    defaults = {"sgd": 0.1, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.01,
                "rmsprop": 0.001, "adam": 0.001, "adamw": 0.001}
    lr = defaults[name] if lr is None else lr
    if cosine_steps:
        lr = fn.optimizers.schedules.CosineDecay(lr, cosine_steps)
    if name == "sgd":
        return fn.optimizers.SGD(lr)
    if name in ("momentum", "nesterov"):
        return fn.optimizers.SGD(lr, momentum=0.9, nesterov=name == "nesterov")
    return {"adagrad": fn.optimizers.Adagrad, "rmsprop": fn.optimizers.RMSprop,
            "adam": fn.optimizers.Adam, "adamw": fn.optimizers.AdamW}[name](lr)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastnn.examples.hello_world",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--hidden", default="500,500",
                   help="hidden layer widths, comma-separated (default 500,500)")
    p.add_argument("--activation", default="relu",
                   choices=["sigmoid", "tanh", "relu", "leaky_relu"])
    p.add_argument("--optimizer", default="adam",
                   choices=["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam",
                            "adamw"])
    p.add_argument("--learning-rate", type=float, default=None,
                   help="default: 0.1 for sgd, 0.01 for momentum/nesterov/adagrad, "
                        "0.001 otherwise")
    p.add_argument("--cosine", action="store_true",
                   help="decay the learning rate to 0 over the run (cosine schedule)")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--l2", type=float, default=0.0)
    p.add_argument("--loss", default="sparse_categorical_crossentropy",
                   choices=["sparse_categorical_crossentropy", "categorical_crossentropy",
                            "mse"])
    p.add_argument("--data", default="auto", choices=["auto", "full", "small"],
                   help="auto: the full set when installed, else the shipped subset")
    p.add_argument("--data-path", default=None, help="directory with the IDX files")
    p.add_argument("--download", action="store_true",
                   help="download the full set if it is not installed")
    p.add_argument("--validation-split", type=float, default=0.0)
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2])
    args = p.parse_args(argv)

    if args.threads is not None:
        fn.set_num_threads(args.threads)
    fn.set_seed(args.seed)
    xtr, ytr, xte, yte, label = load(args.data, args.data_path, args.download)
    print(f"Fashion-MNIST: {label}: {len(xtr):,} training and {len(xte):,} test images")
    hidden = [int(h) for h in args.hidden.split(",") if h]
    model = build(hidden, args.activation, args.dropout, args.l2, args.dtype)
    steps = args.epochs * -(-int(len(xtr) * (1 - args.validation_split)) // args.batch_size)
    model.compile(loss=args.loss,
                  optimizer=make_optimizer(args.optimizer, args.learning_rate,
                                           steps if args.cosine else 0),
                  metrics=["accuracy"])
    if args.loss != "sparse_categorical_crossentropy":
        ytr_fit, yte_fit = datasets.to_categorical(ytr, 10), datasets.to_categorical(yte, 10)
    else:
        ytr_fit, yte_fit = ytr, yte
    print(f"Network 784-{'-'.join(map(str, hidden))}-10, {args.activation}, "
          f"{args.optimizer}, {args.loss}, batch {args.batch_size}, {args.epochs} epochs, "
          f"{model.count_params():,} parameters, {args.dtype}, "
          f"{fn.get_num_threads()} threads")
    start = time.perf_counter()
    history = model.fit(xtr, ytr_fit, batch_size=args.batch_size, epochs=args.epochs,
                        validation_split=args.validation_split, verbose=args.verbose)
    train_time = time.perf_counter() - start
    loss, acc = model.evaluate(xte, yte_fit, batch_size=1024)
    rates = history.samples_per_second or [0]
    print(f"test accuracy: {acc:.4f}  test loss: {loss:.4f}")
    print(f"wall time: {train_time:.1f} s training ({args.epochs} epochs), "
          f"{float(np.median(rates)):,.0f} training samples/s (median over epochs)")
    return acc


def cli():
    """Entry point of the `fastnn-hello-world` command: exit status 0 on success."""
    return 0 if main() is not None else 1


if __name__ == "__main__":
    sys.exit(cli())
