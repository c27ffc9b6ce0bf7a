"""The fastnn-lecture command: run lecture experiments, print their tables, and with --out
write the HTML page, the PNGs and the JSON."""
import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np

import fastnn as fn
from fastnn.examples import lecture
from fastnn.examples.lecture import report
from fastnn.examples.lecture.common import load_data, pyplot


def parser():
    p = argparse.ArgumentParser(
        prog="fastnn-lecture",
        description="The lecture, reproduced: each claim of the deep-learning course as an "
                    "experiment on Fashion-MNIST, with its numbers and plots.",
        epilog="Examples: fastnn-lecture --list; fastnn-lecture optimizers l1_vs_l2; "
               "fastnn-lecture all --out lecture/")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="experiments to run (see --list), or 'all'")
    p.add_argument("--list", action="store_true", help="list the experiments and exit")
    p.add_argument("--out", metavar="DIR",
                   help=f"write {report.PAGE} (one self-contained page), one PNG per figure "
                        f"and {report.DATA} (every figure's data) into DIR")
    p.add_argument("--quick", action="store_true",
                   help="reduced sizes: seconds per experiment (what the tests run)")
    p.add_argument("--seed", type=int, default=0, help="fn.set_seed before every network "
                   "(default 0)")
    p.add_argument("--data", default="small", choices=["small", "full", "auto"],
                   help="Fashion-MNIST: the subset shipped inside fastnn (default), the "
                        "installed full set, or the full set when installed")
    p.add_argument("--threads", type=int, default=1,
                   help="fn.set_num_threads (default 1: these networks are small, so more "
                        "threads gain little and cost much at small batches, or on a busy "
                        "machine); the numbers are reproducible for a seed and a thread "
                        "count")
    p.add_argument("--no-plot", action="store_true", help="skip the figures")
    return p


def _listing():
    lines = []
    for name, function in lecture.EXPERIMENTS.items():
        lines.append(f"{name:<28} {function.__doc__.strip().splitlines()[0]}")
    return "\n".join(lines)


def _meta(args, argv, data, seconds):
    try:
        import matplotlib
        plotting = f"matplotlib {matplotlib.__version__}"
    except ImportError:
        plotting = "matplotlib not installed"
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "fastnn": fn.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "machine": platform.machine(),
            "threads": fn.get_num_threads(), "seed": args.seed,
            "size": "quick" if args.quick else "default", "data": data.label,
            "plots": plotting, "total seconds": round(seconds, 1),
            "command": " ".join(["fastnn-lecture", *argv])}


def main(argv=None):
    """Run the command; returns the list of Results (empty for --list)."""
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    if args.list:
        print(_listing())
        return []
    if not args.names:
        p.error("name the experiments to run, 'all', or use --list")
    names = list(lecture.EXPERIMENTS) if "all" in args.names else args.names
    unknown = [n for n in names if n not in lecture.EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiment(s) {', '.join(unknown)}; see --list")
    if args.threads < 1:
        p.error("--threads must be >= 1")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    fn.set_num_threads(args.threads)
    data = load_data(args.data)
    plot = not args.no_plot and args.out is not None
    if plot and pyplot()[0] is None:
        print(f"no figures: {pyplot()[1]}")
    print(f"Fashion-MNIST: {data.label} ({len(data.x_train):,} training, "
          f"{len(data.x_test):,} test images); {fn.get_num_threads()} threads, seed "
          f"{args.seed}, {'quick' if args.quick else 'default'} sizes\n")
    start = time.perf_counter()
    results = {}
    for name in names:
        results[name] = lecture.run(name, quick=args.quick, seed=args.seed, data=data,
                                    plot=plot, earlier=results)
        print(report.text_report(results[name], note=plot), flush=True)
    seconds = time.perf_counter() - start
    print(f"{len(results)} experiment(s) in {seconds:.1f} s")
    if args.out is not None:
        paths = report.write(list(results.values()), args.out,
                             _meta(args, argv, data, seconds))
        print(f"wrote {os.path.join(args.out, report.PAGE)} and {len(paths) - 1} more "
              f"file(s) in {args.out}")
    elif not args.no_plot:
        print("(figures are drawn with --out DIR)")
    return list(results.values())


def cli():
    """Entry point of the fastnn-lecture command: exit status 0 on success."""
    main()
    return 0
