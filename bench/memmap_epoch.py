"""Peak memory of one training epoch over a 2 GB uint8 memory-mapped array (issue 12:
under 300 MB).

    python bench/memmap_epoch.py [--gb 2] [--batch 256] [--dir /tmp] [--keep]

Writes a (rows, 784) uint8 .npy file of --gb * 10^9 bytes (random pixels, written in
chunks), then, in a fresh Python process, np.load(..., mmap_mode="r")s it and runs one
epoch of a 784-128-10 ReLU network (shuffled, 10% validation split) on it.

What is measured: the child's anonymous resident memory (RssAnon in /proc/self/status:
what the process allocated, interpreter and libraries included), sampled every 5 ms by a
thread during the epoch, and its peak. VmHWM (the resident high-water mark) is printed
too but is not the criterion: it also counts the file's pages the kernel has mapped in
while reading, which are page cache (shared, clean, dropped under memory pressure), not
memory the process holds. tracemalloc's peak (NumPy and Python allocations during fit)
is reported as a cross-check.

Exit status 1 if the peak RssAnon is 300 MB (3e8 bytes) or more.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WIDTH = 784
LIMIT = 300e6


def status_bytes(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return None


def write_file(path, rows):
    import numpy as np
    mm = np.lib.format.open_memmap(path, "w+", np.uint8, (rows, WIDTH))
    rng = np.random.default_rng(0)
    chunk = 65536
    for start in range(0, rows, chunk):
        stop = min(start + chunk, rows)
        mm[start:stop] = rng.integers(0, 256, (stop - start, WIDTH), np.uint8)
    mm.flush()
    del mm


def child(path, batch):
    import tracemalloc

    import numpy as np
    sys.path.insert(0, ROOT)
    import fastnn as fn
    from fastnn import layers as L

    x = np.load(path, mmap_mode="r")
    y = (np.arange(x.shape[0]) % 10).astype(np.uint8)
    fn.set_seed(0)
    model = fn.Sequential([L.Dense(128, activation="relu", input_dim=WIDTH),
                           L.Dense(10, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam",
                  metrics=["accuracy"])
    before = status_bytes("RssAnon")
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], status_bytes("RssAnon"))
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    tracemalloc.start()
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=batch, epochs=1, validation_split=0.1, verbose=0)
    seconds = time.perf_counter() - start
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    done.set()
    sampler.join()
    peak[0] = max(peak[0], status_bytes("RssAnon"))
    print(json.dumps({"file_bytes": int(x.nbytes), "rows": int(x.shape[0]),
                      "rss_anon_before_fit": before, "rss_anon_peak": peak[0],
                      "vmhwm": status_bytes("VmHWM"), "tracemalloc_peak_in_fit": traced,
                      "epoch_seconds": seconds,
                      "loss": history.history["loss"][0]}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--gb", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--keep", action="store_true", help="keep the data file")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    rows = int(args.gb * 1e9) // WIDTH
    path = os.path.join(args.dir, f"fastnn-memmap-bench-{rows}.npy")
    try:
        if not os.path.exists(path):
            t = time.perf_counter()
            write_file(path, rows)
            print(f"wrote {path} ({rows * WIDTH / 1e9:.2f} GB) in "
                  f"{time.perf_counter() - t:.1f} s", file=sys.stderr)
        out = subprocess.run([sys.executable, __file__, "--child", path, str(args.batch)],
                             check=True, capture_output=True, text=True).stdout
    finally:
        if not args.keep and os.path.exists(path):
            os.remove(path)
    r = json.loads(out.strip().splitlines()[-1])
    mb = 1e6
    print(f"one epoch over a {r['file_bytes'] / 1e9:.2f} GB uint8 memmap ({r['rows']:,} x "
          f"{WIDTH}), batch {args.batch}, 10% validation split: {r['epoch_seconds']:.1f} s")
    print(f"  RssAnon before fit {r['rss_anon_before_fit'] / mb:.0f} MB, peak "
          f"{r['rss_anon_peak'] / mb:.0f} MB (limit {LIMIT / mb:.0f} MB)")
    print(f"  tracemalloc peak during fit {r['tracemalloc_peak_in_fit'] / mb:.0f} MB; "
          f"VmHWM {r['vmhwm'] / mb:.0f} MB (includes the file's page-cache pages)")
    return 0 if r["rss_anon_peak"] < LIMIT else 1


if __name__ == "__main__":
    sys.exit(main())
