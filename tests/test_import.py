"""Importing fastnn is light and leaves SciPy working as usual (fresh interpreters)."""
import os
import subprocess
import sys
import tempfile

import fastnn as fn

SCRIPT = r"""
import sys, resource
import numpy as np
import fastnn as fn
# fastnn loads only scipy.linalg.cython_blas, not all of scipy.linalg (29 MiB, ~110 ms)
assert "scipy.linalg" not in sys.modules, "scipy.linalg was imported"
model = fn.Sequential([fn.layers.Dense(3, activation="softmax", input_dim=4)])
model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
model.fit(np.random.rand(64, 4), np.random.randint(0, 3, 64), epochs=2, verbose=0)
fn.set_num_threads(1)
assert "scipy.linalg" not in sys.modules, "training or set_num_threads imported scipy.linalg"
# and SciPy still behaves as if imported normally
import scipy.linalg
import scipy.linalg.cython_blas as cb
from scipy.linalg import cython_blas
assert scipy.linalg.cython_blas is cb is cython_blas is sys.modules["scipy.linalg.cython_blas"]
assert np.allclose(scipy.linalg.solve(np.eye(2) * 2, np.ones(2)), 0.5)
print("ok", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""

SCIPY_FIRST = r"""
import scipy.linalg
import numpy as np
import fastnn as fn
model = fn.Sequential([fn.layers.Dense(2, input_dim=3)])
print("ok", model.predict(np.ones((1, 3))).shape)
"""


def run(script):
    installed = os.path.dirname(os.path.dirname(os.path.abspath(fn.__file__)))
    env = dict(os.environ, PYTHONPATH=installed)
    return subprocess.run([sys.executable, "-c", script], cwd=tempfile.gettempdir(),
                          env=env, capture_output=True, text=True, timeout=120)


def test_import_loads_only_cython_blas_and_scipy_still_works():
    proc = run(SCRIPT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ok")


def test_import_after_scipy_linalg_uses_the_normal_path():
    proc = run(SCIPY_FIRST)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok (1, 2)"
