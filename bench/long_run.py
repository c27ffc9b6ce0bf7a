"""--long: several full epochs, without resets, for the slow drift.

The short cases reset weights and optimizer state before every sample (from the same
initial weights), so they never reach the state of a long training run. There, dead
ReLU units and saturated sigmoids leave gradients and Adam's moments decaying into
subnormal floats, which the CPU handles far more slowly (PERF-NOTES: a step of the small
model went from 0.80 to 1.51 ms within 4,000 steps). This run trains each implementation
for several epochs on the real Fashion-MNIST (random data of the same shape when it is
not installed, which shows much less of the effect), each in its own worker process
(worker.py), epoch by epoch interleaved, and reports each epoch's samples/s and the share of subnormal values in the optimizer state.
Nobody flushes subnormals to zero here: not NumPy, not PyTorch (its default), and not
fastnn unless its kernels do so themselves.
"""
import time

import numpy as np

import timing


def load_data(dtype):
    """(x, y, source): the real Fashion-MNIST train set if installed, else random."""
    try:
        from fastnn import datasets
        (xr, yr), _ = datasets.load_fashion_mnist(download=False)
        return (datasets.prepare_images(xr, dtype=dtype), yr.astype(np.int64),
                "Fashion-MNIST (real)")
    except Exception:
        rng = np.random.default_rng(0)
        return (rng.random((60000, 784), dtype=np.dtype(dtype).type),
                rng.integers(0, 10, 60000, dtype=np.int64),
                "random 60000x784 (Fashion-MNIST not installed)")


def subnormal_share(arrays):
    """Fraction of the values in arrays that are subnormal (0 < |v| < tiny)."""
    total = hits = 0
    for a in arrays:
        a = np.asarray(a)
        if a.size == 0:
            continue
        tiny = np.finfo(a.dtype).tiny
        mag = np.abs(a)
        hits += int(np.count_nonzero((mag > 0) & (mag < tiny)))
        total += a.size
    return hits / total if total else 0.0


def _state_arrays(name, impl):
    if name == "fastnn":
        state = impl.model.optimizer.variables()
        return [impl.model.parameter_store.params] + [v for k, v in state.items() if k != "iterations"]
    if name == "numpy":
        return impl.W + impl.b + impl.m + impl.v
    import torch
    out = [p.detach().numpy() for p in impl.model.parameters()]
    for st in impl.opt.state.values():
        out += [v.numpy() for v in st.values() if torch.is_tensor(v) and v.dim() > 0]
    return out


# The implementations of the long run: {name shown: worker implementation}.
IMPLS = {"fastnn": "fastnn-fit", "numpy": "numpy", "torch-fused": "torch-fused"}


def one_epoch(name, impl, x, y, batch):
    """One full epoch of `impl` (in its worker process, worker.Runner.long_epoch), no
    reset before it: {samples_per_second, subnormal_share}."""
    if name == "fastnn":
        sps = impl.model.fit(x, y, batch_size=batch, epochs=1, verbose=0) \
            .samples_per_second[-1]
    else:
        steps = x.shape[0] // batch
        sps = steps * batch / impl.train_steps(x, y, batch, steps)
    return {"samples_per_second": sps,
            "subnormal_share": subnormal_share(_state_arrays(name, impl))}


def run_long(net, dtype, batch, epochs, threads, names, workers):
    """names: the IMPLS to run, each in its worker (from driver.Workers `workers`),
    epoch by epoch interleaved."""
    ws = {name: workers.get(IMPLS[name], threads, dtype) for name in names}
    source = None
    for w in ws.values():
        source = w.call("long_prepare", net.key, batch)
    rows = []
    for epoch in range(epochs):
        row = {"epoch": epoch + 1}
        for name, w in ws.items():
            time.sleep(timing.SWITCH_SETTLE)     # let the previous worker's pool idle
            row[name] = w.call("long_epoch")
        rows.append(row)
    drift = {name: rows[-1][name]["samples_per_second"] / rows[0][name]["samples_per_second"]
             for name in ws}
    return {"net": net.name, "dtype": str(np.dtype(dtype)), "batch": batch,
            "threads": threads, "data": source, "epochs": rows,
            "last_over_first": drift, "reset_between_epochs": False}


def format_long(r):
    names = list(r["last_over_first"])
    lines = [f"long run: {r['net']} {r['dtype']} batch {r['batch']}, {r['threads']} "
             f"threads, {r['data']}; no reset between epochs",
             f"  {'epoch':>10}" + "".join(f"{n + ' samples/s':>24}" for n in names)
             + "".join(f"{n + ' subnormal':>22}" for n in names)]
    for row in r["epochs"]:
        lines.append(f"  {row['epoch']:>10}"
                     + "".join(f"{row[n]['samples_per_second']:>24,.0f}" for n in names)
                     + "".join(f"{row[n]['subnormal_share']:>22.2%}" for n in names))
    lines.append(f"  {'last/first':>10}" + "".join(f"{r['last_over_first'][n]:>24.2f}"
                                                   for n in names))
    return "\n".join(lines)
