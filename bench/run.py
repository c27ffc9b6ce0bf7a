#!/usr/bin/env python3
"""fastnn's benchmark suite: `python bench/run.py` (see bench/README.md).

    python bench/run.py                     # everything (tens of minutes)
    python bench/run.py --quick             # the issue-11 targets (a few minutes)
    python bench/run.py --cases train --nets small --dtypes float32 --threads 1 \\
                        --batches 32,128
    python bench/run.py --cases load        # beside one busy-loop process
    python bench/run.py --long              # + several full epochs, for the slow drift
    python bench/run.py --profile           # + where a fastnn step spends its time

Prints tables, writes bench/results/<timestamp>.json and, with matplotlib, a PNG beside
it. Every implementation runs in a worker process of its own (worker.py); this driver
interleaves them round by round, on the same data with the same thread count; weights
and optimizer state are reset to the same initial values (fixed seed) before every
timed sample.
"""
import argparse
import datetime
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [HERE, ROOT]          # bench/ modules, and the fastnn of this source tree

import numpy as np

import fastnn as fn
from fastnn import _threads

import cases
import chart
import driver
import machine
import memory
import report
import timing
from gemm_limit import wrapper_overhead_us

# Implementations whose library is not installed, found without importing any peer: the
# driver loads none of their thread pools (each runs in its own worker, see worker.py).
MISSING = driver.missing(sorted({i for i in cases.TRAIN_IMPLS + cases.PREDICT_IMPLS
                                 if i != "fastnn"}))


# ----------------------------------------------------------------- options --
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    lst = lambda s: [t.strip() for t in s.split(",") if t.strip()]   # noqa: E731
    ints = lambda s: [int(t) for t in lst(s)]                          # noqa: E731
    p.add_argument("--quick", action="store_true",
                   help="a few minutes: the issue-11 targets (784-512-512-10 and "
                        "784-128-10 float32 at all cores against PyTorch fused and JAX, "
                        "predict against ONNX Runtime, the load case), fastnn's peak "
                        "memory")
    p.add_argument("--cases", type=lst, help="train,predict,load,memory (default: all); "
                                             "none runs only --long/--profile")
    p.add_argument("--load-batches", type=ints,
                   help="batch sizes of the load case (32,128,512)")
    p.add_argument("--load-net", choices=("big", "small", "deep"),
                   help="network of the load case (big: 784-512-512-10; small and deep "
                        "show the many small products of small networks)")
    p.add_argument("--nets", type=lst,
                   help="training networks: big (784-512-512-10), small (784-128-10), "
                        "deep (784-8x256-10 sigmoid); predict uses the same unless --quick")
    p.add_argument("--dtypes", type=lst, help="float32,float64")
    p.add_argument("--threads", type=ints, help=f"thread counts (default: all cores = "
                                               f"{_threads.available_cpus()}, and 1)")
    p.add_argument("--batches", type=ints, help="training batch sizes (1,8,32,128,512)")
    p.add_argument("--impls", type=lst, help="subset of " + ",".join(
        cases.TRAIN_IMPLS + ["onnxruntime"]) + " (predict maps fastnn-* to fastnn; the "
        "load case keeps those of its own that are listed)")
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
                   help="times to re-measure, at the end of its group, a multi-thread "
                        "case during which "
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
        plan.load_impls = [(i, t) for i, t in plan.load_impls if i in args.impls]
    if args.load_batches:
        plan.load_batches = args.load_batches
    if args.load_net:
        plan.load_net = args.load_net
    if args.rounds:
        plan.rounds = args.rounds
    if args.seconds:
        plan.seconds = args.seconds
    if args.profile_only:
        plan.cases = []
    bad = [c for c in plan.cases if c not in ("train", "predict", "load", "memory", "none")]
    if bad:
        raise SystemExit(f"unknown case(s) {bad}; choose from train, predict, load, memory "
                         f"(or none, with --long / --profile)")
    bad = [n for n in plan.nets + plan.predict_nets if n not in cases.NETS]
    if bad:
        raise SystemExit(f"unknown network(s) {bad}; choose from {sorted(cases.NETS)}")
    return plan


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# ------------------------------------------------------------------- cases --
def _interleave(workers, samplers, plan, threads):
    """samplers: {name: (worker, sampler key)}. Interleaved rounds of one command per
    sample; a change of worker pauses (their thread pools go idle, see timing.py)."""
    calls = {name: (lambda w=w, k=k: w.call("sample", k))
             for name, (w, k) in samplers.items()}
    pools = {name: id(w) for name, (w, _) in samplers.items()}
    series = timing.interleave(calls, plan.rounds, pools, _switch(threads))
    for w, k in {(w, k.split(":")[0]) for w, k in samplers.values()}:
        try:
            w.call("drop", k)
        except driver.WorkerError:
            pass
    return series


def _prepare(workers, impls, threads, dtype, errors, command, *args):
    """{impl: worker} of the implementations that prepared the case (the others'
    errors in `errors`); threads None means all usable CPUs."""
    ready = {}
    for impl in impls:
        name, t = impl if isinstance(impl, tuple) else (impl, threads)
        if name in MISSING:
            continue
        try:
            w = workers.get(cases.worker_impl(name), t, dtype)
            w.call(command, *args)
            ready[impl] = w
        except driver.WorkerError as exc:
            errors[_name(impl)] = str(exc)
    return ready


def _name(impl):
    return impl if isinstance(impl, str) else f"{impl[0]}@{impl[1]}t"


def train_case(plan, workers, net, dtype, threads, batch):
    """Training throughput of every implementation at one batch size."""
    key = f"train-{net.key}-{batch}"
    errors = {}
    ready = _prepare(workers, plan.train_impls, threads, dtype, errors, "prepare_train",
                     key, net.key, batch, plan.seconds)
    series = _interleave(workers, {i: (w, key) for i, w in ready.items()}, plan, threads)
    errors.update(series.pop("_errors"))
    sps = {k: timing.summarize(v) for k, v in series.items()}
    ratios = {}
    for a, b in report.TRAIN_RATIOS:
        if a in series and b in series:
            ratios[f"{a}/{b}"] = timing.ratio(series[a], series[b])
    peers = [series[p] for p in cases.TRAIN_PEERS if p in series]
    if "fastnn-fit" in series and peers:
        ratios["fastnn-fit/best"] = timing.ratio_to_best(series["fastnn-fit"], peers)
    return {"case": "train", "net": net.name, "net_key": net.key, "dtype": dtype,
            "threads": threads, "batch": batch, "optimizer": net.optimizer_label,
            "rounds": plan.rounds, "samples_per_second": sps, "ratios": ratios,
            "peers": [p for p in cases.TRAIN_PEERS if p in series], "errors": errors}


def predict_case(plan, workers, net, dtype, threads, tmp):
    """predict latency at batch 1 and throughput at batch plan.predict_batch; ONNX
    Runtime runs the fastnn model exported by this process."""
    import onnx_predict

    nb = plan.predict_batch
    key = f"predict-{net.key}"
    errors = {}
    impls = list(plan.predict_impls)
    onnx_path = None
    if "onnxruntime" in impls and "onnxruntime" not in MISSING:
        try:
            onnx_path = onnx_predict.export_model(net, cases.initial_weights(net, dtype),
                                                  dtype, os.path.join(tmp, key + ".onnx"))
        except Exception as exc:
            errors["onnxruntime"] = f"export failed: {type(exc).__name__}: {exc}"
            impls.remove("onnxruntime")
    ready = _prepare(workers, impls, threads, dtype, errors, "prepare_predict",
                     key, net.key, plan.seconds, nb, onnx_path)
    samplers = {}
    for impl, w in ready.items():          # each implementation's two samplers together
        samplers[("lat", impl)] = (w, key + ":lat")
        samplers[("thr", impl)] = (w, key + ":thr")
    series = _interleave(workers, samplers, plan, threads)
    errors.update({f"{k[0]} {k[1]}": e for k, e in series.pop("_errors").items()})
    latency = {k[1]: timing.summarize(v) for k, v in series.items() if k[0] == "lat"}
    throughput = {k[1]: timing.summarize(v) for k, v in series.items() if k[0] == "thr"}
    ratios = {}
    for peer in ("onnxruntime", "torch", "jax", "limit"):
        if ("lat", "fastnn") in series and ("lat", peer) in series:
            ratios[f"latency fastnn/{peer}"] = timing.ratio(series[("lat", "fastnn")],
                                                            series[("lat", peer)])
            ratios[f"throughput fastnn/{peer}"] = timing.ratio(series[("thr", "fastnn")],
                                                               series[("thr", peer)])
    if ("lat", "fastnn") in series:
        peers = [p for p in cases.PREDICT_PEERS if ("lat", p) in series]
        ratios["latency fastnn/best"] = timing.ratio_to_best(
            series[("lat", "fastnn")], [series[("lat", p)] for p in peers], True)
        ratios["throughput fastnn/best"] = timing.ratio_to_best(
            series[("thr", "fastnn")], [series[("thr", p)] for p in peers])
    return {"case": "predict", "net": net.name, "net_key": net.key, "dtype": dtype,
            "threads": threads, "batch_throughput": nb, "rounds": plan.rounds,
            "latency_us": latency, "throughput": throughput, "ratios": ratios,
            "errors": errors}


def load_case(plan, workers, net, dtype, threads, batch):
    """Training throughput with one busy-loop process beside (started here, killed
    afterwards whatever happens): fastnn with all threads and with 1, JAX, ..."""
    impls = [(i, threads if t is None else t) for i, t in plan.load_impls]
    key = f"load-{net.key}-{batch}"
    errors = {}
    with driver.busy_process(workers):
        ready = _prepare(workers, impls, threads, dtype, errors, "prepare_train",
                         key, net.key, batch, plan.seconds)
        series = _interleave(workers, {_name(i): (w, key) for i, w in ready.items()},
                             plan, threads)
    errors.update(series.pop("_errors"))
    fast, fast1, jax = (f"fastnn-fit@{threads}t", "fastnn-fit@1t", f"jax@{threads}t")
    ratios = {}
    for name, a, b in (("fastnn/jax", fast, jax), ("fastnn all/1 thread", fast, fast1),
                       ("fastnn/torch-fused", fast, f"torch-fused@{threads}t")):
        if a in series and b in series and a != b:
            ratios[name] = timing.ratio(series[a], series[b])
    return {"case": "load", "net": net.name, "net_key": net.key, "dtype": dtype,
            "threads": threads, "batch": batch, "rounds": plan.rounds,
            "busy_processes": 1,
            "samples_per_second": {k: timing.summarize(v) for k, v in series.items()},
            "ratios": ratios, "errors": errors}


def _switch(threads):
    """Pause when a round moves to another worker (none with 1 thread: no worker
    threads then)."""
    return timing.SWITCH_SETTLE if threads > 1 else timing.SETTLE


def _load_note(load):
    return "" if load is None or load < 0.2 else \
        f"  [other processes busy: {load:.1f} cores]"


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
    fn.set_num_threads(max(plan.threads))       # the driver's own cases: --profile, --long
    meta = machine.describe()
    log(f"fastnn {fn.__version__} from {os.path.dirname(fn.__file__)}; BLAS: "
        f"{machine.blas_summary(meta)}; CPU: {meta['cpu_model']}, "
        f"{meta['cpus_available']} usable")
    for impl, why in MISSING.items():
        log(f"skipping {impl}: {why}")

    train, predict, load, mem, long_runs, profiles = [], [], [], None, [], []
    total = len(plan.threads) * len(plan.dtypes) * len(plan.nets) * len(plan.batches)
    done = 0

    def measure(workers, kind, net, dtype, threads, batch=None):
        """One case, with the load other processes put on the machine meanwhile (the
        workers' and the busy loop's CPU time is ours)."""
        snap = machine.cpu_snapshot(workers.pids())
        if kind == "train":
            r = train_case(plan, workers, net, dtype, threads, batch)
        elif kind == "load":
            r = load_case(plan, workers, net, dtype, threads, batch)
        else:
            r = predict_case(plan, workers, net, dtype, threads, tmp)
        r["other_load"] = machine.other_load(snap, machine.cpu_snapshot(workers.pids()))
        return r

    def show(r, prefix):
        if r["case"] in ("train", "load"):
            nums = {k: report.rate(v["median"]) for k, v in r["samples_per_second"].items()}
            what = (f"{r['case']} {r['net']} {r['dtype']} {r['threads']}t b={r['batch']}: "
                    f"{nums}")
        else:
            nums = {k: round(v["median"], 1) for k, v in r["latency_us"].items()}
            what = f"predict {r['net']} {r['dtype']} {r['threads']}t: latency µs {nums}"
        errs = "".join(f"\n    {k} failed: {e}" for k, e in r["errors"].items())
        log(f"[{prefix}{time.time() - started:5.0f}s] {what}{_load_note(r['other_load'])}"
            f"{errs}")

    def retry_busy(workers, results):
        """Cases that shared the machine with other processes while using all cores:
        measure them again (the load may have passed), keep the quieter measurement."""
        for _ in range(args.retry_busy):
            for i, r in enumerate(results):
                if r["threads"] < 2 or (r.get("other_load") or 0) < report.BUSY:
                    continue
                again = measure(workers, r["case"], cases.NETS[r["net_key"]], r["dtype"],
                                r["threads"], r.get("batch"))
                again["first_other_load"] = r.get("first_other_load", r["other_load"])
                again["retries"] = r.get("retries", 0) + 1
                show(again, f"retry {again['retries']} ")
                if again["other_load"] is not None and again["other_load"] < r["other_load"]:
                    results[i] = again
                else:
                    r["retries"] = again["retries"]

    with tempfile.TemporaryDirectory(prefix="fastnn-bench-") as tmp:
        for threads in plan.threads:
            for dtype in plan.dtypes:
                group = []
                # the workers of this thread count and dtype, closed before the next
                with driver.Workers() as workers:
                    if "train" in plan.cases:
                        for key in plan.nets:
                            for batch in plan.batches:
                                r = measure(workers, "train", cases.NETS[key], dtype,
                                            threads, batch)
                                group.append(r)
                                done += 1
                                show(r, f"{done}/{total} ")
                    if "predict" in plan.cases:
                        for key in plan.predict_nets:
                            r = measure(workers, "predict", cases.NETS[key], dtype, threads)
                            group.append(r)
                            show(r, "")
                    retry_busy(workers, group)
                train += [r for r in group if r["case"] == "train"]
                predict += [r for r in group if r["case"] == "predict"]
        if "load" in plan.cases:
            tmax = max(plan.threads)
            with driver.Workers() as workers:
                for batch in plan.load_batches:
                    r = measure(workers, "load", cases.NETS[plan.load_net], "float32",
                                tmax, batch)
                    load.append(r)
                    show(r, "beside a busy process: ")
    if "memory" in plan.cases:
        mem = memory_case(plan, max(plan.threads))
    if args.long:
        import long_run
        names = [n for n, impl in long_run.IMPLS.items() if impl not in MISSING]
        for key in [k for k in ("small", "big") if k in plan.nets or args.nets is None]:
            log(f"long run: {cases.NETS[key].name}, {args.epochs} epochs ...")
            with driver.Workers() as workers:
                long_runs.append(long_run.run_long(
                    cases.NETS[key], "float32", args.long_batch, args.epochs,
                    max(plan.threads), names, workers))
    if args.profile or args.profile_only:
        import phases
        for batch in args.profile_batches:
            log(f"profile: {args.profile_net} batch {batch} ...")
            profiles.append(phases.profile(cases.NETS[args.profile_net], "float32", batch))

    # ------------------------------------------------------------- report --
    tmax = max(plan.threads)
    lines = [f"fastnn benchmark {stamp}: {meta['cpu_model']} ({meta['cpus_available']} "
             f"CPUs usable), BLAS {machine.blas_summary(meta)}, numpy "
             f"{meta['versions']['numpy']}, scipy {meta['versions']['scipy']}, "
             + ", ".join(f"{lib} {meta['versions'][lib]}" for lib in
                         ("torch", "sklearn", "jax", "optax", "onnxruntime")),
             "Each implementation in its own worker process, interleaved round by round "
             f"({timing.SWITCH_SETTLE} s pause between workers); weights and optimizer "
             "state reset to the same initial values (fixed seed) before every timed "
             "sample."]
    lines += [f"skipped {k}: {v}" for k, v in MISSING.items()]
    if os.environ.get("OPENBLAS_CORETYPE"):
        lines.append(f"OPENBLAS_CORETYPE={os.environ['OPENBLAS_CORETYPE']} is set: OpenBLAS "
                     f"(fastnn, NumPy, the limit) runs that kernel, not the CPU's own; "
                     f"--native-blas reruns without it (PyTorch uses MKL either way).")
    lines += report.train_tables(train)
    lines += report.predict_table(predict)
    lines += report.load_table(load, train)
    lines += report.memory_table(mem)
    tgt, tgt6 = [], []
    if any(r["dtype"] == "float32" and r["threads"] == tmax for r in train + predict + load):
        tgt = report.targets11(train, predict, load, tmax)
        lines += report.targets11_table(tgt, tmax)
    if any(r["net"] == "784-512-512-10" and r["dtype"] == "float32" for r in train) or \
            predict or mem:
        tgt6 = report.targets(train, predict, mem, tmax)
        lines += report.targets_table(tgt6, tmax)
    if long_runs:
        import long_run
        lines += [""] + [long_run.format_long(r) for r in long_runs]
    if profiles:
        import phases
        lines += [""] + [phases.format_profile(p) + "\n" for p in profiles]
    elapsed = time.time() - started
    meta["loadavg_end"] = os.getloadavg()
    meta["other_load"] = machine.other_load(snap0, machine.cpu_snapshot())
    busy = [r for r in train + predict + load if (r.get("other_load") or 0) >= 0.2]
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
           "skipped": MISSING, "train": train, "predict": predict, "load": load,
           "memory": mem, "targets": tgt, "targets_issue6": tgt6, "long": long_runs,
           "profile": profiles}
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
