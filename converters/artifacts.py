"""Staged, atomic output folders and artifact names and sizes (digests: runtime/integrity.py, which checks
files against them; the manifest: edgeskin/manifest.py)."""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.integrity import package_files

_ACTIVE_STAGING: set[Path] = set()
# ".partial-<pid>-<random>" / ".old-<pid>-<random>" after ".<out name>"; names without a pid are an
# earlier edgeskin's, whose process cannot be checked: stale
_STAGING_NAME = re.compile(r"(partial|old)-(?:(?P<pid>\d+)-)?[A-Za-z0-9_]+")  # staging folders of conversions in progress in this process


def artifact_name(model: str, exit: int, recipe: str, suffix: str) -> str:
    return f"{model}-e{exit}-{recipe}{suffix}"


def bytes_embedder(embed_bytes):
    """A format's (bytes, metadata) -> bytes embedder as the format table's file-to-file column."""

    def embed(probe: Path, metadata, destination: Path) -> None:
        destination.write_bytes(embed_bytes(probe.read_bytes(), metadata))

    return embed


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_bytes(path: Path) -> int:
    """Size of an artifact file, or of a package folder with everything in it."""
    path = Path(path)
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in package_files(path))


def check_output_folder(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise EdgeskinError.about(out, "output folder exists (use --force to replace it)")
    if out.exists() and not out.is_dir():
        raise EdgeskinError.about(out, "exists and is not a folder")


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_staging(out: Path, report: Callable[[str], None] | None = None) -> list[Path]:
    """Remove the staging and trash folders beside `out` whose process no longer exists (SIGKILL,
    a power cut: no handler ran), saying so; those of a live conversion are left alone."""
    removed = []
    for leftover in sorted(out.parent.glob(f".{glob.escape(out.name)}.*")):
        match = _STAGING_NAME.fullmatch(leftover.name[len(out.name) + 2 :])
        if match is None or not leftover.is_dir() or leftover.is_symlink():
            continue
        pid = int(match["pid"]) if match["pid"] else None
        if pid is not None and _process_alive(pid):
            continue
        shutil.rmtree(leftover, ignore_errors=True)
        removed.append(leftover)
        if report is not None:
            owner = f"process {pid}, which no longer runs" if pid is not None else "an earlier edgeskin"
            report(f"removed {leftover.name}, a conversion left unfinished by {owner}")
    return removed


@contextmanager
def staged_folder(out: Path, force: bool, report: Callable[[str], None] | None = None):
    """Yield a temporary folder beside `out`; on success it replaces `out` in one rename.

    On any failure or interruption (Ctrl-C included) the staging folder is removed and `out`
    is left exactly as it was: no half-written conversion is ever visible. The folder's name holds
    this process's id, so a run killed outright is cleaned up by the next one into the same place.
    """
    check_output_folder(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out, report)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
    _ACTIVE_STAGING.add(staging)
    try:
        yield staging
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
        os.chmod(out, 0o755)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _ACTIVE_STAGING.discard(staging)


def abandon_staging() -> None:
    """Remove every in-progress staging folder (for signal handlers: some libraries swallow
    KeyboardInterrupt, so cleanup cannot rely on the exception reaching staged_folder)."""
    for staging in list(_ACTIVE_STAGING):
        shutil.rmtree(staging, ignore_errors=True)
        _ACTIVE_STAGING.discard(staging)
