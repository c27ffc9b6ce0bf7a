"""Plots of a training run, for people who would rather look than read. Needs matplotlib
(``pip install fastnn[plot]``); without it these functions raise an ImportError that says
so. Files are PNG; nothing is shown on screen (the Agg backend), so they work on servers.
"""
import os

import numpy as np


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("fastnn.plot needs matplotlib, which is not installed; install it "
                          "with: pip install 'fastnn[plot]' (or pip install matplotlib)"
                          ) from None
    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    return plt


def _history_dict(history):
    h = getattr(history, "history", history)
    if not isinstance(h, dict) or "loss" not in h:
        raise ValueError("plot: expected the History returned by fit() (with 'loss')")
    return h


def history(history, path):
    """Loss and each metric per epoch, training vs validation, one panel each. Returns
    the path written."""
    h = _history_dict(history)
    plt = _pyplot()
    names = [k for k in h if not k.startswith("val_") and k not in
             ("grad_norm", "update_ratio", "learning_rate")
             and np.isscalar(h[k][0])]
    fig, axes = plt.subplots(1, len(names), figsize=(5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        epochs = np.arange(1, len(h[name]) + 1)
        ax.plot(epochs, h[name], "o-", label="training")
        if "val_" + name in h:
            ax.plot(epochs, h["val_" + name], "s-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return path


def gradients(history, path):
    """Per-layer gradient norms over epochs on a log scale (needs GradientMonitor or
    fit(monitor_gradients=True)). Returns the path written."""
    h = _history_dict(history)
    if "grad_norm" not in h:
        raise ValueError("plot.gradients: the history has no gradient norms; train with "
                         "fit(..., monitor_gradients=True) or fn.callbacks.GradientMonitor()")
    plt = _pyplot()
    layers = list(h["grad_norm"][0])
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(h["grad_norm"]) + 1)
    for name in layers:
        ax.semilogy(epochs, [e[name] for e in h["grad_norm"]], "o-", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("gradient norm (log scale)")
    ax.set_title("gradient norm per layer (input layer first)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100)
    plt.close(fig)
    return path
