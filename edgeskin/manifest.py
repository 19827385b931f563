"""manifest.json, typed: what `convert` wrote and every check run since, read and written here only.

The file's JSON shape is the one users and CI scripts already read (`artifacts[i].verdict`,
`.file`, `.recipe`, ...). Reading goes through pydantic, so a damaged or foreign file is one
line naming the file and the field, and fields written by other edgeskin versions are ignored.
Writes are atomic (temporary file, then rename): a crash never leaves half a manifest.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError

MANIFEST = "manifest.json"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class SourceCheckpoint:
    path: str
    sha256: str
    format: str
    arch: str


@dataclass
class ImageSetRecord:
    source: str  # e.g. "bundled:val" or "/data/isic:val"
    count: int


@dataclass
class CheckRecord:
    """One verification of an artifact after its conversion (`edgeskin parity`, `edgeskin.verify`)."""

    kind: str
    date: str
    images: str
    count: int
    reference: str
    verdict: str
    failures: list[str]
    agreement: float
    cosine_mean: float
    bma_loss: float


@dataclass
class ManifestEntry:
    """One artifact: its file (relative to the manifest), how it was made and its latest verdict."""

    file: str
    target: str
    recipe: str
    description: str
    verdict: str  # "pass" or "fail": the latest check's
    failures: list[str]
    bytes: int
    sha256: str
    conversion_seconds: float
    exit: int
    class_names: list[str]
    input: dict
    outputs: list[str]
    parity: dict  # the conversion verdict's full numbers (edgeskin.parity.ParityResult.to_dict)
    minimum_deployment_target: str | None = None  # Core ML only
    notes: list[str] = field(default_factory=list)
    checks: list[CheckRecord] = field(default_factory=list)
    route: str | None = None  # the tool that built it (litert-torch, onnx2tf, torch.onnx, coremltools)
    stages: list[int] = field(default_factory=list)  # an anytime file's stage exits (its `parity` is the last exit's)
    exit_parity: dict[str, dict] = field(default_factory=dict)  # an anytime file: each earlier exit's parity numbers


@dataclass
class Manifest:
    created: str
    source_checkpoint: SourceCheckpoint
    exit: int
    verdict_images: ImageSetRecord
    calibration: dict | None  # converters.calibration.CalibrationSet.summary(): images and their sha256
    versions: dict
    artifacts: list[ManifestEntry]
    edgeskin_manifest: int = 1
    contract: dict | None = None  # runtime.model_contract.ModelContract.to_dict() of the source model

    def to_json(self) -> str:
        data = asdict(self)
        for entry in data["artifacts"]:  # keys a format does not use stay out of the file
            for key in ("minimum_deployment_target", "notes", "checks", "stages", "exit_parity"):
                if not entry[key]:
                    del entry[key]
        return json.dumps({"edgeskin_manifest": data.pop("edgeskin_manifest"), **data}, indent=2) + "\n"


def read_manifest(path: str | Path) -> Manifest:
    from pydantic import TypeAdapter, ValidationError

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EdgeskinError.about(path, f"cannot read the manifest ({type(exc).__name__})") from None
    try:
        return TypeAdapter(Manifest).validate_json(text)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "the file"
        raise EdgeskinError.about(path, f"not an edgeskin manifest ({where}: {problem['msg']})") from None


def write_manifest(folder: Path, manifest: Manifest) -> Path:
    path = Path(folder) / MANIFEST
    temporary = path.with_name(f".{MANIFEST}.tmp")
    temporary.write_text(manifest.to_json(), encoding="utf-8")
    os.replace(temporary, path)
    return path


def entry_for(manifest_path: Path, manifest: Manifest, artifact: Path) -> ManifestEntry | None:
    """The entry of `manifest` (read from manifest_path) that lists `artifact`, if any."""
    target = Path(artifact).resolve()
    return next((e for e in manifest.artifacts if (manifest_path.parent / e.file).resolve() == target), None)


def listing_manifest(artifact: Path) -> Path | None:
    """The manifest beside an artifact (or one folder up, for failed/) that lists it."""
    for folder in (artifact.parent, artifact.parent.parent):
        path = folder / MANIFEST
        if path.is_file():
            try:
                if entry_for(path, read_manifest(path), artifact) is not None:
                    return path
            except EdgeskinError:
                continue  # a damaged manifest nearby does not stop a check of the file itself
    return None


def record_checks(manifest_path: Path, checks: list[tuple[Path, CheckRecord]]) -> None:
    """Append each artifact's check to its entry and make it the entry's verdict (atomically)."""
    manifest = read_manifest(manifest_path)
    for artifact, record in checks:
        entry = entry_for(manifest_path, manifest, artifact)
        if entry is None:
            raise EdgeskinError.about(manifest_path, f"does not list {artifact}")
        entry.checks.append(record)
        entry.verdict, entry.failures = record.verdict, list(record.failures)
    write_manifest(manifest_path.parent, manifest)
