"""--profile: where a fastnn training step spends its time.

Runs the phases of fit's step by calling the model's own internal methods in a loop,
timing each call: gather (the minibatch rows and labels), forward per layer, loss,
backward per layer, the NaN/inf check of the gradients, optimizer update. Next to each
layer's phases it shows the time of the same layer's matrix products alone
(gemm_limit.py), so the difference is what fastnn spends outside BLAS; it compares
the sum of the phases with a whole `fit` step, the difference being fit's per-step
Python bookkeeping; and it times the two bounds a step cannot beat, in the same run:
the GEMMs alone through the same BLAS, and a plain streaming pass over the bytes the
step must move (memory bandwidth, see streaming_bound).

This uses internals (fastnn.engine.train_workspace/batch_loss, Sequential._prepare,
Layer.forward/backward, fastnn._core.ops.gather_*): it times engine.train_step phase by
phase, so it follows engine.py; if the step changes, update it here.
"""
import time
from collections import defaultdict

import numpy as np

from cases import initial_weights, random_data
from fastnn_mlp import FastnnMLP
from gemm_limit import GemmLimit


def _time_phases(model, x, y, batch, steps):
    """{phase: [seconds per step]} over `steps` steps of fit's algorithm."""
    from fastnn import engine
    from fastnn._core import ops as _ops

    xs, ys, sw = model._prepare("profile", x, y)
    ws = engine.train_workspace(model, batch)
    layers = model.layers
    last = len(layers) - 1
    fused = model._fused
    opt = model.optimizer
    pc = time.perf_counter
    rec = defaultdict(list)
    order = np.arange(xs.shape[0], dtype=np.int64)
    for step in range(steps):
        lo = (step * batch) % (xs.shape[0] - batch + 1)
        idx = order[lo:lo + batch]
        t0 = pc()
        _ops.gather_rows(xs, idx, ws.x)
        _ops.gather_values(ys, idx, ws.y)
        rec["gather"].append(pc() - t0)
        h = ws.x
        for i, layer in enumerate(layers):
            ws.inputs[i] = h
            t0 = pc()
            h = layer.forward(h, ws.bufs[i], True, 0)
            rec[f"forward {i}"].append(pc() - t0)
        t0 = pc()
        engine.batch_loss(model, ws, h, ws.y, sw, batch)
        rec["loss"].append(pc() - t0)
        g = ws.grad
        for i in range(last, -1, -1):
            t0 = pc()
            g = layers[i].backward(ws.inputs[i], ws.bufs[i], g, i > 0,
                                   grad_is_dz=(i == last and fused))
            rec[f"backward {i}"].append(pc() - t0)
        t0 = pc()
        _ops.all_finite(model.parameter_store.grads)
        rec["finite check (gradients)"].append(pc() - t0)
        t0 = pc()
        opt.apply(model.parameter_store.params, model.parameter_store.grads)
        rec["optimizer"].append(pc() - t0)
    return rec


def _gemm_times(net, dtype, batch, steps):
    """{'forward i' | 'backward i': seconds per step} of the products alone (a layer's
    backward is its dW and dX products together)."""
    ops = GemmLimit(net, dtype, batch).ops(training=True)
    rec = defaultdict(list)
    for _ in range(steps):
        for label, f in ops:
            t0 = time.perf_counter()
            f()
            rec[label].append(time.perf_counter() - t0)
    out = defaultdict(float)
    for label, times in rec.items():
        out[" ".join(label.split()[:2])] += float(np.mean(times))
    return dict(out)


# Whole-array passes over the parameters a step makes (each pass: one array of n_params
# values read or written): the forward and the backward (dX) read W, the weight gradient
# is written, and Adam reads w, g, m, v and writes w, m, v. With the weight gradient
# fused tile by tile into the update (issue 11), dW is never written nor read back.
STEP_PASSES = {"unfused step (W read twice, dW written, Adam's 7)": 10,
               "dW fused into the update (W read twice, Adam's 6)": 8}


def streaming_bound(net, dtype, repeats=30):
    """The memory-bandwidth bound: a plain streaming pass (np.copyto, one read and one
    write per copy) over the bytes a step must move, on four parameter-sized buffers
    (the step's w, g, m, v: the same working set, so the same cache levels). Returns
    [{what, passes, mbytes, us, gbps}], the median of `repeats` timings each."""
    dt = np.dtype(dtype)
    bufs = [np.full(net.n_params, 1.0, dt) for _ in range(4)]      # pages touched
    order = [(0, 1), (2, 3), (1, 0), (3, 2), (0, 2), (1, 3)]
    out = []
    for what, passes in STEP_PASSES.items():
        copies = [(bufs[a], bufs[b]) for b, a in order[:passes // 2]]
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for dst, src in copies:
                np.copyto(dst, src)
            times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        nbytes = passes * net.n_params * dt.itemsize
        out.append({"what": what, "passes": passes, "mbytes": nbytes / 1e6,
                    "us": sec * 1e6, "gbps": nbytes / sec / 1e9})
    return out


def profile(net, dtype, batch, seconds=1.0):
    """One case's phase table: {"rows": [...], "phases_sum_us": ..., "fit_step_us": ...}."""
    weights = initial_weights(net, dtype)
    rows = max(4096, batch * 8)
    x, y = random_data(rows, net.inputs, dtype)
    impl = FastnnMLP(net, weights, dtype, mode="fit")
    model = impl.model
    # how many steps make about `seconds`
    impl.reset()
    warm = _time_phases(model, x, y, batch, 5)
    per_step = sum(np.mean(v) for v in warm.values())
    steps = int(min(20000, max(20, seconds / max(per_step, 1e-7))))
    # phases and whole fit steps alternate in 3 chunks, so both see the same machine
    rec, fit_us = defaultdict(list), []
    chunk = max(10, steps // 3)
    for _ in range(3):
        impl.reset()
        for phase, times in _time_phases(model, x, y, batch, chunk).items():
            rec[phase] += times
        impl.reset()
        n = min(chunk, rows // batch) * batch
        sps = model.fit(x[:n], y[:n], batch_size=batch, epochs=1,
                        verbose=0).samples_per_second[-1]
        fit_us.append(batch / sps * 1e6)
    steps = 3 * chunk
    gemm = _gemm_times(net, dtype, batch, min(steps, 2000))
    stream = streaming_bound(net, dtype)
    table = []
    for phase, times in rec.items():
        g = gemm.get(phase)
        table.append({"phase": _label(net, phase), "us": float(np.mean(times)) * 1e6,
                      "median_us": float(np.median(times)) * 1e6,
                      "gemm_us": None if g is None else g * 1e6})
    step_us = sum(r["us"] for r in table)
    for r in table:
        r["share"] = r["us"] / step_us
    return {"net": net.name, "dtype": str(np.dtype(dtype)), "batch": batch,
            "steps": steps, "rows": table, "phases_sum_us": step_us,
            "fit_step_us": float(np.median(fit_us)),
            "gemm_sum_us": sum(gemm.values()) * 1e6, "streaming": stream}


def _label(net, phase):
    parts = phase.split()
    if len(parts) == 2 and parts[0] in ("forward", "backward"):
        i = int(parts[1])
        k, m = net.layers[i]
        act = "softmax" if i == len(net.layers) - 1 else net.activation
        return f"{phase} ({k}->{m} {act})"
    return phase


def format_profile(p):
    lines = [f"profile: {p['net']} {p['dtype']} batch {p['batch']} "
             f"({p['steps']} steps; µs per step: mean, median; GEMM-only = the same "
             f"products through scipy's BLAS)",
             f"  {'phase':<32}{'mean µs':>10}{'median':>9}{'share':>8}{'GEMM-only µs':>14}"
             f"{'other µs':>10}"]
    for r in sorted(p["rows"], key=lambda r: -r["us"]):
        g = r["gemm_us"]
        gtxt = f"{g:14.1f}" if g is not None else f"{'':14}"
        otxt = f"{r['us'] - g:10.1f}" if g is not None else f"{'':10}"
        lines.append(f"  {r['phase']:<32}{r['us']:10.1f}{r['median_us']:9.1f}"
                     f"{r['share']:8.1%}{gtxt}{otxt}")
    lines.append(f"  {'sum of phases':<32}{p['phases_sum_us']:10.1f}{'':17}"
                 f"{p['gemm_sum_us']:14.1f}{p['phases_sum_us'] - p['gemm_sum_us']:10.1f}")
    lines.append(f"  {'whole fit step (History)':<32}{p['fit_step_us']:10.1f}"
                 f"   (fit's own per-step work between the phases, measured just after: "
                 f"{p['fit_step_us'] - p['phases_sum_us']:+.1f} µs)")
    lines.append(f"  bounds timed in this run: the GEMMs alone {p['gemm_sum_us']:.1f} µs; a "
                 f"plain streaming pass (np.copyto) over the parameter bytes a step moves:")
    for s in p.get("streaming", []):
        lines.append(f"    {s['what']:<52} {s['passes']:2d} passes = {s['mbytes']:5.1f} MB "
                     f"in {s['us']:8.1f} µs ({s['gbps']:.1f} GB/s)")
    return "\n".join(lines)
