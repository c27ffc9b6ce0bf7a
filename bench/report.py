"""The printed tables and the issue-11 and issue-6 targets with PASS/FAIL.

Cells show the median over the interleaved rounds and, after ±, half the min-max range
as a share of the median. Ratios are medians of the per-round ratios (both sides timed
in the same round), with their min-max.
"""
from collections import OrderedDict

LABELS = {"fastnn-fit": "fastnn fit", "fastnn-tob": "fastnn tob", "numpy": "NumPy",
          "torch": "torch", "torch-fused": "torch fused", "sklearn": "sklearn",
          "limit": "GEMM limit", "fastnn": "fastnn", "jax": "JAX",
          "onnxruntime": "ONNX Runtime"}

# fastnn-fit/best (per round, the faster of PyTorch fused and JAX) comes first, made
# by run.train_case beside these.
TRAIN_RATIOS = [("fastnn-fit", "jax"), ("fastnn-fit", "torch-fused"),
                ("fastnn-tob", "torch-fused"), ("fastnn-fit", "torch"),
                ("fastnn-fit", "numpy"), ("fastnn-fit", "sklearn"), ("fastnn-fit", "limit")]


def rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f}M"
    if v >= 1e4:
        return f"{v / 1e3:.1f}k"
    if v >= 1e3:
        return f"{v / 1e3:.2f}k"
    return f"{v:.0f}"


def spread(s):
    if not s or s["median"] == 0:
        return ""
    return f"±{(s['max'] - s['min']) / 2 / s['median']:.0%}"


def cell(s, fmt=rate):
    return "-" if s is None else f"{fmt(s['median'])} {spread(s)}"


def ratio_cell(s):
    return "-" if s is None else f"{s['median']:.2f} ({s['min']:.2f}-{s['max']:.2f})"


def load_cell(r):
    """Cores other processes kept busy during the case ('!' from 0.2 on: unreliable)."""
    load = r.get("other_load")
    if load is None:
        return "-"
    return f"{load:.2f}" + (" !" if load >= BUSY else "")


BUSY = 0.2


def ratio_name(a, b):
    short = {"fastnn-fit": "fit", "fastnn-tob": "tob", "torch-fused": "fused",
             "torch": "torch", "numpy": "numpy", "sklearn": "sklearn", "limit": "limit",
             "jax": "jax", "best": "best peer"}
    return f"{short[a]}/{short[b]}"


def _fit(text, width):
    """Right-aligned in width, or left-aligned in -width."""
    return f"{text:<{-width}}" if width < 0 else f"{text:>{width}}"


def _table(header, rows, widths):
    """Columns of the given widths, one space between (a cell wider than its column
    still stays apart from the next)."""
    line = " ".join(_fit(h, w) for h, w in zip(header, widths))
    out = [line, "-" * len(line)]
    out += [" ".join(_fit(c, w) for c, w in zip(r, widths)) for r in rows]
    return out


def train_tables(results):
    groups = OrderedDict()
    for r in results:
        groups.setdefault((r["net"], r["dtype"], r["threads"], r["optimizer"]), []).append(r)
    out = []
    for (net, dtype, threads, opt), rs in groups.items():
        impls = [i for i in LABELS if any(i in r["samples_per_second"] for r in rs)]
        out.append(f"\nTraining throughput, samples/s: {net} {dtype}, {threads} thread(s), "
                   f"{opt}; median ±half-range over {rs[0]['rounds']} interleaved rounds")
        rows = [[str(r["batch"])] + [cell(r["samples_per_second"].get(i)) for i in impls]
                + [load_cell(r)] for r in rs]
        out += _table(["batch"] + [LABELS[i] for i in impls] + ["other load"], rows,
                      [6] + [13] * len(impls) + [12])
        ratios = [(a, b) for a, b in [("fastnn-fit", "best")] + TRAIN_RATIOS
                  if any(f"{a}/{b}" in r["ratios"] for r in rs)]
        rows = [[str(r["batch"])] + [ratio_cell(r["ratios"].get(f"{a}/{b}"))
                                     for a, b in ratios] for r in rs]
        out.append("  ratios (median of per-round ratios, min-max; best peer = per round "
                   "the faster of " + " and ".join(LABELS[p] for p in rs[0].get("peers", []))
                   + "):")
        out += _table(["batch"] + [ratio_name(a, b) for a, b in ratios], rows,
                      [6] + [20] * len(ratios))
        for r in rs:
            for impl, err in r.get("errors", {}).items():
                out.append(f"  batch {r['batch']}: {impl} failed: {err}")
    return out


def predict_table(results):
    if not results:
        return []
    impls = [i for i in ("fastnn", "onnxruntime", "torch", "jax", "numpy", "sklearn",
                         "limit") if any(i in r["latency_us"] for r in results)]
    out = ["\nPredict latency at batch 1 (µs; median of single calls per round, then "
           "median ±half-range over rounds); best peer = per round the fastest of "
           "ONNX Runtime, PyTorch and JAX"]
    rows = [[r["net"], r["dtype"], str(r["threads"])]
            + [cell(r["latency_us"].get(i), lambda v: f"{v:.1f}") for i in impls]
            + [ratio_cell(r["ratios"].get(k)) for k in
               ("latency fastnn/onnxruntime", "latency fastnn/best")] for r in results]
    out += _table(["net", "dtype", "thr"] + [LABELS[i] for i in impls]
                  + ["fastnn/ORT", "fastnn/best peer"], rows,
                  [16, 9, 4] + [14] * len(impls) + [19, 19])
    out.append(f"\nPredict throughput at batch {results[0]['batch_throughput']} "
               f"(samples/s)")
    rows = [[r["net"], r["dtype"], str(r["threads"])]
            + [cell(r["throughput"].get(i)) for i in impls]
            + [ratio_cell(r["ratios"].get(k)) for k in
               ("throughput fastnn/onnxruntime", "throughput fastnn/best")] for r in results]
    out += _table(["net", "dtype", "thr"] + [LABELS[i] for i in impls]
                  + ["fastnn/ORT", "fastnn/best peer"], rows,
                  [16, 9, 4] + [14] * len(impls) + [19, 19])
    for r in results:
        for impl, err in r.get("errors", {}).items():
            out.append(f"  {r['net']}: {impl} failed: {err}")
    return out


def load_table(load, train):
    """The load case; 'lost' compares with the same implementation's rate in the
    training case of this run without the busy process (when it was measured)."""
    if not load:
        return []
    r0 = load[0]
    names = [n for n in r0["samples_per_second"]]
    out = [f"\nBeside one busy-loop process (python -c 'while True: pass'): training "
           f"samples/s, {r0['net']} {r0['dtype']}; impl@threads; (lost: x slower than "
           f"without the busy process, same run)"]
    rows = []
    for r in load:
        quiet = _find(train, net=r["net"], dtype=r["dtype"], threads=r["threads"],
                      batch=r["batch"])
        row = [str(r["batch"])]
        for n in names:
            s = r["samples_per_second"].get(n)
            impl, threads = n.rsplit("@", 1)
            q = quiet and threads == f"{r['threads']}t" and \
                quiet["samples_per_second"].get(impl)
            lost = f" ({q['median'] / s['median']:.1f}x)" if q and s else ""
            row.append(cell(s) + lost)
        row += [ratio_cell(r["ratios"].get(k)) for k in ("fastnn/jax", "fastnn all/1 thread")]
        row.append(load_cell(r))
        rows.append(row)
    out += _table(["batch"] + [n.replace("fastnn-fit", "fastnn") for n in names]
                  + ["fastnn/JAX", "fastnn all/1 thread", "other load"], rows,
                  [6] + [22] * len(names) + [19, 21, 12])
    for r in load:
        for impl, err in r.get("errors", {}).items():
            out.append(f"  batch {r['batch']}: {impl} failed: {err}")
    return out


def memory_table(mem):
    if not mem:
        return []
    mib = 2 ** 20
    out = [f"\nPeak memory (ru_maxrss of a fresh process) training one epoch of "
           f"{mem['net']} {mem['dtype']}, batch {mem['batch']}, on {mem['data']['source']} "
           f"({mem['data']['bytes'] / mib:.0f} MiB)"]
    rows = []
    for impl, m in mem["impls"].items():
        if "error" in m:
            rows.append([LABELS.get(impl, impl), "error: " + m["error"], "", "", ""])
            continue
        rows.append([LABELS.get(impl, impl), f"{m['peak_bytes'] / mib:.0f}",
                     f"{m['imports_bytes'] / mib:.0f}",
                     f"{(m['peak_bytes'] - m['after_load_bytes']) / mib:.0f}",
                     f"{m['seconds']:.1f}"])
    out += _table(["impl", "peak MiB", "imports MiB", "training adds MiB", "epoch s"],
                  rows, [14, 12, 14, 20, 10])
    b = mem["budget"]
    out.append(f"  fastnn budget: data {b['data'] / mib:.0f} + 4 x params "
               f"{b['params4'] / mib:.1f} + batch buffers {b['buffers'] / mib:.1f} + 60 MB "
               f"{b['overhead'] / mib:.1f} = {b['total'] / mib:.0f} MiB")
    return out


# ------------------------------------------------------------------ targets --
def _find(results, **kw):
    for r in results:
        if all(r.get(k) == v for k, v in kw.items()):
            return r
    return None


def _ratio_row(name, case, key, ok, fmt="{:.2f}x"):
    """A target row judged on the median of the per-round ratio case["ratios"][key]."""
    s = None if case is None else case["ratios"].get(key)
    if s is None:
        return {"target": name, "measured": "not measured", "value": None,
                "result": "n/a", "other_load": None}
    return {"target": name, "value": s["median"],
            "measured": f"{fmt.format(s['median'])} "
                        f"({fmt.format(s['min'])}-{fmt.format(s['max'])})",
            "result": "PASS" if ok(s["median"]) else "FAIL",
            "other_load": case.get("other_load")}


# Issue 11's targets: fastnn fit / the best of PyTorch fused and JAX, per batch size.
TRAIN_GOALS_11 = {"784-512-512-10": ((1, 1.2), (8, 1.2), (32, 1.0), (128, 1.0), (512, 0.95)),
                  "784-128-10": ((1, 1.5), (8, 1.3), (32, 1.3), (128, 1.1), (512, 0.9))}


def targets11(train, predict, load, threads, dtype="float32"):
    """[{target, measured, value, result}] for issue 11."""
    rows = []
    for net, goals in TRAIN_GOALS_11.items():
        for batch, goal in goals:
            rows.append(_ratio_row(
                f"train {net} b={batch}: fastnn >= {goal}x best peer",
                _find(train, net=net, dtype=dtype, threads=threads, batch=batch),
                "fastnn-fit/best", lambda v, g=goal: v >= g))
    for net in ("784-512-512-10", "784-128-10"):
        rows.append(_ratio_row(
            f"predict {net} b=1: fastnn latency <= ONNX Runtime's",
            _find(predict, net=net, dtype=dtype, threads=threads),
            "latency fastnn/onnxruntime", lambda v: v <= 1.0))
    for batch in (32, 128, 512):
        case = _find(load, net="784-512-512-10", dtype=dtype, threads=threads, batch=batch)
        rows.append(_ratio_row(f"busy process beside, b={batch}: fastnn >= 0.9x JAX",
                               case, "fastnn/jax", lambda v: v >= 0.9))
        if threads > 1:
            rows.append(_ratio_row(
                f"busy process beside, b={batch}: fastnn {threads} threads >= 1 thread",
                case, "fastnn all/1 thread", lambda v: v >= 1.0))
    return rows


def targets11_table(rows, threads, dtype="float32"):
    out = [f"\nIssue-11 targets: {dtype}, {threads} thread(s); fastnn measured through "
           f"fit; best peer = per round the faster of PyTorch fused and JAX; ratios = "
           f"median (min-max) of per-round ratios; each library in its own process"]
    out += _table(["target", "measured", "result", "other load"],
                  [[r["target"], r["measured"], r["result"], load_cell(r)] for r in rows],
                  [-62, -24, 7, 12])
    if any((r.get("other_load") or 0) >= BUSY for r in rows):
        out.append("  ! other processes kept >= 0.2 cores busy during that case (beyond "
                   "the load case's own busy loop): its numbers (and verdict) are not "
                   "reliable; rerun.")
    return out


def targets(train, predict, mem, threads, dtype="float32", net="784-512-512-10"):
    """[{target, measured, value, result}] for issue 6 (fastnn = fit)."""
    rows = []

    def add(name, case, key, ok, fmt="{:.2f}x"):
        rows.append(_ratio_row(name, case, key, ok, fmt))

    def tr(batch):
        return _find(train, net=net, dtype=dtype, threads=threads, batch=batch)

    for batch, goal in ((1, 2.5), (8, 2.5), (32, 1.3), (128, 1.0), (512, 1.0)):
        add(f"train b={batch}: fastnn >= {goal}x torch fused Adam", tr(batch),
            "fastnn-fit/torch-fused", lambda v, g=goal: v >= g)
    for batch in (32, 128, 512):
        add(f"train b={batch}: fastnn >= 85% of GEMM-only limit", tr(batch),
            "fastnn-fit/limit", lambda v: v >= 0.85, "{:.0%}")
    for pnet in ("784-512-512-10", "784-128-10"):
        note = " *" if pnet == "784-512-512-10" else ""
        add(f"predict b=1 {pnet}: fastnn latency <= 1/3 torch{note}",
            _find(predict, net=pnet, dtype=dtype, threads=threads),
            "latency fastnn/torch", lambda v: v <= 1 / 3)
    add("train b=128: fastnn >= 4x sklearn MLPClassifier", tr(128), "fastnn-fit/sklearn",
        lambda v: v >= 4)
    if mem and "fastnn" in mem["impls"] and "peak_bytes" in mem["impls"]["fastnn"]:
        peak = mem["impls"]["fastnn"]["peak_bytes"]
        budget = mem["budget"]["total"]
        rows.append({"target": "peak memory of training <= budget",
                     "value": peak / budget,
                     "measured": f"{peak / 2**20:.0f} MiB of {budget / 2**20:.0f} MiB "
                                 f"({peak / budget:.0%})",
                     "result": "PASS" if peak <= budget else "FAIL", "other_load": None})
    else:
        rows.append({"target": "peak memory of training <= budget",
                     "measured": "not measured", "value": None, "result": "n/a",
                     "other_load": None})
    return rows


def targets_table(rows, threads, dtype="float32", net="784-512-512-10"):
    out = [f"\nIssue-6 targets: {net} {dtype}, {threads} thread(s); fastnn measured "
           f"through fit; ratios = median (min-max) of per-round ratios"]
    out += _table(["target", "measured", "result", "other load"],
                  [[r["target"], r["measured"], r["result"], load_cell(r)] for r in rows],
                  [-60, -34, 7, 12])
    if any((r.get("other_load") or 0) >= BUSY for r in rows):
        out.append("  ! other processes kept >= 0.2 cores busy during that case: with all "
                   "cores in use, its numbers (and verdict) are not reliable; rerun.")
    out.append("  * PERF-NOTES: batch-1 inference of 784-512-512-10 is memory-bound (its BLAS "
               "calls alone take about PyTorch's time); 1/3 is realistic for 784-128-10.")
    return out
