"""Atomic file writes, shared by every writer in fastnn (model files, IDX files, downloads).

``with atomic_write(path) as f: f.write(...)`` writes to a temporary file in the target's
directory, then flushes, fsyncs and renames it over ``path`` (and fsyncs the directory), so
a crash at any moment, SIGKILL included, leaves the old file or the new one, never half of
one; if the block raises, the temporary is removed and ``path`` is untouched.

Writing over an existing file behaves as ``open(path, "wb")`` does, where that is
possible with a rename: a symlink is followed (the link's final target, resolved with
os.path.realpath, is replaced, atomically, by a temporary in the target's directory; the
link stays a link), and the existing file's permission bits are kept (a 0600 file stays
0600). What a rename cannot keep, it does not: the new file has a new inode, so hard links
to the old one keep the old content, and its owner is the writer.

A writer killed mid-write cannot remove its temporary. The next write to the same target
does: it removes the temporaries of that target whose writers are dead. A writer holds an
exclusive ``flock`` on its temporary from creation to rename, and the kernel drops the lock
when the process ends, however it ends; so a temporary that can be locked is stale, and one
that cannot belongs to a live writer (in this process or another) and is left alone. (A pid
in the name would not tell: pids are reused, and mean nothing across pid namespaces or
hosts; the name carries the pid only for a human reading the directory.) Where ``flock``
does not exist (Windows), stale temporaries are never removed.

Temporary names: ``.<target name>.tmp-<pid>-<8 hex digits>``.
"""
import contextlib
import os
import re
import secrets
import stat

try:
    import fcntl
except ImportError:      # pragma: no cover - not on POSIX
    fcntl = None

_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_TAIL = re.compile(r"[0-9]{1,10}-[0-9a-f]{8}")


def _prefix(path):
    return "." + os.path.basename(path) + ".tmp-"


def temporaries(path):
    """The names of the temporary files (live or stale) of writes to ``path``."""
    directory, prefix = os.path.dirname(os.path.abspath(path)), _prefix(path)
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    return sorted(os.path.join(directory, n) for n in names
                  if n.startswith(prefix) and _TAIL.fullmatch(n[len(prefix):]))


@contextlib.contextmanager
def atomic_write(path, mode=None):
    """Yield a binary file whose content replaces ``path`` atomically when the block ends.

    mode: the file's permission bits (e.g. 0o644); None gives what ``open(path, "wb")``
    would give: an existing file's bits, else a new file's (0o666 less the umask).
    A symlink at path is followed (the module docstring).
    """
    path = os.path.realpath(os.fspath(path))
    if mode is None:
        mode = _existing_mode(path)
    remove_stale_temporaries(path)
    f, tmp = _create_locked(path)
    try:
        with f:
            yield f
            f.flush()
            if mode is not None:
                os.chmod(tmp, mode)              # (os.fchmod is POSIX-only)
            os.fsync(f.fileno())
            # Renamed while still locked: a cleaner can never lock a live writer's file.
            os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def _existing_mode(path):
    """The permission bits of the regular file at path, or None if there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return stat.S_IMODE(st.st_mode) if stat.S_ISREG(st.st_mode) else None


def _create_locked(path):
    """A new temporary file next to ``path``, exclusively locked: (file, name)."""
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory,
                           f"{_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o666)
        except FileExistsError:
            continue
        f = os.fdopen(fd, "wb")
        if fcntl is None:
            return f, tmp
        # Between creating and locking, a cleaner may have taken the file for a dead
        # writer's and removed it; then the name no longer leads to this file: retry.
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                return f, tmp
        except FileNotFoundError:
            pass
        f.close()


def remove_stale_temporaries(path):
    """Remove the temporaries of writes to ``path`` whose writers are dead."""
    if fcntl is None:
        return
    for tmp in temporaries(path):
        try:
            # O_NOFOLLOW: never follow a symlink dressed as a temporary; O_NONBLOCK: never
            # hang on a FIFO.
            fd = os.open(tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _CLOEXEC)
        except OSError:
            continue                       # already renamed or removed by someone else
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)                   # locked: a live writer's
            continue
        try:
            # Unlink only if the name still leads to the file locked (not renamed since).
            if os.path.samestat(os.fstat(fd), os.stat(tmp)):
                os.unlink(tmp)
        except OSError:
            pass
        finally:
            os.close(fd)


def _unlink_quietly(name):
    try:
        os.unlink(name)
    except FileNotFoundError:
        pass


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX); some file systems refuse, which is fine."""
    try:
        fd = os.open(directory, os.O_RDONLY | _CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
