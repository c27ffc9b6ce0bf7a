"""Timing: interleaved repeats and robust summaries.

The machine drifts (up to ~1.8x within minutes) and is shared, so every comparison is
made inside one run: each round runs every implementation once, in the same order
(A B C ... A B C ...), and a ratio is the median of the per-round ratios, whose spread
is reported too. Before each sample the implementation is reset to its initial state
(untimed) and the thread pools get a short pause to go idle.
"""
import time

import numpy as np

SETTLE = 0.01    # s of idle time before each sample: lets BLAS/OpenMP pools stop spinning


def summarize(samples):
    """median, min, max, quartiles of a list of numbers (None when it is empty)."""
    if not samples:
        return None
    a = np.asarray(samples, float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median": float(med), "min": float(a.min()), "max": float(a.max()),
            "q1": float(q1), "q3": float(q3), "n": int(a.size),
            "samples": [float(s) for s in a]}


def ratio(num, den):
    """Summary of the per-round ratios num[i] / den[i] of two interleaved series."""
    if not num or not den:
        return None
    return summarize([a / b for a, b in zip(num, den)])


def interleave(samplers, rounds, settle=SETTLE):
    """samplers: {name: callable() -> one measurement}. Runs `rounds` rounds of every
    sampler once; returns {name: [measurement per round]}. A sampler that raises is
    dropped, its error kept in the result under '_errors'."""
    out = {name: [] for name in samplers}
    errors = {}
    for _ in range(rounds):
        for name, sample in samplers.items():
            if name in errors:
                continue
            time.sleep(settle)
            try:
                out[name].append(sample())
            except Exception as exc:       # keep the run going; report it
                errors[name] = f"{type(exc).__name__}: {exc}"
    for name in errors:
        out.pop(name, None)
    out["_errors"] = errors
    return out


def calibrate_steps(run, seconds, min_steps=3, max_steps=None, probe=4):
    """How many steps make one sample last about `seconds`: one untimed warm-up call
    (it allocates whatever the first steps allocate), then a timed probe."""
    run(min(probe, max_steps or probe))
    t = run(min(probe, max_steps or probe)) / min(probe, max_steps or probe)
    steps = max(min_steps, int(round(seconds / max(t, 1e-9))))
    return min(steps, max_steps) if max_steps else steps


def latency_sample(call, seconds, min_calls=20):
    """Median latency (s) of single calls for about `seconds`, each timed alone."""
    times = []
    deadline = time.perf_counter() + seconds
    while len(times) < min_calls or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times))
