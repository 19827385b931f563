"""Model files are untrusted input: no runtime touches one in this process before it is vouched for.

A TFLite interpreter trusts the flatbuffer it is given: one changed byte can make it read out of
bounds and kill the process (a segfault no Python code can catch). So before `load` opens a model:

1. beside it, a `manifest.json` that lists it must give the same sha256 (edgeskin wrote and
   verified that file; a changed byte is an error saying so), else
2. a first load and one inference run in a child process; a crash, a hang or an error there is one
   line here. A file that passes is remembered by its sha256 and the runtime's version, in
   $EDGESKIN_CACHE (default ~/.cache/edgeskin), so the child runs once per file, not per start.

`python -m edgeskin.runtime.integrity MODEL [--checker]` is that child.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np

from .errors import EdgeskinError, one_line
from .paths import path_problem

MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 16 * 2**20
PROBE_TIMEOUT_S = 300  # an emulated Pi (qemu) needs a minute for what x86 does in a second
CACHE_ENV = "EDGESKIN_CACHE"
# the runtimes whose version decides whether a file that loaded before still loads
_RUNTIME_PACKAGES = ("ai-edge-litert", "tflite-runtime", "tensorflow", "onnxruntime", "coremltools")


def package_files(folder: Path) -> list[Path]:
    """Every file of a package folder (.mlpackage), in a fixed order."""
    return sorted(p for p in folder.rglob("*") if p.is_file())


def artifact_digest(path: Path) -> tuple[int, str]:
    """(bytes, sha256) of an artifact file, or of a package folder (every file, by relative path):
    the value manifest.json records."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size, _file_sha256(path).hexdigest()
    digest, size = hashlib.sha256(), 0
    for file in package_files(path):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + _file_sha256(file).digest())
        size += file.stat().st_size
    return size, digest.hexdigest()


def _file_sha256(path: Path):
    """sha256 in 1 MB reads: a model of hundreds of MB is never held in memory to be hashed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest


def listed_sha256(artifact: Path) -> str | None:
    """The sha256 that the manifest.json beside `artifact` (or one folder up, for failed/) records
    for it; None when no manifest lists it."""
    for folder in (artifact.parent, artifact.parent.parent):
        manifest = folder / MANIFEST
        if path_problem(manifest) is not None or manifest.stat().st_size > MAX_MANIFEST_BYTES:
            continue
        relative = artifact.relative_to(folder).as_posix()
        try:
            entries = json.loads(manifest.read_text(encoding="utf-8")).get("artifacts", [])
            listed = next((e["sha256"] for e in entries if isinstance(e, dict) and e.get("file") == relative), None)
        except (OSError, ValueError, AttributeError, KeyError, TypeError):
            continue  # a damaged manifest vouches for nothing: the file is probed instead
        if listed is not None:
            return str(listed)
    return None


def _runtime_versions() -> str:
    found = []
    for name in _RUNTIME_PACKAGES:
        try:
            found.append(f"{name}={package_metadata.version(name)}")
        except package_metadata.PackageNotFoundError:
            continue
    return ",".join(found)


def _cache_entry(digest: str) -> Path:
    root = Path(os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgeskin")
    key = hashlib.sha256(f"{digest}|{_runtime_versions()}".encode()).hexdigest()
    return root / "verified-models" / key


def _remember(entry: Path) -> None:
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.touch()
    except OSError:
        pass  # a read-only home: the child simply runs again next time


def child_command(path: Path, checker: bool) -> list[str]:
    """The probe: this interpreter running this module's _child on the file."""
    return [sys.executable, "-m", "edgeskin.runtime.integrity", str(path.resolve())] + (["--checker"] if checker else [])


def _probe_in_child(path: Path, checker: bool) -> None:
    command = child_command(path, checker)
    try:  # cwd "/": nothing in the user's folder can shadow a module of the child
        done = subprocess.run(command, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, cwd="/")
    except subprocess.TimeoutExpired:
        raise EdgeskinError.about(path, f"the model runtime did not finish loading this file within {PROBE_TIMEOUT_S} s") from None
    except OSError as exc:  # no process can be started here: say so, and how to load a file you trust
        raise EdgeskinError.about(path, f"cannot start a process to check this file first ({one_line(exc)}); "
                                  "load(path, verify=False) skips the check for files you trust") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name if -done.returncode in signal.valid_signals() else str(-done.returncode)
        raise EdgeskinError.about(path, f"the model runtime crashed ({name}) loading this file: it is corrupt or damaged")
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        problem = lines[-1] if lines else f"the model runtime failed on this file (exit code {done.returncode})"
        raise EdgeskinError.about(path, problem.removeprefix(f"{path.resolve()}: "))


def verify(path: Path, checker: bool = False) -> str:
    """Vouch for a model file before this process loads it; returns how: manifest, cache or probe."""
    _, digest = artifact_digest(path)
    listed = listed_sha256(path)
    if listed is not None:
        if listed != digest:
            raise EdgeskinError.about(path, f"sha256 {digest[:16]}... differs from the {listed[:16]}... that {MANIFEST} "
                                      "records: the file changed after edgeskin wrote and verified it")
        return "manifest"
    entry = _cache_entry(digest)
    if entry.exists():
        return "cache"
    _probe_in_child(path, checker)
    _remember(entry)
    return "probe"


def _blank(spec) -> np.ndarray:
    return np.zeros([d if isinstance(d, int) and d > 0 else 1 for d in spec.shape], dtype=spec.dtype)


def _child(argv: list[str]) -> int:
    """Load the model and run it once on a blank input; a crash kills only this process."""
    from .formats import format_of

    path, checker = Path(argv[0]), "--checker" in argv[1:]
    try:
        backend = format_of(path).open_backend(path, 1, checker)
        signatures = backend.signatures() if hasattr(backend, "signatures") else {}
        if len(signatures) > 1:  # an anytime file: every stage runs once
            for key, tensors in signatures.items():
                backend.run_signature(key, {name: _blank(spec) for name, spec in tensors["inputs"].items()})
        else:
            backend.run(_blank(backend.inputs[0]))
    except EdgeskinError as exc:
        print(exc, file=sys.stderr)
        return 2
    except Exception as exc:  # the runtime's own exception on a bad file: one line for the parent
        print(f"{path}: the model runtime cannot run this file ({type(exc).__name__}: {one_line(exc)})", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
