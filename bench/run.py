#!/usr/bin/env python3
"""fastnn's benchmark suite: `python bench/run.py` (see bench/README.md).

    python bench/run.py                     # everything (a few minutes)
    python bench/run.py --quick             # the issue-6 targets only (about a minute)
    python bench/run.py --cases train --nets small --dtypes float32 --threads 1 \\
                        --batches 32,128
    python bench/run.py --long              # + several full epochs, for the slow drift
    python bench/run.py --profile           # + where a fastnn step spends its time

Prints tables, writes bench/results/<timestamp>.json and, with matplotlib, a PNG beside
it. Every comparison is made inside this run, interleaved round by round, on the same
data with the same thread count; weights and optimizer state are reset to the same
initial values (fixed seed) before every timed sample.
"""
import argparse
import datetime
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]          # bench/ modules, and the fastnn of this source tree

try:
    import torch          # noqa: F401  (imported before fastnn sets the BLAS threads)
except ImportError:
    torch = None
try:
    import sklearn        # noqa: F401
except ImportError:
    sklearn = None

import numpy as np

import fastnn as fn
from fastnn import _threads

import cases
import chart
import machine
import memory
import report
import timing
from fastnn_mlp import FastnnMLP
from gemm_limit import GemmLimit, wrapper_overhead_us
from numpy_mlp import NumpyMLP

MISSING = {}
if torch is None:
    MISSING["torch"] = MISSING["torch-fused"] = \
        "PyTorch not installed (pip install torch==2.13.0)"
if sklearn is None:
    MISSING["sklearn"] = "scikit-learn not installed (pip install scikit-learn)"


# ----------------------------------------------------------------- options --
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    lst = lambda s: [t.strip() for t in s.split(",") if t.strip()]   # noqa: E731
    ints = lambda s: [int(t) for t in lst(s)]                          # noqa: E731
    p.add_argument("--quick", action="store_true",
                   help="about a minute: 784-512-512-10 float32 at all cores, predict for "
                        "the two ReLU models, fastnn's peak memory")
    p.add_argument("--cases", type=lst, help="train,predict,memory (default: all); "
                                             "none runs only --long/--profile")
    p.add_argument("--nets", type=lst,
                   help="training networks: big (784-512-512-10), small (784-128-10), "
                        "deep (784-8x256-10 sigmoid); predict uses the same unless --quick")
    p.add_argument("--dtypes", type=lst, help="float32,float64")
    p.add_argument("--threads", type=ints, help=f"thread counts (default: all cores = "
                                               f"{_threads.available_cpus()}, and 1)")
    p.add_argument("--batches", type=ints, help="training batch sizes (1,8,32,128,512)")
    p.add_argument("--impls", type=lst, help="subset of " + ",".join(cases.TRAIN_IMPLS)
                   + " (predict maps fastnn-* to fastnn)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per measurement")
    p.add_argument("--seconds", type=float, help="target length of one timed sample")
    p.add_argument("--long", action="store_true",
                   help="also train several full epochs without resets (Fashion-MNIST "
                        "when installed) and report per-epoch speed and subnormals")
    p.add_argument("--epochs", type=int, default=5, help="epochs of --long (5)")
    p.add_argument("--long-batch", type=int, default=32, help="batch size of --long (32)")
    p.add_argument("--profile", action="store_true",
                   help="also time each phase of a fastnn step (--profile-net at "
                        "--profile-batches, float32, the largest --threads)")
    p.add_argument("--profile-only", action="store_true",
                   help="run only the profile (no other case)")
    p.add_argument("--profile-net", default="big", help="network to profile (big)")
    p.add_argument("--profile-batches", type=ints, default=[1, 32, 512],
                   help="batch sizes to profile (1,32,512)")
    p.add_argument("--out", default=os.path.join(HERE, "results"),
                   help="directory for the JSON and PNG (bench/results)")
    p.add_argument("--retry-busy", type=int, default=1,
                   help="times to re-measure, at the end, a multi-thread case during which "
                        "other processes kept >= 0.2 cores busy (1)")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--native-blas", action="store_true",
                   help="rerun with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, so "
                        "OpenBLAS picks the kernel for this CPU")
    return p.parse_args(argv)


def rerun_with_native_blas():
    """Re-exec this command without the OPENBLAS_* overrides (read when BLAS loads)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["FASTNN_BENCH_NATIVE_BLAS"] = "1"
    argv = [a for a in sys.argv if a != "--native-blas"]
    os.execve(sys.executable, [sys.executable] + argv, env)


def make_plan(args):
    all_threads = _threads.available_cpus()
    plan = cases.quick_plan(all_threads) if args.quick else cases.default_plan(all_threads)
    if args.cases:
        plan.cases = args.cases
    if args.nets:
        plan.nets = args.nets
        if not args.quick:
            plan.predict_nets = args.nets
    if args.dtypes:
        plan.dtypes = args.dtypes
    if args.threads:
        plan.threads = args.threads
    if args.batches:
        plan.batches = args.batches
    if args.impls:
        plan.train_impls = [i for i in cases.TRAIN_IMPLS if i in args.impls]
        wanted = {"fastnn" if i.startswith("fastnn") else i for i in args.impls}
        wanted |= {"torch"} if "torch-fused" in args.impls else set()
        plan.predict_impls = [i for i in cases.PREDICT_IMPLS if i in wanted]
        plan.memory_impls = [i for i in plan.memory_impls if i in wanted]
    if args.rounds:
        plan.rounds = args.rounds
    if args.seconds:
        plan.seconds = args.seconds
    if args.profile_only:
        plan.cases = []
    bad = [c for c in plan.cases if c not in ("train", "predict", "memory", "none")]
    if bad:
        raise SystemExit(f"unknown case(s) {bad}; choose from train, predict, memory "
                         f"(or none, with --long / --profile)")
    bad = [n for n in plan.nets + plan.predict_nets if n not in cases.NETS]
    if bad:
        raise SystemExit(f"unknown network(s) {bad}; choose from {sorted(cases.NETS)}")
    return plan


def set_threads(n):
    fn.set_num_threads(n)
    if torch is not None:
        torch.set_num_threads(n)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------ implementations --
def make_trainer(impl, net, dtype, batch, weights, x, y):
    if impl in ("fastnn-fit", "fastnn-tob"):
        return FastnnMLP(net, weights, dtype, mode=impl.split("-")[1])
    if impl == "numpy":
        return NumpyMLP(net, weights, dtype)
    if impl in ("torch", "torch-fused"):
        from torch_mlp import TorchMLP
        return TorchMLP(net, weights, dtype, fused=impl == "torch-fused")
    if impl == "sklearn":
        from sklearn_mlp import SklearnMLP
        return SklearnMLP(net, dtype, batch, x[:batch], y[:batch])
    if impl == "limit":
        return GemmLimit(net, dtype, batch)
    raise ValueError(impl)


def train_case(plan, net, dtype, threads, batch, data):
    """Training throughput of every implementation at one batch size."""
    x, y = data
    weights = cases.initial_weights(net, dtype)
    max_steps = x.shape[0] // batch
    samplers, steps, errors = {}, {}, {}
    for impl in plan.train_impls:
        if impl in MISSING:
            continue
        try:
            t = make_trainer(impl, net, dtype, batch, weights, x, y)

            def run(s, t=t):
                t.reset()
                return t.train_steps(x, y, batch, s)

            steps[impl] = timing.calibrate_steps(run, plan.seconds, max_steps=max_steps)
            samplers[impl] = (lambda run=run, s=steps[impl]: s * batch / run(s))
        except Exception as exc:
            errors[impl] = f"{type(exc).__name__}: {exc}"
    series = timing.interleave(samplers, plan.rounds, cases.POOLS, _switch(threads))
    errors.update(series.pop("_errors"))
    sps = {k: timing.summarize(v) for k, v in series.items()}
    ratios = {}
    for a, b in report.TRAIN_RATIOS:
        if a in series and b in series:
            ratios[f"{a}/{b}"] = timing.ratio(series[a], series[b])
    return {"case": "train", "net": net.name, "net_key": net.key, "dtype": dtype,
            "threads": threads, "batch": batch, "optimizer": net.optimizer_label,
            "rounds": plan.rounds, "steps_per_sample": steps, "samples_per_second": sps,
            "ratios": ratios, "errors": errors}


def predict_case(plan, net, dtype, threads, data):
    """predict latency at batch 1 and throughput at batch plan.predict_batch."""
    x, y = data
    nb = plan.predict_batch
    x1, xb = x[:1], x[:nb]
    weights = cases.initial_weights(net, dtype)
    lat, thr, errors = {}, {}, {}
    for impl in plan.predict_impls:
        if impl in MISSING:
            continue
        try:
            if impl == "limit":
                one, big = GemmLimit(net, dtype, 1), GemmLimit(net, dtype, nb)
                f1, fb = (lambda g=one: g.forward_steps(1)), (lambda g=big: g.forward_steps(1))
            else:
                name = "fastnn-fit" if impl == "fastnn" else impl
                t = make_trainer(name, net, dtype, 32, weights, x, y)
                f1, fb = (lambda t=t: t.predict(x1)), (lambda t=t: t.predict(xb))
            f1()
            fb()
            calls = max(1, timing.calibrate_steps(
                lambda s, fb=fb: _repeat(fb, s), plan.seconds, min_steps=1))
            lat[impl] = (lambda f1=f1: timing.latency_sample(f1, plan.seconds) * 1e6)
            thr[impl] = (lambda fb=fb, c=calls: c * nb / _repeat(fb, c))
        except Exception as exc:
            errors[impl] = f"{type(exc).__name__}: {exc}"
    samplers = {}
    for k in lat:                        # each implementation's two samplers together
        samplers[("lat", k)], samplers[("thr", k)] = lat[k], thr[k]
    pools = {key: cases.POOLS[key[1]] for key in samplers}
    series = timing.interleave(samplers, plan.rounds, pools, _switch(threads))
    errors.update({f"{k[0]} {k[1]}": e for k, e in series.pop("_errors").items()})
    latency = {k[1]: timing.summarize(v) for k, v in series.items() if k[0] == "lat"}
    throughput = {k[1]: timing.summarize(v) for k, v in series.items() if k[0] == "thr"}
    ratios = {}
    if ("lat", "fastnn") in series and ("lat", "torch") in series:
        ratios["latency fastnn/torch"] = timing.ratio(series[("lat", "fastnn")],
                                                      series[("lat", "torch")])
        ratios["throughput fastnn/torch"] = timing.ratio(series[("thr", "fastnn")],
                                                         series[("thr", "torch")])
    if ("lat", "fastnn") in series and ("lat", "limit") in series:
        ratios["latency fastnn/limit"] = timing.ratio(series[("lat", "fastnn")],
                                                      series[("lat", "limit")])
    return {"case": "predict", "net": net.name, "net_key": net.key, "dtype": dtype,
            "threads": threads, "batch_throughput": nb, "rounds": plan.rounds,
            "latency_us": latency, "throughput": throughput, "ratios": ratios,
            "errors": errors}


def _switch(threads):
    """Pause when a round moves to another library's thread pool (none with 1 thread:
    no worker threads then)."""
    return timing.SWITCH_SETTLE if threads > 1 else timing.SETTLE


def _load_note(load):
    return "" if load is None or load < 0.2 else \
        f"  [other processes busy: {load:.1f} cores]"


def _repeat(f, n):
    start = time.perf_counter()
    for _ in range(n):
        f()
    return time.perf_counter() - start


def memory_case(plan, threads):
    net = cases.NETS["big"]
    dtype = "float32"
    impls = [i for i in plan.memory_impls if i not in MISSING]
    with memory.temp_dir() as d:
        log("memory: writing the data set ...")
        data = memory.prepare_data(d, dtype)
        out = {}
        for impl in impls:
            log(f"memory: {impl} (fresh process)")
            out[impl] = memory.measure(impl, net.key, dtype, plan.memory_batch, threads, d)
    isz = np.dtype(dtype).itemsize
    budget = {"data": data["bytes"], "params4": 4 * net.n_params * isz,
              "buffers": memory.batch_buffer_bytes(net, dtype, plan.memory_batch),
              "overhead": memory.OVERHEAD}
    budget["total"] = sum(budget.values())
    return {"case": "memory", "net": net.name, "dtype": dtype, "batch": plan.memory_batch,
            "threads": threads, "data": data, "impls": out, "budget": budget}


# ---------------------------------------------------------------------- main --
def main(argv=None):
    args = parse_args(argv)
    if args.native_blas and not os.environ.get("FASTNN_BENCH_NATIVE_BLAS") and \
            (os.environ.get("OPENBLAS_CORETYPE") or os.environ.get("OPENBLAS_L2_SIZE")):
        rerun_with_native_blas()
    plan = make_plan(args)
    started = time.time()
    snap0 = machine.cpu_snapshot()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    os.makedirs(args.out, exist_ok=True)
    set_threads(max(plan.threads))
    meta = machine.describe()
    log(f"fastnn {fn.__version__} from {os.path.dirname(fn.__file__)}; BLAS: "
        f"{machine.blas_summary(meta)}; CPU: {meta['cpu_model']}, "
        f"{meta['cpus_available']} usable")
    for impl, why in MISSING.items():
        log(f"skipping {impl}: {why}")

    data = {}

    def data_for(dtype):
        if dtype not in data:
            data[dtype] = cases.random_data(cases.DATA_ROWS, 784, dtype)
        return data[dtype]

    train, predict, mem, long_runs, profiles = [], [], None, [], []
    total = len(plan.threads) * len(plan.dtypes) * len(plan.nets) * len(plan.batches)
    done = 0

    def measure(kind, net, dtype, threads, batch=None):
        """One case, with the load other processes put on the machine meanwhile."""
        snap = machine.cpu_snapshot()
        if kind == "train":
            r = train_case(plan, net, dtype, threads, batch, data_for(dtype))
        else:
            r = predict_case(plan, net, dtype, threads, data_for(dtype))
        r["other_load"] = machine.other_load(snap, machine.cpu_snapshot())
        return r

    def show(r, prefix):
        if r["case"] == "train":
            nums = {k: report.rate(v["median"]) for k, v in r["samples_per_second"].items()}
            what = f"train {r['net']} {r['dtype']} {r['threads']}t b={r['batch']}: {nums}"
        else:
            nums = {k: round(v["median"], 1) for k, v in r["latency_us"].items()}
            what = f"predict {r['net']} {r['dtype']} {r['threads']}t: latency µs {nums}"
        log(f"[{prefix}{time.time() - started:5.0f}s] {what}{_load_note(r['other_load'])}")

    for threads in plan.threads:
        set_threads(threads)
        for dtype in plan.dtypes:
            if "train" in plan.cases:
                for key in plan.nets:
                    for batch in plan.batches:
                        r = measure("train", cases.NETS[key], dtype, threads, batch)
                        train.append(r)
                        done += 1
                        show(r, f"{done}/{total} ")
            if "predict" in plan.cases:
                for key in plan.predict_nets:
                    r = measure("predict", cases.NETS[key], dtype, threads)
                    predict.append(r)
                    show(r, "")
    # Cases that shared the machine with other processes while using all cores: measure
    # them again at the end (the load may have passed) and keep the quieter measurement.
    for attempt in range(args.retry_busy):
        for results in (train, predict):
            for i, r in enumerate(results):
                if r["threads"] < 2 or (r.get("other_load") or 0) < report.BUSY:
                    continue
                set_threads(r["threads"])
                again = measure(r["case"], cases.NETS[r["net_key"]], r["dtype"],
                                r["threads"], r.get("batch"))
                again["first_other_load"] = r.get("first_other_load", r["other_load"])
                again["retries"] = r.get("retries", 0) + 1
                show(again, f"retry {again['retries']} ")
                if again["other_load"] is not None and again["other_load"] < r["other_load"]:
                    results[i] = again
                else:
                    r["retries"] = again["retries"]
    set_threads(max(plan.threads))
    if "memory" in plan.cases:
        mem = memory_case(plan, max(plan.threads))
    data.clear()
    if args.long:
        import long_run
        ldata = long_run.load_data("float32")
        for key in [k for k in ("small", "big") if k in plan.nets or args.nets is None]:
            log(f"long run: {cases.NETS[key].name}, {args.epochs} epochs ...")
            long_runs.append(long_run.run_long(
                cases.NETS[key], "float32", args.long_batch, args.epochs,
                max(plan.threads), torch is not None, ldata))
        del ldata
    if args.profile or args.profile_only:
        import phases
        for batch in args.profile_batches:
            log(f"profile: {args.profile_net} batch {batch} ...")
            profiles.append(phases.profile(cases.NETS[args.profile_net], "float32", batch))

    # ------------------------------------------------------------- report --
    tmax = max(plan.threads)
    lines = [f"fastnn benchmark {stamp}: {meta['cpu_model']} ({meta['cpus_available']} "
             f"CPUs usable), BLAS {machine.blas_summary(meta)}, numpy "
             f"{meta['versions']['numpy']}, scipy {meta['versions']['scipy']}, torch "
             f"{meta['versions']['torch']}, sklearn {meta['versions']['sklearn']}",
             "Weights and optimizer state are reset to the same initial values (fixed seed) "
             "before every timed sample; implementations interleaved round by round."]
    lines += [f"skipped {k}: {v}" for k, v in MISSING.items()]
    if os.environ.get("OPENBLAS_CORETYPE"):
        lines.append(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set: OpenBLAS "
                     f"(fastnn, NumPy, the limit) runs that kernel, not the CPU's own; "
                     f"--native-blas reruns without it (PyTorch uses MKL either way).")
    lines += report.train_tables(train)
    lines += report.predict_table(predict)
    lines += report.memory_table(mem)
    tgt = []
    if any(r["net"] == "784-512-512-10" and r["dtype"] == "float32" for r in train) or \
            predict or mem:
        tgt = report.targets(train, predict, mem, tmax)
        lines += report.targets_table(tgt, tmax)
    if long_runs:
        import long_run
        lines += [""] + [long_run.format_long(r) for r in long_runs]
    if profiles:
        import phases
        lines += [""] + [phases.format_profile(p) + "\n" for p in profiles]
    elapsed = time.time() - started
    meta["loadavg_end"] = os.getloadavg()
    meta["other_load"] = machine.other_load(snap0, machine.cpu_snapshot())
    busy = [r for r in train + predict if (r.get("other_load") or 0) >= 0.2]
    load_line = (f"Other processes kept {meta['other_load'] or 0:.2f} cores busy on "
                 f"average during this run")
    if busy:
        load_line += (f"; {len(busy)} case(s) ran with >= 0.2 cores busy elsewhere (see "
                      f"'other_load' in the JSON): their multi-thread numbers are unreliable")
    lines.insert(2, load_line + ".")
    doc = {"timestamp": stamp, "command": sys.argv, "seconds": elapsed, "machine": meta,
           "settings": {**plan.__dict__, "reset_between_repeats": True,
                        "reset_note": "weights, optimizer state (moments, step count) and "
                                      "fit's epoch counter reset to the same fixed-seed "
                                      "initial values before every timed sample; see "
                                      "--long for runs without resets",
                        "data": f"random uniform [0,1) x {cases.DATA_ROWS}x784, random "
                                f"labels, seed {cases.SEED + 1}",
                        "gemm_wrapper_us": {dt: wrapper_overhead_us(dt)
                                            for dt in plan.dtypes}},
           "skipped": MISSING, "train": train, "predict": predict, "memory": mem,
           "targets": tgt, "long": long_runs, "profile": profiles}
    path = os.path.join(args.out, f"{stamp}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
    lines.append(f"\nJSON: {path}")
    if train and not args.no_chart:
        dt = "float32" if "float32" in plan.dtypes else plan.dtypes[0]
        png = chart.plot(train, os.path.join(args.out, f"{stamp}.png"), dt, tmax)
        lines.append(f"chart: {png}" if png else "chart: skipped (matplotlib not installed)")
    lines.append(f"({elapsed:.0f} s)")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
