"""What a list of image arguments holds: every file to classify, every entry that cannot be read
(with its reason), and what was skipped (hidden files, files that are not images), so a run can
account for every entry of a folder. Shared by `edgeskin predict` and `edgeskin-pi`.

Files named on the command line are always tried. Inside a folder (walked recursively, sorted,
links to folders not followed), a regular file is classified when Pillow can open its extension
and skipped otherwise; anything that is not a regular file (a FIFO, a device, a broken link, a
link loop) is never opened and is reported with what it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from PIL import Image

from .errors import EdgeskinError
from .paths import path_problem

IMAGE_NOUN = "image file"


@cache
def image_extensions() -> frozenset[str]:
    """Extensions of the formats this Pillow can open (not those it can only write)."""
    Image.init()
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass(frozen=True)
class Entry:
    path: Path
    problem: str | None = None  # why it cannot be read, found while walking a folder

    @property
    def source(self) -> Path | EdgeskinError:
        return self.path if self.problem is None else EdgeskinError.about(self.path, self.problem)


@dataclass
class Inputs:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)  # hidden files and folders, non-image files

    def sources(self) -> list[tuple[str, Path | EdgeskinError]]:
        """(name, path or the error that stops it) per entry, in order."""
        return [(str(e.path), e.source) for e in self.entries]

    def skipped_note(self) -> str:
        """'skipped 2 files (labels.csv, ATTRIBUTION.md)' for the summary line, '' when none."""
        if not self.skipped:
            return ""
        names = ", ".join(p.name for p in self.skipped[:5]) + (", ..." if len(self.skipped) > 5 else "")
        return f"skipped {len(self.skipped)} hidden or non-image {'file' if len(self.skipped) == 1 else 'files'} ({names})"


STRICT_REFUSAL = "hidden or not an image file extension (refused by --strict)"


def _walk(folder: Path, found: Inputs, strict: bool) -> None:
    entries: list[Entry] = []

    def skip(path: Path) -> None:
        if strict:
            entries.append(Entry(path, STRICT_REFUSAL))
        else:
            found.skipped.append(path)

    def unreadable(error: OSError) -> None:
        entries.append(Entry(Path(error.filename or folder), f"cannot list this folder ({error.strerror or error})"))

    for root, dirnames, filenames in os.walk(folder, onerror=unreadable):
        base = Path(root)
        for name in list(dirnames):
            path = base / name
            if name.startswith("."):
                skip(path)
                dirnames.remove(name)
            elif path.is_symlink():
                entries.append(Entry(path, "link to a folder: not followed inside a folder (name it on the command line)"))
        for name in filenames:
            path = base / name
            problem = path_problem(path, IMAGE_NOUN)
            if name.startswith(".") or (problem is None and path.suffix.lower() not in image_extensions()):
                skip(path)
            else:
                entries.append(Entry(path, problem))
    found.entries.extend(sorted(entries, key=lambda e: e.path))
    found.skipped.sort()


def expand_inputs(arguments: Iterable[str | Path], strict: bool = False) -> Inputs:
    """Arguments in order; each folder replaced by what it holds (see the module docstring).
    `strict`: what would be skipped is an entry that fails instead."""
    found = Inputs()
    for path in map(Path, arguments):
        if path.is_dir():
            _walk(path, found, strict)
        else:
            found.entries.append(Entry(path))
    return found
