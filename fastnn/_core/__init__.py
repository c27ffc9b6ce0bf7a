"""Typed Cython kernels: no model logic, no Python objects beyond typed memoryviews.

Every kernel here trusts its caller: shapes, dtypes, contiguity and finiteness are
checked once in ``fastnn._validation`` and the layer objects before any kernel runs.
Bounds checking is compiled out (see setup.py; FASTNN_BOUNDSCHECK=1 compiles it in).
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys


def _preload_cython_blas():
    """Load scipy.linalg.cython_blas without running scipy/linalg/__init__.py.

    The kernels `cimport scipy.linalg.cython_blas`, which at import time fetches the BLAS
    function pointers from that one extension module. Importing it the usual way first
    imports all of scipy.linalg (decompositions, array-API helpers, ...): 29 MiB of memory
    and ~110 ms that fastnn never uses. Registering the extension module under its own
    name first lets the kernels find it in sys.modules. Anything unexpected (a different
    SciPy layout, scipy.linalg already imported) falls back to the normal import; a later
    `import scipy.linalg` by the user works as usual.
    """
    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec("scipy")
        directory = os.path.join(os.path.dirname(spec.origin), "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(directory, "cython_blas" + suffix)
            if os.path.isfile(path):
                break
        else:
            return
        blas_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(blas_spec)
        sys.modules[name] = module
        try:
            blas_spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(name, None)
            raise
        sys.meta_path.insert(0, _AttachWhenLinalgLoads())
    except Exception:
        return


class _AttachWhenLinalgLoads(importlib.abc.MetaPathFinder):
    """When scipy.linalg is imported later, set its `cython_blas` attribute to the module
    loaded above (the normal import would have set it), then step out of the way."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "scipy.linalg":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            module.cython_blas = sys.modules["scipy.linalg.cython_blas"]
        spec.loader.exec_module = exec_module
        return spec


_preload_cython_blas()
