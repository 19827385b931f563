"""PyTorch -> Core ML ML Program (.mlpackage) with coremltools, and its compression recipes.

The package takes an image (`ct.ImageType`, RGB at the model's input size, 224x224 for the paper's
models, so an iOS app passes a CVPixelBuffer; pixel values 0-255, the normalization stays inside
the model) and is a classifier: `label` (the top class) and `label_probs` (class -> probability),
plus the `logits` array.

coremltools 9.0 cannot make a float16 classifier with an extra output in one call (its torch
frontend declares float16 outputs, then indexes them past the classifier's added outputs), so
the captured model (torch.export, else torch.jit.trace) is first converted to a MIL program at
the target precision and then exported with the classifier. `w8` and `palettize*` compress the float16 program's weights.

Every package holds only what its Manifest.json lists (see `save_package`), and its versionString
names the source checkpoint or --model-version (converters/descriptions.py).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from edgeskin.converters import descriptions
from edgeskin.converters.quiet import log_tail, quiet_output
from edgeskin.models import SkinViT, deployable
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.metadata import METADATA_NAME, OUTPUT_ROLES, ArtifactMetadata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

INPUT_NAME = "image"
LABEL_NAME = "label"
MINIMUM_DEPLOYMENT_TARGET = "iOS16"  # also macOS 13; the constexpr weight ops of w8/palettize need it


@contextlib.contextmanager
def coremltools_quietly(log: Path):
    """Import coremltools with its version warnings and progress bars sent to the log."""
    with quiet_output(log), warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        logging.getLogger("coremltools").setLevel(logging.ERROR)
        import coremltools as ct

        yield ct


def image_input(ct, shape: tuple[int, ...]):
    """The image input at the example's shape (1, 3, size, size): the size the model was loaded with."""
    return ct.ImageType(name=INPUT_NAME, shape=shape, color_layout=ct.colorlayout.RGB)


def _frontends(wrapper, dummy):
    """(name, model for ct.convert): torch.export first (the frontend coremltools develops), then
    torch.jit.trace, so a model that one cannot capture still converts with the other."""
    try:
        yield "torch.export", torch.export.export(wrapper, (dummy,)).run_decompositions({})  # ATEN dialect, as ct needs
    except Exception:  # noqa: BLE001 - any capture failure means: use the tracer
        pass
    with torch.no_grad():
        yield "torch.jit.trace", torch.jit.trace(wrapper, dummy)


def program(ct, source, precision: str, inputs: list, outputs: tuple[str, ...] = OUTPUT_ROLES, target: str = "iOS16"):
    """The captured model as an ML Program without classifier, float32 outputs in the order named."""
    return ct.convert(source, inputs=inputs, outputs=[ct.TensorType(name=name, dtype=np.float32) for name in outputs],
                      convert_to="mlprogram", minimum_deployment_target=getattr(ct.target, target),
                      compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32)


def _compress(ct, model, recipe: str):
    import coremltools.optimize.coreml as cto

    if recipe == "w8":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        return cto.linear_quantize_weights(model, cto.OptimizationConfig(global_config=config))
    bits = int(recipe.removeprefix("palettize"))
    config = cto.OpPalettizerConfig(mode="kmeans", nbits=bits, granularity="per_tensor")
    return cto.palettize_weights(model, cto.OptimizationConfig(global_config=config))


def _as_classifier(ct, model, class_names, shape: tuple[int, ...]):
    """Add the classifier outputs last: coremltools can neither compress a classifier (its class
    list does not serialize back) nor convert a float16 one with extra outputs in one call."""
    program = model._mil_program
    program.functions["main"].set_output_types(None)
    return ct.convert(program, inputs=[image_input(ct, shape)], convert_to="mlprogram", minimum_deployment_target=ct.target.iOS16,
                      compute_precision=ct.precision.FLOAT32,  # keeps the program's own (float16) precision as it is
                      classifier_config=ct.ClassifierConfig(list(class_names), predicted_feature_name=LABEL_NAME,
                                                            predicted_probabilities_output="probabilities"))


def float_programs(ct, wrapper, dummy, recipes: list[str], inputs: list, outputs: tuple[str, ...] = OUTPUT_ROLES,
                   target: str = "iOS16") -> tuple[str, dict]:
    """(frontend used, {"fp32"/"fp16": program}) for the precisions the recipes need."""
    precisions = sorted({"fp32" if r == "fp32" else "fp16" for r in recipes})
    failure = None
    for frontend, source in _frontends(wrapper, dummy):
        try:
            return frontend, {precision: program(ct, source, precision, inputs, outputs, target) for precision in precisions}
        except Exception as exc:  # noqa: BLE001 - the next frontend may succeed
            failure = exc
    raise failure


def compressed(ct, programs: dict, recipe: str):
    """The recipe's program: a float one as converted, else the float16 one compressed."""
    return programs[recipe] if recipe in programs else _compress(ct, programs["fp16"], recipe)


def failure(recipe: str, exc: Exception, log: Path) -> EdgeskinError:
    """What a coremltools exception on a recipe becomes: one line with the end of its log."""
    first = str(exc).splitlines()[0] if str(exc) else ""
    tail = log_tail(log) if log.exists() else "-"  # the log lives in the staging folder, removed on failure
    return EdgeskinError(f"coremltools failed on recipe {recipe}: {type(exc).__name__}: {first} (last coremltools output: {tail})")


def convert_coreml(model: SkinViT, exit: int | None, class_names, recipes: list[str], example: np.ndarray,
                   work: Path) -> tuple[dict[str, Path], str]:
    """Write work/<recipe>.mlpackage for each recipe (fp32, fp16, w8, palettize6, palettize4);
    also says which frontend captured the model."""
    log = work / "coremltools.log"
    wrapper = deployable(model, exit, with_logits=True).eval()
    dummy = torch.from_numpy(example).permute(2, 0, 1)[None].float().contiguous()  # torch.export keeps a permuted layout
    written = {}
    recipe = "(capturing the model)"
    try:
        with coremltools_quietly(log) as ct:
            frontend, programs = float_programs(ct, wrapper, dummy, recipes, [image_input(ct, tuple(dummy.shape))])
            for recipe in recipes:
                path = work / f"{recipe}.mlpackage"
                save_package(_as_classifier(ct, compressed(ct, programs, recipe), class_names, tuple(dummy.shape)), path)
                written[recipe] = path
    except EdgeskinError:
        raise
    except Exception as exc:  # coremltools raises plain exceptions of many kinds
        raise failure(recipe, exc, log) from None
    return written, frontend


def unlisted_files(package: Path) -> list[Path]:
    """Files of a package that its Manifest.json neither lists nor holds inside a listed folder."""
    manifest = package / "Manifest.json"
    items = [package / "Data" / item["path"] for item in json.loads(manifest.read_text())["itemInfoEntries"].values()]
    return sorted(f for f in package.rglob("*") if (f.is_symlink() or not f.is_dir()) and f != manifest
                  and not any(f == item or item in f.parents for item in items))


def save_package(model, path: Path) -> None:
    """Save an ML Program package with nothing its Manifest.json does not list. coremltools 9.0
    writes executorch_debug_handle_mapping.json beside any program from torch.export (meant for
    ExecuTorch; ours has no debug handles, so it maps every op to `null`), and a copied package
    carries it along; Core ML never reads it."""
    model.save(str(path))
    for stray in unlisted_files(path):
        stray.unlink()
        for folder in stray.parents:
            if folder == path or any(folder.iterdir()):
                break
            folder.rmdir()


def embed_coreml_metadata(source: Path, metadata: ArtifactMetadata, destination: Path) -> None:
    """Copy a package to `destination` with author, licence, version, description and the edgeskin JSON."""
    log = destination.parent / ".coremltools-metadata.log"
    with coremltools_quietly(log) as ct:
        model = ct.models.MLModel(str(source), skip_model_load=True)
        model.author = descriptions.AUTHOR
        model.license = descriptions.LICENSE
        model.version = descriptions.model_version(metadata)
        if metadata.stages:
            _describe_stages(model, metadata)
        else:
            model.short_description = descriptions.description(metadata, [LABEL_NAME, f"{LABEL_NAME}_probs", "logits"])
            texts = _feature_descriptions(metadata)
            model.input_description[INPUT_NAME] = texts[INPUT_NAME]
            for name in (LABEL_NAME, f"{LABEL_NAME}_probs", "logits"):
                model.output_description[name] = texts[name]
        model.user_defined_metadata[METADATA_NAME] = metadata.to_json()
        save_package(model, destination)
    log.unlink(missing_ok=True)
    if not destination.is_dir():
        raise EdgeskinError.about(destination, "coremltools did not write the package")


def _feature_descriptions(metadata: ArtifactMetadata) -> dict[str, str]:
    size, classes = metadata.input.shape[-1], ", ".join(metadata.class_names)  # NCHW
    return {INPUT_NAME: f"RGB dermoscopy image, {size}x{size}, 0-255", LABEL_NAME: f"most probable class ({classes})",
            f"{LABEL_NAME}_probs": "probability of each class", "probabilities": f"probability of each class, in the order {classes}",
            "logits": f"class logits, in the order {classes}", "tokens": "the previous stage's next_tokens",
            "next_tokens": "hidden state for the next stage's tokens"}


def _describe_stages(model, metadata: ArtifactMetadata) -> None:
    """A multifunction (anytime) package: the model's and every function's features described."""
    model.short_description = (descriptions.description(metadata, ["probabilities", "logits"]) + " Anytime package: "
                               f"one function per stage ({', '.join(f'exit_{k}' for k in metadata.stages)}); run them in "
                               "order, feeding each next_tokens to the next, and stop at the first confident exit.")
    texts = _feature_descriptions(metadata)
    for function in model._spec.description.functions:  # coremltools 9 has no API for function descriptions
        for feature in (*function.input, *function.output):
            feature.shortDescription = texts.get(feature.name, "")
