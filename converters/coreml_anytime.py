"""`edgeskin convert --exits … --target coreml`: one multifunction .mlpackage per recipe, a function
per stage of a multi-exit model (runtime/stages.py), so an app runs the stages in order and stops
after any exit without computing deeper blocks.

Each stage is captured and converted as converters/coreml.py converts a whole model (the same
precisions and compression), then coremltools merges the stage packages into one
(ct.utils.save_multifunction). Multifunction packages are Core ML 8 (iOS 18 / macOS 15): an app
picks a stage with MLModelConfiguration.functionName. Core ML forbids one name as a function's
input and output, so a stage's tokens leave as `next_tokens` (COREML_NAMES) and come in as `tokens`.
The functions return arrays (probabilities, logits), not classifier outputs: Core ML's classifier
description belongs to the whole model, not to one function.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from edgeskin.converters.coreml import (
    compressed,
    coremltools_quietly,
    failure,
    float_programs,
    image_input,
    save_package,
)
from edgeskin.models.stages import Stage, StageSpec
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.runtime.stages import COREML_NAMES, TOKENS

MINIMUM_DEPLOYMENT_TARGET = "iOS18"  # also macOS 15: the first Core ML with multifunction packages


def _stage_inputs(ct, spec: StageSpec, value: torch.Tensor) -> list:
    if spec.first == 1:
        return [image_input(ct, tuple(value.shape))]
    return [ct.TensorType(name=TOKENS, shape=tuple(value.shape), dtype=np.float32)]


def convert_coreml_stages(model, plan: list[StageSpec], recipes: list[str], example: np.ndarray,
                          work: Path) -> tuple[dict[str, Path], str]:
    """Write work/<recipe>.mlpackage for each recipe, a function per stage named as its key
    (exit_<k>), the last stage the default; also says which frontend captured the stages."""
    log = work / "coremltools.log"
    value = torch.from_numpy(example).permute(2, 0, 1)[None].float().contiguous()
    parts: dict[str, list[Path]] = {recipe: [] for recipe in recipes}
    frontends, recipe = set(), "(capturing the stages)"
    try:
        with coremltools_quietly(log) as ct:
            for spec in plan:
                stage = Stage(model, spec).eval()
                outputs = tuple(COREML_NAMES.get(name, name) for name in spec.outputs)
                frontend, programs = float_programs(ct, stage, value, recipes, _stage_inputs(ct, spec, value), outputs,
                                                      MINIMUM_DEPLOYMENT_TARGET)
                frontends.add(frontend)
                for recipe in recipes:
                    path = work / f"{recipe}-{spec.key}.mlpackage"
                    save_package(compressed(ct, programs, recipe), path)
                    parts[recipe].append(path)
                if not spec.final:
                    with torch.no_grad():
                        value = stage(value)[0]
            written = {recipe: _merged(ct, plan, paths, work / f"{recipe}.mlpackage") for recipe, paths in parts.items()}
    except EdgeskinError:
        raise
    except Exception as exc:  # coremltools raises plain exceptions of many kinds
        raise failure(recipe, exc, log) from None
    return written, " and ".join(sorted(frontends))


def _merged(ct, plan: list[StageSpec], parts: list[Path], destination: Path) -> Path:
    """The stage packages as the functions of one package (weights deduplicated by coremltools)."""
    descriptor = ct.utils.MultiFunctionDescriptor()
    for spec, part in zip(plan, parts, strict=True):
        descriptor.add_function(str(part), src_function_name="main", target_function_name=spec.key)
    descriptor.default_function_name = plan[-1].key
    ct.utils.save_multifunction(descriptor, str(destination))
    for part in parts:
        shutil.rmtree(part)
    return destination
