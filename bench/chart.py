"""A PNG of the training results (when matplotlib is installed): per network, samples/s
against batch size for every implementation, and below it fastnn's ratios to the best
peer (per round, the faster of PyTorch fused and JAX; with issue 11's goals), to PyTorch's
fused optimizer and to the GEMM-only limit. Points are medians over
the rounds, bars their interquartile range (one disturbed round does not stretch them)."""
import numpy as np

from report import LABELS, TRAIN_GOALS_11

STYLE = {"fastnn-fit": ("C0", "o", "-"), "fastnn-tob": ("C0", "s", ":"),
         "numpy": ("C2", "^", "-"), "torch": ("C3", "v", ":"),
         "torch-fused": ("C3", "D", "-"), "sklearn": ("C4", "x", "-"),
         "jax": ("C1", "P", "-"), "limit": ("k", "", "--")}


def _iqr(pts):
    """Error bars from the median to the quartiles of each point's summary."""
    return np.array([[max(0.0, p[1]["median"] - p[1]["q1"]) for p in pts],
                     [max(0.0, p[1]["q3"] - p[1]["median"]) for p in pts]])


def plot(train, path, dtype, threads):
    try:
        import matplotlib
        import matplotlib.ticker
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    nets = []
    for r in train:
        if r["dtype"] == dtype and r["threads"] == threads and r["net"] not in nets:
            nets.append(r["net"])
    if not nets:
        return None
    fig, axes = plt.subplots(2, len(nets), figsize=(5.2 * len(nets), 8.5), squeeze=False,
                             gridspec_kw={"height_ratios": [3, 2]})
    for col, net in enumerate(nets):
        rs = sorted((r for r in train if r["net"] == net and r["dtype"] == dtype
                     and r["threads"] == threads), key=lambda r: r["batch"])
        ax = axes[0][col]
        for impl, (color, marker, ls) in STYLE.items():
            pts = [(r["batch"], r["samples_per_second"][impl]) for r in rs
                   if impl in r["samples_per_second"]]
            if not pts:
                continue
            b = np.array([p[0] for p in pts])
            med = np.array([p[1]["median"] for p in pts])
            err = _iqr(pts)
            ax.errorbar(b, med, yerr=err, color=color, marker=marker, ls=ls,
                        label=LABELS[impl], capsize=2, lw=1.3, ms=4)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(f"{net} ({rs[0]['optimizer']})\n{dtype}, {threads} thread(s)")
        ax.set_xlabel("batch size")
        ax.set_ylabel("training samples/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        ax = axes[1][col]
        for key, color, label in (("fastnn-fit/best", "C1", "fastnn / best peer"),
                                  ("fastnn-fit/torch-fused", "C3", "fastnn / torch fused"),
                                  ("fastnn-fit/limit", "k", "fastnn / GEMM limit")):
            pts = [(r["batch"], r["ratios"][key]) for r in rs if key in r["ratios"]]
            if not pts:
                continue
            b = np.array([p[0] for p in pts])
            med = np.array([p[1]["median"] for p in pts])
            ax.errorbar(b, med, yerr=_iqr(pts), color=color, marker="o", label=label,
                        capsize=2)
        if net in TRAIN_GOALS_11:
            goals = [(b, g) for b, g in TRAIN_GOALS_11[net]
                     if any(r["batch"] == b for r in rs)]
            ax.plot([b for b, _ in goals], [g for _, g in goals], ls="none",
                    marker="_", ms=22, mew=2, color="C1", alpha=0.6,
                    label="issue-11 goal vs best peer")
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_yscale("log")
        ticks = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8]
        ax.set_yticks(ticks)
        ax.set_yticklabels([f"{t:g}" for t in ticks])
        ax.yaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.set_xscale("log", base=2)
        ax.set_xlabel("batch size")
        ax.set_ylabel("fastnn fit / other (median of rounds)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    batches = sorted({r["batch"] for r in train})
    for ax in axes.flat:
        ax.set_xticks(batches)
        ax.set_xticklabels([str(b) for b in batches])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
