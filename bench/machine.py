"""What the results were measured on: CPU model and flags, cores, memory, load, BLAS
library and kernel (threadpoolctl, as fastnn reports it), library versions, git commit."""
import importlib.metadata
import os
import platform
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def cpuinfo():
    """The first processor's fields of /proc/cpuinfo (model name, flags, ...)."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                info[key.strip()] = value.strip()
    except OSError:
        pass
    return info


def meminfo_total_mib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None


DISTRIBUTIONS = {"sklearn": "scikit-learn"}


def version(module):
    """The installed version of a library, read from its package metadata: the driver
    must not import the peers (their thread pools would share the cores with the
    workers)."""
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(module, module))
    except importlib.metadata.PackageNotFoundError:
        return None


def git_commit():
    """HEAD's short hash, '+changes' when tracked files differ (read-only: no index
    refresh is written)."""
    def git(*args):
        return subprocess.run(["git", "--no-optional-locks", "-C", HERE, *args],
                              capture_output=True, text=True, timeout=10).stdout.strip()
    try:
        head = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--untracked-files=no")
        return (head + ("+changes" if changed else "")) or None
    except Exception:
        return None


def process_cpu_seconds(pid):
    """CPU seconds (user + system) a live process has used so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def cpu_snapshot(pids=()):
    """(wall s, busy CPU s of the whole machine from /proc/stat, CPU s of this process,
    its reaped children and the live processes `pids` (the workers, the busy loop))
    for other_load()."""
    import resource
    busy = None
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
        busy = (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        pass
    own = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    own += sum(process_cpu_seconds(p) for p in pids)
    return time.time(), busy, own


def other_load(before, after):
    """Average number of cores other processes kept busy between two snapshots."""
    wall = after[0] - before[0]
    if before[1] is None or after[1] is None or wall <= 0:
        return None
    return max(0.0, ((after[1] - before[1]) - (after[2] - before[2])) / wall)


def describe():
    """A JSON-able description of the machine and the software."""
    import fastnn
    from fastnn import _threads
    from threadpoolctl import threadpool_info

    cpu = cpuinfo()
    flags = cpu.get("flags", "").split()
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": cpu.get("model name"),
        "cpu_family": cpu.get("cpu family"),
        "cpu_model_number": cpu.get("model"),
        "cpu_flags": flags,
        "cpu_simd": [f for f in flags if f.startswith(("avx", "sse4", "fma", "amx"))],
        "cpus_online": os.cpu_count(),
        "cpus_available": _threads.available_cpus(),
        "memory_mib": meminfo_total_mib(),
        "loadavg_start": os.getloadavg(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("OPENBLAS", "OMP_", "MKL_", "GOMP", "KMP_", "FASTNN"))},
        "versions": {"fastnn": fastnn.__version__, "numpy": version("numpy"),
                     "scipy": version("scipy"), "threadpoolctl": version("threadpoolctl"),
                     "torch": version("torch"), "sklearn": version("sklearn"),
                     "jax": version("jax"), "optax": version("optax"),
                     "onnxruntime": version("onnxruntime"),
                     "matplotlib": version("matplotlib")},
        "fastnn_blas": _threads.blas_info(),
        "threadpools": threadpool_info(),
        "git": git_commit(),
    }


def blas_summary(meta):
    """One line: the BLAS fastnn calls (scipy's), its version and kernel."""
    for lib in meta.get("fastnn_blas", []):
        if "scipy.libs" in lib.get("filepath", ""):      # not numpy.libs' copy
            return (f"{lib.get('internal_api')} {lib.get('version')} "
                    f"({lib.get('architecture')} kernel, {lib.get('threading_layer')})")
    libs = meta.get("fastnn_blas", [])
    return ", ".join(f"{l.get('internal_api')} {l.get('version')}" for l in libs) or "?"
