"""Build the typed Cython kernels in fastnn/_core.

Every kernel is compiled for float and double from one source (fused types) and calls
BLAS through scipy.linalg.cython_blas, so the package links against no BLAS of its own.
Set FASTNN_BOUNDSCHECK=1 to build with Cython bounds and wraparound checks switched on
(the test suite is run once that way so that no kernel ever reads out of range).
"""
import os

from setuptools import Extension, setup
from Cython.Build import cythonize

KERNELS = ["blas", "dense", "activations", "losses", "metrics", "optim", "ops", "random",
           "sparse", "norm", "poisson", "step"]


def expand_templates():
    """Write <kernel>.pyx from <kernel>.pyx.tp (Cython's Tempita) where a template exists,
    e.g. optim.pyx: one source per optimizer rule. Rewritten only when the text changes,
    so an unchanged template recompiles nothing. The generated .pyx is not in git."""
    from Cython import Tempita
    for name in KERNELS:
        template = f"fastnn/_core/{name}.pyx.tp"
        if not os.path.exists(template):
            continue
        with open(template, encoding="utf-8") as f:
            text = Tempita.sub(f.read())
        target = template[:-len(".tp")]
        if os.path.exists(target):
            with open(target, encoding="utf-8") as f:
                if f.read() == text:
                    continue
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)


expand_templates()

checked = os.environ.get("FASTNN_BOUNDSCHECK", "0") == "1"
directives = {
    "language_level": 3,
    "boundscheck": checked,
    "wraparound": checked,
    "initializedcheck": checked,
    "cdivision": True,
}

extensions = [
    Extension(
        f"fastnn._core.{name}",
        [f"fastnn/_core/{name}.pyx"],
        # -O3 only: no -march=native (wheels must run on any x86-64), no -ffast-math
        # (it would change NaN/inf semantics and the numerics users rely on).
        # -fno-math-errno lets sqrt vectorize, -fno-trapping-math lets selects (x > 0 ? x :
        # a x) vectorize; neither changes a single result (only errno and FP-exception
        # traps, which nothing here enables). Unlike -ffast-math, NaN/inf and rounding
        # behave exactly as IEEE says.
        # -ffp-contract=off: no fused multiply-adds, so the AVX2/AVX-512 copies of the
        # optimizer loops (simd_optim.h) round exactly like the baseline copy.
        extra_compile_args=["-O3", "-fno-math-errno", "-fno-trapping-math",
                            "-ffp-contract=off"],
        include_dirs=["fastnn/_core"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )
    for name in KERNELS
]

# force: regenerate the C when checks are requested, whatever C files are lying around.
setup(ext_modules=cythonize(extensions, compiler_directives=directives, force=checked))
