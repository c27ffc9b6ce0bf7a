"""The IDX file format (MNIST's): a reader that treats its file as hostile, and a writer.

Only numpy, the standard library and fastnn._atomic are used.
"""
import gzip
import io
import os
import zlib

import numpy as np

from fastnn import _atomic, _files
from fastnn.datasets.catalog import FILE_MODE

# Limits that keep hostile input from exhausting memory, disk or patience.
MAX_IDX_BYTES = 1 << 30          # largest IDX payload read_idx accepts (1 GiB)
_CHUNK = 1 << 20

# IDX type code -> big-endian numpy dtype, as in the MNIST format description.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_MAX_DIMS = 4
_GZIP_MAGIC = b"\x1f\x8b"


def read_idx(path):
    """Read an IDX file (the MNIST format), raw or gzip-compressed.

    Gzip is recognised by its magic bytes (1f 8b), not by the file name. The
    header is validated (magic, type code, 1 to 4 dimensions) and the payload
    size it implies, ``prod(dims) * itemsize``, must be at most
    ``MAX_IDX_BYTES`` and match the data exactly, with no trailing bytes.
    Gzip data is decompressed in bounded steps, never past the size the
    header promises (+1 byte to detect trailing data), so a lying header or a
    gzip bomb cannot make this allocate much more than the real data.

    Args:
        path: file name (str or os.PathLike).

    Returns:
        numpy array of shape ``dims`` in native byte order, of dtype uint8,
        int8, int16, int32, float32 or float64 (from the header's type code).
        For example MNIST training images give a (60000, 28, 28) uint8 array.

    Raises:
        ValueError: the file is empty, truncated, corrupt, has trailing data,
            is not an IDX file, or is not a regular file (a FIFO, a device: refused
            before reading, as they could block or never end); the message names the
            file and the problem.
        OSError: the file cannot be opened or read.
    """
    name = os.fspath(path)
    with _files.open_regular(name) as f:
        start = f.read(2)
        f.seek(0)
        if not start:
            raise ValueError(f"{name}: file is empty, expected an IDX file")
        if start == _GZIP_MAGIC:
            return _read_idx_gzip(f, name)
        return _read_idx_raw(f, name)


def _parse_idx_header(read, name):
    """Read and check the IDX header through ``read(n)``.

    Returns ``(dtype, dims, payload_bytes)``; raises ValueError on any
    problem, before anything big is allocated.
    """
    head = read(4)
    if len(head) < 4:
        raise ValueError(f"{name}: truncated IDX header ({len(head)} of 4 bytes)")
    if head[0] != 0 or head[1] != 0:
        raise ValueError(
            f"{name}: not an IDX file (magic bytes {head[0]:#04x} {head[1]:#04x}, "
            "expected 0x00 0x00)")
    code, ndim = head[2], head[3]
    if code not in _IDX_DTYPES:
        known = ", ".join(f"{c:#04x}" for c in _IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX data type code {code:#04x} (expected one of {known})")
    if not 1 <= ndim <= _IDX_MAX_DIMS:
        raise ValueError(
            f"{name}: IDX header has {ndim} dimensions, expected 1 to {_IDX_MAX_DIMS}")
    raw_dims = read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise ValueError(
            f"{name}: truncated IDX header ({4 + len(raw_dims)} of {4 + 4 * ndim} bytes)")
    dims = tuple(int.from_bytes(raw_dims[4 * i:4 * i + 4], "big") for i in range(ndim))
    dtype = _IDX_DTYPES[code]
    # Python ints: the product cannot overflow, however large the header claims.
    payload = dtype.itemsize
    for d in dims:
        payload *= d
    if payload > MAX_IDX_BYTES:
        raise ValueError(
            f"{name}: IDX header claims shape {dims} ({payload} bytes of data), more than "
            f"the {MAX_IDX_BYTES}-byte limit (datasets.MAX_IDX_BYTES)")
    # An empty dimension makes the payload 0 whatever the others say, but NumPy refuses
    # shapes whose other dimensions multiply past its index range: bound them as well.
    extent = dtype.itemsize
    for d in dims:
        extent *= max(d, 1)
    if extent > MAX_IDX_BYTES:
        raise ValueError(
            f"{name}: IDX header claims the empty shape {dims}, whose non-empty dimensions "
            f"alone span more than the {MAX_IDX_BYTES}-byte limit (datasets.MAX_IDX_BYTES)")
    return dtype, dims, payload


def _to_array(buf, dtype, dims):
    arr = np.frombuffer(buf, dtype=dtype).reshape(dims)
    if dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))  # big-endian on disk -> native
    else:
        arr = arr.view(dtype.newbyteorder("="))
    return arr


def _read_idx_raw(f, name):
    dtype, dims, payload = _parse_idx_header(f.read, name)
    header = f.tell()
    size = os.fstat(f.fileno()).st_size
    # Compare with the file size before allocating the payload buffer.
    if size - header < payload:
        raise ValueError(
            f"{name}: truncated IDX file: header claims shape {dims} ({payload} bytes of "
            f"data) but only {size - header} bytes follow the header")
    if size - header > payload:
        raise ValueError(
            f"{name}: {size - header - payload} unexpected trailing bytes after the "
            f"{payload} bytes of data for shape {dims}")
    buf = bytearray(payload)
    got = f.readinto(buf)
    if got != payload:  # the file shrank while we read it
        raise ValueError(f"{name}: truncated IDX file ({got} of {payload} data bytes)")
    return _to_array(buf, dtype, dims)


def _read_idx_gzip(f, name):
    try:
        with gzip.GzipFile(fileobj=f, mode="rb") as gz:
            dtype, dims, payload = _parse_idx_header(gz.read, name)
            # The decompressed size is unknown until decompressed, so grow the
            # buffer chunk by chunk: memory follows the data actually present,
            # never the header's claim.
            buf = bytearray()
            while len(buf) < payload:
                chunk = gz.read(min(_CHUNK, payload - len(buf)))
                if not chunk:
                    break
                buf += chunk
            # One more byte: detects trailing data, and reaching the end of the
            # stream makes gzip check the CRC and the length in the trailer.
            extra = gz.read(1)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{name}: corrupt or truncated gzip data ({e})") from None
    if len(buf) < payload:
        raise ValueError(
            f"{name}: truncated IDX file: header claims shape {dims} ({payload} bytes of "
            f"data) but the gzip stream holds only {len(buf)}")
    if extra:
        raise ValueError(
            f"{name}: unexpected trailing data after the {payload} bytes of data for shape {dims}")
    return _to_array(buf, dtype, dims)


def write_idx(path, array):
    """Write ``array`` as an IDX file; gzip-compressed if ``path`` ends in ".gz".

    The file is written to a temporary name and then renamed, so a reader
    never sees half a file. Gzip output is deterministic (no name, mtime 0).

    Args:
        path: destination file name.
        array: array-like with 1 to 4 dimensions and dtype uint8, int8,
            int16, int32, float32 or float64 (stored big-endian, as IDX wants).

    Raises:
        ValueError: unsupported dtype, number of dimensions or dimension size.
    """
    name = os.fspath(path)
    arr = np.asarray(array)
    code = _idx_code(arr.dtype)
    if code is None:
        raise ValueError(
            f"array: dtype {arr.dtype} cannot be stored in IDX; expected uint8, int8, "
            "int16, int32, float32 or float64")
    if not 1 <= arr.ndim <= _IDX_MAX_DIMS:
        raise ValueError(f"array: has {arr.ndim} dimensions, IDX files here take 1 to {_IDX_MAX_DIMS}")
    if any(d >= 2 ** 32 for d in arr.shape):
        raise ValueError(f"array: shape {arr.shape} has a dimension too large for IDX (>= 2**32)")
    header = bytes([0, 0, code, arr.ndim]) + b"".join(d.to_bytes(4, "big") for d in arr.shape)
    data = np.ascontiguousarray(arr, dtype=_IDX_DTYPES[code]).tobytes()
    if name.endswith(".gz"):
        out = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
            gz.write(header)
            gz.write(data)
        content = out.getvalue()
    else:
        content = header + data
    _write_atomically(name, content)


def _idx_code(dtype):
    for code, idx_dtype in _IDX_DTYPES.items():
        if dtype.kind == idx_dtype.kind and dtype.itemsize == idx_dtype.itemsize:
            return code
    return None



def _write_atomically(name, content):
    with _atomic.atomic_write(name, mode=FILE_MODE) as out:
        out.write(content)
