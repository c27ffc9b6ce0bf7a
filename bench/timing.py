"""Timing: interleaved repeats and robust summaries.

The machine drifts (up to ~1.8x within minutes) and is shared, so every comparison is
made inside one run: each round runs every implementation once, in the same order
(A B C ... A B C ...), and a ratio is the median of the per-round ratios, whose spread
is reported too. Before each sample the implementation is reset to its initial state
(untimed) and the thread pools get a pause to go idle (longer when the previous sample
ran in another library's thread pool, see SWITCH_SETTLE).
"""
import time

import numpy as np

SETTLE = 0.01    # s of idle time before each sample
# After work in one thread pool, its idle workers keep spinning for a while (OpenBLAS's
# pthreads ~0.1 s, OpenMP's and XLA's pools similar): with all cores in use, the next
# process's threads then share the cores with them. Measured on 2 cores: scipy's
# OpenBLAS ran its GEMMs 3.5x slower right after NumPy's OpenBLAS, normal after 0.2 s.
# So a sampler that follows one from another pool (another worker process, see
# worker.py) waits SWITCH_SETTLE first (only with more than one thread).
SWITCH_SETTLE = 0.3


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


def ratio_to_best(num, others, lower_is_better=False):
    """Summary of the per-round ratios num[i] / best of others[j][i] (the fastest peer
    of each round: the highest rate, or the lowest time with lower_is_better)."""
    others = [o for o in others if o]
    if not num or not others:
        return None
    pick = min if lower_is_better else max
    return summarize([a / pick(o[i] for o in others) for i, a in enumerate(num)])


def interleave(samplers, rounds, pools=None, switch_settle=SWITCH_SETTLE):
    """samplers: {name: callable() -> one measurement}. Runs `rounds` rounds of every
    sampler once, in order; returns {name: [measurement per round]}. pools: {name: the
    thread pool it runs on}; a change of pool waits switch_settle instead of SETTLE. A
    sampler that raises is dropped, its error kept in the result under '_errors'."""
    pools = pools or {}
    out = {name: [] for name in samplers}
    errors = {}
    previous = None
    for _ in range(rounds):
        for name, sample in samplers.items():
            if name in errors:
                continue
            pool = pools.get(name)
            time.sleep(switch_settle if pool != previous else SETTLE)
            previous = pool
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
