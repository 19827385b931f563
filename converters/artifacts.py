"""Staged, atomic output folders, artifact names and digests (the manifest: edgeskin/manifest.py)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.integrity import artifact_digest, package_files

__all__ = ["artifact_digest"]  # the manifest's digest is the runtime's (it checks files against it)

_ACTIVE_STAGING: set[Path] = set()  # staging folders of conversions in progress in this process


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


@contextmanager
def staged_folder(out: Path, force: bool):
    """Yield a temporary folder beside `out`; on success it replaces `out` in one rename.

    On any failure or interruption (Ctrl-C included) the staging folder is removed and `out`
    is left exactly as it was: no half-written conversion is ever visible.
    """
    check_output_folder(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    _ACTIVE_STAGING.add(staging)
    try:
        yield staging
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
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
