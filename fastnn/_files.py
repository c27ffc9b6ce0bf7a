"""Opening files from outside for reading: regular files only (shared by the model-file
reader and fn.datasets.read_idx; standard library only).

``open(path, "rb")`` reads whatever the name leads to: a FIFO blocks the opening (and the
reading) forever, /dev/zero or /dev/urandom (or a symlink to them) never ends, a socket
or a terminal waits for input. A file format here is a regular file, so anything else is
refused before a byte is read: the name is opened without blocking (O_NONBLOCK: opening a
FIFO for reading returns at once), then what was opened is checked with fstat, so the check
and the read concern the same file (no window in which the name could be swapped).
Symlinks are followed, as open() follows them; their target is what is checked.
"""
import errno
import os
import stat

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | \
    getattr(os, "O_BINARY", 0)
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


class NotARegularFile(ValueError):
    """The path leads to a FIFO, a device or a socket, not to a file's bytes."""


def open_regular(path):
    """Open path for binary reading if it is a regular file (after following symlinks).

    Returns a buffered binary file object, as open(path, "rb") does. Raises OSError if it cannot be opened (FileNotFoundError,
    PermissionError; IsADirectoryError for a directory, as open() does) and
    NotARegularFile (a ValueError naming the path) for a FIFO, a device or a socket.
    """
    name = os.fspath(path)
    fd = os.open(name, _FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        if not stat.S_ISREG(mode):
            kind = next((what for test, what in _KINDS if test(mode)), "of an unknown kind")
            raise NotARegularFile(f"{path}: is {kind}, not a regular file; refusing to "
                                  f"read it")
        # O_NONBLOCK means nothing for a regular file's reads; it is left set.
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
