"""The public Python API: `edgeskin.convert`, `edgeskin.verify`, `edgeskin.load`.

The `edgeskin` commands are a thin layer over the same functions, so a script gets exactly what
the CLI does: the model contract (classes, normalization, border crop) read or stated, verified
artifacts with a manifest, the parity suite. Errors are `edgeskin.EdgeskinError`, one line each.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgeskin.runtime.errors import EdgeskinError

Report = Callable[[str], None]


@dataclass(frozen=True)
class Conversion:
    """What `convert` wrote: the output folder, its manifest and every artifact's check.

    Each artifact is an edgeskin.verification.ArtifactCheck: .path, .target, .recipe, .verdict
    ("pass"/"fail"; failed files are in OUT/failed/), .bytes, .metadata (the contract it carries)
    and .parity (edgeskin.parity.ParityResult: agreement, cosine_mean, max_abs_logit_diff, BMAs,
    flipped images) - the same type `verify` reports.
    """

    out: Path
    manifest: object  # edgeskin.manifest.Manifest, as written to OUT/manifest.json
    artifacts: tuple  # of edgeskin.verification.ArtifactCheck
    model: object  # edgeskin.checkpoint.LoadedModel: the reference `verify` compares against

    @property
    def passed(self) -> bool:
        return all(a.passed for a in self.artifacts)


def _stated(classes, mean, std, crop_border, input_size=None):
    """Python values -> the same parsing and checks as the CLI flags (edgeskin.contract.stated_contract)."""
    from edgeskin.contract import stated_contract

    def text(value):
        if value is None or isinstance(value, str):
            return value
        return str(value) if isinstance(value, (int, float)) else ",".join(str(v) for v in value)  # 0.5: all channels

    return stated_contract(text(classes), None, text(mean), text(std), crop_border, input_size)


def load_model(model, *, classes: Sequence[str] | None = None, mean=None, std=None, crop_border: bool | None = None,
               input_size: int | None = None):
    """A checkpoint path (native .safetensors, Hugging Face folder, timm state dict) or an in-memory
    module -> LoadedModel. Facts the model does not carry (class names, normalization) must be
    given; given facts override.

    A module that is not a SkinViT or a timm VisionTransformer with a CLS-token head is taken as a
    generic classifier: it must take a float tensor (N, 3, input_size, input_size), RGB, normalized
    with `mean`/`std`, and return logits (N, len(classes)) (or a tuple / ModelOutput whose first
    element / `.logits` they are); `input_size` defaults to 224 (the size images are resized to).
    For other models it may be given only as the size they take.
    """
    stated = _stated(classes, mean, std, crop_border, input_size)
    if isinstance(model, (str, os.PathLike)):
        from edgeskin.model_loading import load_checkpoint

        return load_checkpoint(model, stated=stated)
    from edgeskin.checkpoint import LoadedModel

    if isinstance(model, LoadedModel):
        return model
    from edgeskin.module_import import import_module

    return import_module(model, stated)


def convert(model, *, target: str = "tflite", recipes: Sequence[str] | str | None = None, out: str | os.PathLike | None = None,
            classes: Sequence[str] | None = None, mean=None, std=None, crop_border: bool | None = None,
            data: str | os.PathLike | None = None, split: str = "val", calib: str | os.PathLike | None = None,
            calib_split: str = "train", calib_count: int = 100, exit: int | None = None, force: bool = False,
            report: Report | None = None, input_size: int | None = None, route: str = "litert",
            model_version: str | None = None, exits: str | Sequence[int] | None = None) -> Conversion:
    """Convert `model` (see load_model) to verified artifacts in `out` (default dist/<model>).

    Every artifact is checked against the PyTorch model on real images (`data`, split `split`;
    default: the rule of edgeskin.image_sources, printed through `report`); int8 recipes calibrate
    on `calib` (default: `data`). Outputs of every artifact: index 0 probabilities, 1 logits.
    classes, mean, std, crop_border, input_size: as for load_model. route (TFLite): "litert"
    (litert-torch + ai-edge-quantizer) or "onnx2tf" (its own environment: `make install-onnx2tf`).
    model_version: the version the artifacts carry (Core ML versionString, TFLite Metadata); default:
    the first 12 hex digits of the source checkpoint's sha256.
    exits: "all" or exit blocks (e.g. [2, 4, 6]): anytime files instead, one per recipe with a stage
    per exit, so the runtime can stop early (runtime/anytime.py): a .tflite with a signature per
    stage (litert route), or a multifunction .mlpackage (Core ML 8: iOS 18, macOS 15).
    """
    from edgeskin.converters.artifacts import check_output_folder
    from edgeskin.converters.descriptions import check_model_version
    from edgeskin.converters.pipeline import ConvertRequest, resolve_sources
    from edgeskin.converters.pipeline import convert as run_conversion
    from edgeskin.converters.recipes import recipes_for

    if exits is not None:  # anytime files: TFLite of the litert route or Core ML, the recipes they can be built with
        from edgeskin.converters.anytime import ANYTIME_RECIPES

        if target not in ANYTIME_RECIPES or (target == "tflite" and route != "litert"):
            raise EdgeskinError("--exits: anytime files are TFLite files of the litert route (--target tflite) or Core ML "
                                "packages (--target coreml)")
        recipes = list(ANYTIME_RECIPES[target]) if recipes is None else recipes
    chosen = recipes_for(target, ",".join(recipes) if isinstance(recipes, (list, tuple)) else recipes, route)
    version = check_model_version(model_version) if model_version is not None else ""
    loaded = load_model(model, classes=classes, mean=mean, std=std, crop_border=crop_border, input_size=input_size)
    stage_exits = _anytime_exits(exits, loaded, chosen, route) if exits is not None else ()
    out = Path(out) if out is not None else Path("dist") / loaded.config.arch
    request = ConvertRequest(loaded=loaded, recipes=chosen, out=out, exit=exit, force=force, verdict_data=data,
                             verdict_split=split, calib_data=calib, calib_split=calib_split, calib_count=calib_count,
                             route=route, model_version=version, exits=stage_exits)
    resolve_sources(request)
    if route == "onnx2tf" and "tflite" in chosen:
        from edgeskin.converters.onnx2tf_route import onnx2tf_python

        onnx2tf_python()  # before any work: without its environment, one line saying how to build it
    if "tflite" in chosen:
        from edgeskin.converters.tflite_metadata import MEDIAPIPE

        MEDIAPIPE.python()  # the TFLite Metadata writer's environment, checked before any work as well
    check_output_folder(out, force)
    folder, manifest, checks = run_conversion(request, report or (lambda message: None))
    return Conversion(folder, manifest, tuple(checks), loaded)


def _anytime_exits(exits, loaded, chosen: dict, route: str) -> tuple[int, ...]:
    """--exits checked before any work: a multi-exit model, TFLite on the litert route, the recipes anytime files support."""
    from edgeskin.runtime.stages import parse_exits, stage_plan

    config = loaded.config
    if len(config.exit_blocks) < 2:
        raise EdgeskinError(f"--exits: {config.arch} has one exit (after block {config.depth}); anytime files need a "
                            "multi-exit model (e.g. edgeskin distill --every-exit)")
    picked = parse_exits(exits, config.exit_blocks) if isinstance(exits, str) else sorted(set(exits))
    return tuple(s.exit for s in stage_plan(config.exit_blocks, picked))


def verify(artifacts, *, reference=None, data: str | os.PathLike | None = None, split: str = "test",
           out: str | os.PathLike | None = None, explain: bool = False, bench: bool = False, threads: int | None = None,
           classes: Sequence[str] | None = None, mean=None, std=None, crop_border: bool | None = None,
           report: Report | None = None, input_size: int | None = None):
    """The parity suite: every artifact against the PyTorch reference on one split of real images.

    `artifacts`: a Conversion, or artifact files / manifest.json files / folders written by convert.
    `reference`: the model they came from (a path or module, as for convert); a Conversion brings its
    own. Returns edgeskin.parity_check.ParityRun (.checks[i].parity, .failed); with `out`, also
    writes report.json, report.md and the plots there. Latency (`bench=True`) needs the reference
    as a checkpoint file, timed in its own process. classes, mean, std, crop_border, input_size: as
    for load_model.
    """
    from edgeskin.parity_check import ParityRequest, run_parity
    from edgeskin.runtime.errors import EdgeskinError

    if isinstance(artifacts, Conversion):
        reference = reference if reference is not None else artifacts.model
        paths = [a.path for a in artifacts.artifacts]
    else:
        paths = [Path(p) for p in (artifacts if isinstance(artifacts, (list, tuple)) else [artifacts])]
    if reference is None:
        raise EdgeskinError("verify: pass reference= (the checkpoint or module the artifacts came from)")
    if isinstance(reference, (str, os.PathLike)):  # a file that carries no contract takes the artifacts' record
        reference, stated = Path(reference), _stated(classes, mean, std, crop_border, input_size)
    else:
        reference = load_model(reference, classes=classes, mean=mean, std=std, crop_border=crop_border, input_size=input_size)
        stated = None
        if bench and not Path(reference.source).is_file():
            raise EdgeskinError("verify(bench=True) times the reference in its own process: pass it as a checkpoint file")
    request = ParityRequest(artifacts=paths, reference=reference, data=data, split=split, explain=explain, bench=bench,
                            threads=threads, stated=stated)
    run = run_parity(request, report or (lambda message: None))
    if out is not None:
        from edgeskin.reports import check_report_folder, write_reports

        check_report_folder(Path(out))
        write_reports(run, Path(out))
    return run


def load(path: str | os.PathLike, threads: int | None = None):
    """An artifact (.tflite, .onnx, .mlpackage) -> a torch-free Predictor (edgeskin.runtime.load)."""
    from edgeskin.runtime import load as load_artifact

    return load_artifact(path, threads=threads)
