"""Typed Cython kernels: no model logic, no Python objects beyond typed memoryviews.

Every kernel here trusts its caller: shapes, dtypes, contiguity and finiteness are
checked once in ``fastnn._validation`` and the layer objects before any kernel runs.
Bounds checking is compiled out (see setup.py; FASTNN_BOUNDSCHECK=1 compiles it in).
"""
