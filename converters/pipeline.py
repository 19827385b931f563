"""`edgeskin convert`: checkpoint -> artifacts + manifest, each with an immediate parity verdict.

Everything is written into a staging folder beside OUT and moved into place only when complete
(converters.artifacts.staged_folder). Artifacts that fail their gate go to OUT/failed/ and are
marked failed in the manifest: never shipped silently.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeskin.checkpoint import LoadedModel
from edgeskin.converters.artifacts import artifact_name, staged_folder
from edgeskin.converters.calibration import DEFAULT_COUNT, CalibrationSet, calibration_set
from edgeskin.converters.coreml import MINIMUM_DEPLOYMENT_TARGET
from edgeskin.converters.onnx import export_onnx_bytes
from edgeskin.converters.recipes import DEFAULT_ROUTE, ROUTE_LABELS, Recipe
from edgeskin.environment import library_versions
from edgeskin.image_sources import ImageSource, describe, resolve_images
from edgeskin.manifest import (
    MANIFEST,
    ImageSetRecord,
    Manifest,
    ManifestEntry,
    SourceCheckpoint,
    now,
    write_manifest,
)
from edgeskin.progress import stage
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.formats import Format, format_for_target, resolve
from edgeskin.runtime.integrity import artifact_digest  # the digest the runtime checks files against
from edgeskin.runtime.metadata import OUTPUT_ROLES, ArtifactMetadata, InputContract
from edgeskin.runtime.predictions import QUANTIZED_DTYPES, dequantize, model_input
from edgeskin.runtime.predictor import load as load_artifact
from edgeskin.verification import ArtifactCheck, VerificationImages, check_artifact, verification_images


@dataclass
class ConvertRequest:
    loaded: LoadedModel
    recipes: dict[str, list[Recipe]]  # target ("tflite", "onnx") -> its recipes
    out: Path
    exit: int | None = None
    force: bool = False
    # Image folders as the user gave them; None follows the rule of edgeskin.image_sources, except
    # that calibration draws from verdict_data's folder (its calib_split) when only that was given.
    verdict_data: str | Path | None = None
    verdict_split: str = "val"
    calib_data: str | Path | None = None
    calib_split: str = "train"
    calib_count: int = DEFAULT_COUNT
    route: str = DEFAULT_ROUTE  # TFLite: "litert" (litert-torch + ai-edge-quantizer) or "onnx2tf"
    model_version: str = ""  # the artifacts' version (Core ML versionString, TFLite Metadata); "": the checkpoint's sha256
    exits: tuple[int, ...] = ()  # anytime files (--exits): the exits their stages end at; (): one exit per file


@dataclass(frozen=True)
class ImageSources:
    verdict: ImageSource
    calibration: ImageSource | None  # None when no recipe needs calibration


@dataclass
class Converted:
    """One artifact as a converter produced it, before it is labelled and checked."""

    recipe: Recipe
    probe: Path  # the converter's file, in the staging folder's .work/
    seconds: float
    route: str  # the tool that built it: litert-torch, onnx2tf, torch.onnx, coremltools
    notes: tuple[str, ...] = ()
    versions: dict = field(default_factory=dict)  # libraries of another environment (the onnx2tf route's)
    stages: tuple[int, ...] = ()  # an anytime file's stage exits (converters/anytime.py)


def resolve_sources(request: ConvertRequest) -> ImageSources:
    """Both folders, checked before any work: a path the user gave that does not exist is an error."""
    verdict = resolve_images(request.verdict_data, "--data")
    given = resolve_images(request.calib_data, "--calib") if request.calib_data is not None else None
    if not any(r.needs_calibration for recipes in request.recipes.values() for r in recipes):
        return ImageSources(verdict, None)
    calibration = given or verdict  # without --calib: the --data folder, or the same rule's choice
    same = calibration.root.resolve() == verdict.root.resolve() and request.calib_split == request.verdict_split
    if same:
        raise EdgeskinError(f"--calib-split {request.calib_split} is the split the verdicts use: calibration must be disjoint from it")
    return ImageSources(verdict, calibration)


def _calibration(request: ConvertRequest, source: ImageSource | None, report) -> CalibrationSet | None:
    if source is None:
        return None
    config = request.loaded.config
    calibration = calibration_set(source, request.calib_split, config.class_names, config.preprocess, request.calib_count)
    note = f"no {', '.join(calibration.missing_classes)} images in this set" if calibration.missing_classes else ""
    report(describe("calibration", len(calibration.image_ids), calibration.source, note))
    return calibration


def _metadata(request: ConvertRequest, fmt: Format, exit: int, converted: Converted, contract: InputContract,
              versions) -> ArtifactMetadata:
    config = request.loaded.config
    return ArtifactMetadata(model=config.arch, exit=exit, recipe=converted.recipe.name, target=fmt.target, route=converted.route,
                            class_names=config.class_names, input=contract, preprocess=config.preprocess.to_dict(),
                            normalization={"mean": list(config.mean), "std": list(config.std), "applied": "inside the graph"},
                            outputs=OUTPUT_ROLES, source_checkpoint_sha256=request.loaded.source_sha256,
                            converter={**versions, **converted.versions}, model_version=request.model_version,
                            stages=converted.stages)


def _identify_outputs(backend, reference_logits: np.ndarray, probe: np.ndarray) -> list[str]:
    """The role of each output as a converter wrote it, told apart by value on a real image (onnx2tf
    keeps or drops names and order depending on the recipe). Only used to put the file in the
    declared order (OUTPUT_ROLES); the shipped artifact declares its outputs itself."""
    raw = backend.run(probe)
    shifted = np.exp(reference_logits - reference_logits.max())
    expected = {"logits": reference_logits, "probabilities": shifted / shifted.sum()}
    names = []
    for spec, value in zip(backend.outputs, raw, strict=True):
        value = dequantize(value, spec)
        distance = {role: np.abs(value - target).mean() for role, target in expected.items()}
        names.append(min(distance, key=distance.get))
    if sorted(names) != sorted(OUTPUT_ROLES):
        raise EdgeskinError(f"cannot tell the converted model's outputs apart (matched {names})")
    return names


def _input_contract(spec, layout: str) -> InputContract:
    quantized = spec.dtype in QUANTIZED_DTYPES
    return InputContract(shape=tuple(spec.shape), dtype=spec.dtype, layout=layout,
                         scale=spec.scale if quantized else None, zero_point=spec.zero_point if quantized else None)


def _finish(request: ConvertRequest, fmt: Format, exit: int, converted: Converted, staging: Path, images: VerificationImages,
            versions: dict) -> tuple[ArtifactCheck, ManifestEntry]:
    """Label a converted model, embed its metadata, check it on the verdict images; a failing
    artifact goes to failed/."""
    if converted.stages:
        return _finish_anytime(request, fmt, exit, converted, staging, images, versions)
    probe = converted.probe
    backend = fmt.open_backend(probe, None, True)
    contract = _input_contract(backend.inputs[0], fmt.layout)
    found = _identify_outputs(backend, images.reference[exit][0], model_input(images.pixels[0], fmt.layout, backend.inputs[0]))
    if fmt.target == "tflite":
        from edgeskin.converters.tflite import declare_outputs

        probe.write_bytes(declare_outputs(probe.read_bytes(), found))
    elif tuple(found) != OUTPUT_ROLES:  # ONNX and Core ML declare them when exported
        raise EdgeskinError(f"{fmt.target} export wrote outputs {found}, not {', '.join(OUTPUT_ROLES)}")
    meta = _metadata(request, fmt, exit, converted, contract, versions)
    name = artifact_name(request.loaded.config.arch, exit, converted.recipe.name, fmt.suffix)
    resolve(fmt.embed)(probe, meta, staging / name)
    check = check_artifact(load_artifact(staging / name, coreml_checker=True), images)
    return _ship(fmt, exit, converted, staging, name, check, meta)


def _finish_anytime(request: ConvertRequest, fmt: Format, exit: int, converted: Converted, staging: Path,
                    images: VerificationImages, versions: dict) -> tuple[ArtifactCheck, ManifestEntry]:
    """An anytime file: the edgeskin metadata (for .tflite without TFLite Metadata: MediaPipe cannot
    run stages), every exit checked, then the exit policy chosen on the verdict images and stored beside it."""
    from edgeskin.anytime_policy import DEFAULT_BUDGET, MELANOMA_BUDGET, choose_policy
    from edgeskin.verification import check_anytime

    embed = resolve(ANYTIME_EMBED[fmt.target])
    backend = fmt.open_backend(converted.probe, None, True)
    pixels = backend.inputs[0] if fmt.target == "coreml" else backend.signatures()[f"exit_{converted.stages[0]}"]["inputs"]["pixels"]
    meta = _metadata(request, fmt, exit, converted, _input_contract(pixels, fmt.layout), versions)
    name = anytime_name(request.loaded.config.arch, converted.stages, converted.recipe.name, fmt.suffix)
    embed(converted.probe, meta, staging / name)
    check, probabilities = check_anytime(load_artifact(staging / name, verify=False, coreml_checker=True), images)
    policy, outcome, full = choose_policy(probabilities, images.labels, images.class_names, DEFAULT_BUDGET)
    anytime = {"measure": policy.measure, "thresholds": {str(k): v for k, v in policy.thresholds.items()},
               "chosen_on": images.source, "budget": f"BMA loss <= {DEFAULT_BUDGET * 100:g} point, melanoma sensitivity loss "
               f"<= {MELANOMA_BUDGET * 100:g} points against the full depth",
               "on_those_images": {"bma": outcome.bma, "full_depth_bma": full.bma, "mean_blocks": outcome.blocks,
                                   "exits": outcome.histogram(converted.stages)}}
    meta = replace(meta, anytime=anytime)
    if fmt.is_package:
        shutil.rmtree(staging / name)
    embed(converted.probe, meta, staging / name)
    return _ship(fmt, exit, converted, staging, name, replace(check, metadata=meta), meta)


# How an anytime file's metadata is embedded ("module:function", as runtime/formats.py's embed column)
ANYTIME_EMBED = {"tflite": "edgeskin.converters.tflite:embed_edgeskin_entry", "coreml": "edgeskin.converters.coreml:embed_coreml_metadata"}


def anytime_name(model: str, stages: tuple[int, ...], recipe: str, suffix: str = ".tflite") -> str:
    return f"{model}-anytime-e{'-'.join(map(str, stages))}-{recipe}{suffix}"


def minimum_deployment_target(fmt: Format, converted: Converted) -> str | None:
    """The Core ML release a package needs (multifunction anytime packages need Core ML 8)."""
    from edgeskin.converters import coreml_anytime

    if fmt.target != "coreml":
        return None
    return coreml_anytime.MINIMUM_DEPLOYMENT_TARGET if converted.stages else MINIMUM_DEPLOYMENT_TARGET


def _ship(fmt: Format, exit: int, converted: Converted, staging: Path, name: str, check: ArtifactCheck,
          meta: ArtifactMetadata) -> tuple[ArtifactCheck, ManifestEntry]:
    """A failing artifact to failed/; the manifest entry of the file as it now is."""
    if not check.passed:
        (staging / "failed").mkdir(exist_ok=True)
        (staging / name).rename(staging / "failed" / name)
        name = f"failed/{name}"
    size, digest = artifact_digest(staging / name)
    entry = ManifestEntry(name, fmt.target, converted.recipe.name, converted.recipe.description, check.verdict,
                          check.failures, size, digest, round(converted.seconds, 2), exit, list(meta.class_names),
                          meta.input.__dict__, list(meta.outputs), check.parity.to_dict(),
                          minimum_deployment_target(fmt, converted), list(converted.notes),
                          route=converted.route, stages=list(converted.stages),
                          exit_parity={str(k): p.to_dict() for k, p in check.exit_parity.items() if k != exit})
    return replace(check, path=Path(name)), entry


def _probe(staging: Path, recipe: Recipe, suffix: str, raw: bytes) -> Path:
    path = staging / ".work" / f"probe-{recipe.name}{suffix}"
    path.write_bytes(raw)
    return path


def _convert_tflite(request, exit, staging, images, calibration, report) -> list[Converted]:
    """The default route, litert-torch + ai-edge-quantizer; quantized recipes start from its
    float32 file, and their time includes it."""
    from edgeskin.converters.litert_route import export_float, quantize

    log = staging / ".work" / "litert.log"
    began = time.perf_counter()
    with stage(report, "litert-torch: converting (float32)"):
        fp32 = export_float(request.loaded.model, exit, images.pixels[0], log)
    float_seconds = time.perf_counter() - began
    converted = []
    for recipe in request.recipes["tflite"]:
        began = time.perf_counter()
        if recipe.name == "fp32":
            raw = fp32
        elif recipe.needs_calibration:
            report(f"{recipe.name}: ai-edge-quantizer")
            raw = quantize(fp32, recipe.name, calibration.pixels, report, log)
        else:
            with stage(report, f"{recipe.name}: ai-edge-quantizer"):
                raw = quantize(fp32, recipe.name, None, report, log)
        seconds = float_seconds + (time.perf_counter() - began if recipe.name != "fp32" else 0.0)
        converted.append(Converted(recipe, _probe(staging, recipe, format_for_target("tflite").suffix, raw), seconds,
                                   ROUTE_LABELS["litert"]))
    return converted


def _convert_tflite_onnx2tf(request, exit, staging, images, calibration, report) -> list[Converted]:
    """The second route: ONNX exported here, onnx2tf and TensorFlow run in their own environment."""
    from edgeskin.converters import onnx2tf_route

    recipes = request.recipes["tflite"]
    onnx = export_onnx_bytes(request.loaded.model, exit, images.pixels[0])
    result = onnx2tf_route.convert(onnx, [r.name for r in recipes], images.pixels,
                                   calibration.pixels if calibration else None, staging / ".work" / "onnx2tf", report)
    return [Converted(recipe, _probe(staging, recipe, format_for_target("tflite").suffix, result.files[recipe.name]),
                      result.seconds[recipe.name], ROUTE_LABELS["onnx2tf"], versions=result.versions) for recipe in recipes]


def _convert_onnx(request, exit, staging, images, calibration, report) -> list[Converted]:
    began = time.perf_counter()
    raw = export_onnx_bytes(request.loaded.model, exit, images.pixels[0])
    seconds = time.perf_counter() - began
    return [Converted(recipe, _probe(staging, recipe, format_for_target("onnx").suffix, raw), seconds, "torch.onnx")
            for recipe in request.recipes["onnx"]]


def _convert_coreml(request, exit, staging, images, calibration, report) -> list[Converted]:
    from edgeskin.converters.coreml import convert_coreml

    recipes = request.recipes["coreml"]
    began = time.perf_counter()
    with stage(report, "coremltools: converting (" + ", ".join(r.name for r in recipes) + ")"):
        packages, frontend = convert_coreml(request.loaded.model, exit, request.loaded.config.class_names,
                                            [r.name for r in recipes], images.pixels[0], staging / ".work")
    seconds = (time.perf_counter() - began) / len(recipes)
    return [Converted(recipe, packages[recipe.name], seconds, "coremltools", (f"captured with {frontend}",)) for recipe in recipes]


def _convert_anytime(request, exit, staging, images, calibration, report) -> list[Converted]:
    """Anytime files (--exits): the stages as signatures of one .tflite per recipe (converters/anytime.py)."""
    from edgeskin.converters import anytime
    from edgeskin.runtime.stages import stage_plan

    plan = stage_plan(request.loaded.config.exit_blocks, request.exits)
    log = staging / ".work" / "litert.log"
    began = time.perf_counter()
    with stage(report, f"litert-torch: converting {len(plan)} stages (float32)"):
        fp32 = anytime.export_stages(request.loaded.model, plan, images.pixels[0], log)
    float_seconds = time.perf_counter() - began
    converted = []
    for recipe in request.recipes["tflite"]:
        began = time.perf_counter()
        report(f"{recipe.name}: {'as converted' if recipe.name == 'fp32' else 'ai-edge-quantizer'}")
        raw = anytime.build(fp32, plan, recipe.name, calibration.pixels if calibration else None, report, log)
        seconds = float_seconds + (time.perf_counter() - began if recipe.name != "fp32" else 0.0)
        converted.append(Converted(recipe, _probe(staging, recipe, ".tflite", raw), seconds, ROUTE_LABELS["litert"],
                                   stages=tuple(s.exit for s in plan)))
    return converted


def _convert_coreml_anytime(request, exit, staging, images, calibration, report) -> list[Converted]:
    """Anytime packages (--exits): the stages as functions of one .mlpackage per recipe (converters/coreml_anytime.py)."""
    from edgeskin.converters.coreml_anytime import convert_coreml_stages
    from edgeskin.runtime.stages import stage_plan

    plan = stage_plan(request.loaded.config.exit_blocks, request.exits)
    recipes = request.recipes["coreml"]
    began = time.perf_counter()
    with stage(report, f"coremltools: converting {len(plan)} stages (" + ", ".join(r.name for r in recipes) + ")"):
        packages, frontend = convert_coreml_stages(request.loaded.model, plan, [r.name for r in recipes], images.pixels[0],
                                                   staging / ".work")
    seconds = (time.perf_counter() - began) / len(recipes)
    return [Converted(recipe, packages[recipe.name], seconds, "coremltools", (f"captured with {frontend}",),
                      stages=tuple(s.exit for s in plan)) for recipe in recipes]


# (target, route) -> its converter; "anytime" is the route of --exits

CONVERTERS = {("tflite", "litert"): _convert_tflite, ("tflite", "onnx2tf"): _convert_tflite_onnx2tf, ("tflite", "anytime"): _convert_anytime,
              ("onnx", None): _convert_onnx, ("coreml", None): _convert_coreml, ("coreml", "anytime"): _convert_coreml_anytime}


def convert(request: ConvertRequest, report=print) -> tuple[Path, Manifest, list[ArtifactCheck]]:
    """Convert, label and check every requested artifact; returns the folder, its manifest and
    the checks (paths inside the output folder)."""
    config = request.loaded.config
    exit = request.exit or config.depth
    if exit not in config.exit_blocks:
        raise EdgeskinError(f"--exit {exit}: {config.arch} has exits after blocks {', '.join(map(str, config.exit_blocks))}")
    sources = resolve_sources(request)
    with staged_folder(request.out, request.force, report) as staging:
        (staging / ".work").mkdir()
        calibration = _calibration(request, sources.calibration, report)  # its checks first: fail before the verdict work
        note = "--data not given; --calib is used for calibration only" if request.calib_data is not None and request.verdict_data is None else ""
        checked = list(request.exits) + [exit] if request.exits else [exit]
        images = verification_images(sources.verdict, request.verdict_split, request.loaded, checked, "verdict", report, note)
        versions = library_versions()
        report(f"converting {config.arch} exit {exit} ({request.loaded.source}) -> {request.out}")
        checks, entries = [], []
        for target, recipes in request.recipes.items():
            fmt = format_for_target(target)
            route = "anytime" if request.exits else request.route if target == "tflite" else None
            converter = CONVERTERS[(target, route)]
            for converted in converter(request, exit, staging, images, calibration, report) if recipes else []:
                check, entry = _finish(request, fmt, exit, converted, staging, images, versions)
                checks.append(check)
                entries.append(entry)
                report(f"{'' if target == 'tflite' else target + ' '}{converted.recipe.name}: {'pass' if check.passed else 'FAIL'}")
        shutil.rmtree(staging / ".work")
        loaded = request.loaded
        manifest = Manifest(now(), SourceCheckpoint(str(loaded.source), loaded.source_sha256, loaded.source_format, config.arch),
                            exit, ImageSetRecord(images.source, len(images.labels)), calibration.summary() if calibration else None,
                            versions, entries, contract=config.contract.to_dict())
        write_manifest(staging, manifest)
    return request.out, manifest, [replace(c, path=request.out / c.path, manifest=request.out / MANIFEST) for c in checks]
