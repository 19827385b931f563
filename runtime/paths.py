"""Which paths edgeskin reads: regular files only, everywhere a path is taken.

Opening a FIFO blocks forever, /dev/zero never ends, a symlink loop or a broken link is not a
missing file: every image, model, checkpoint and data file is checked here first (after
resolving links), and anything but a readable regular file is a one-line error that says what it
is. Nothing here opens the path.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import EdgeskinError

_KINDS = ((stat.S_ISDIR, "is a folder"), (stat.S_ISFIFO, "is a named pipe (FIFO)"), (stat.S_ISCHR, "is a character device"),
          (stat.S_ISBLK, "is a block device"), (stat.S_ISSOCK, "is a socket"))


def path_problem(path: str | os.PathLike, noun: str = "file") -> str | None:
    """Why `path` is not a readable regular file (None when it is), e.g. 'symbolic link loop'."""
    try:
        mode = os.stat(path).st_mode  # follows links
    except FileNotFoundError:
        if os.path.islink(path):
            return f"broken symbolic link (to {os.readlink(path)})"
        return f"no such {noun}"
    except (OSError, ValueError) as exc:
        number = getattr(exc, "errno", None)
        if number == errno.ELOOP:
            return "symbolic link loop"
        if number in (errno.EACCES, errno.EPERM):
            return "permission denied"
        if number == errno.ENOTDIR:
            return f"no such {noun} (a part of the path is not a folder)"
        return f"cannot be read ({getattr(exc, 'strerror', None) or exc})"
    if stat.S_ISREG(mode):
        return None if os.access(path, os.R_OK) else "permission denied"
    kind = next((text for test, text in _KINDS if test(mode)), "is not a regular file")
    return f"{kind}, not a file"


def regular_file(path: str | os.PathLike, noun: str = "file") -> Path:
    """`path` as a Path when it is a readable regular file; else EdgeskinError('PATH: problem')."""
    problem = path_problem(path, noun)
    if problem is not None:
        raise EdgeskinError.about(path, problem)
    return Path(path)


def read_bytes(path: str | os.PathLike, noun: str = "file") -> bytes:
    """A regular file's bytes (special files refused before they are opened)."""
    path = regular_file(path, noun)
    try:
        return path.read_bytes()
    except OSError as exc:
        raise EdgeskinError.about(path, f"cannot be read ({exc.strerror or exc})") from None
