"""What the torch-free commands print per image, shared by `edgeskin predict` and `edgeskin-pi`.

One record per image (a Prediction, or the EdgeskinError that stopped it), as a JSON-ready dict
or a text line (folder arguments are expanded by runtime/inputs.py).
"""

from __future__ import annotations

from .errors import EdgeskinError


def problem_of(error: EdgeskinError, source: object) -> str:
    """The problem part of an 'FILE: problem' error."""
    return str(error).removeprefix(f"{source}: ")


def result_record(source: object, result, latency_ms: float | None = None, raw: bool = False) -> dict:
    """{"image", "label", "probability", "top_k", ...} or {"image", "error"} for one image."""
    if isinstance(result, EdgeskinError):
        return {"image": str(source), "error": problem_of(result, source)}
    record = {"image": str(source), "label": result.label, "probability": result.probability,
              "top_k": [{"label": n, "probability": p} for n, p in result.top_k]}
    if getattr(result, "exit", None):  # an anytime run: the exit that answered
        record["exit"] = result.exit
    if latency_ms is not None:
        record["latency_ms"] = round(latency_ms, 3)
    if raw:  # every class, full precision: what `make device-test` compares across machines
        record["probabilities"] = [float(v) for v in result.probabilities]
        if result.logits is not None:
            record["logits"] = [float(v) for v in result.logits]
    return record


def result_line(source: object, result) -> str:
    """`FILE: LABEL (p)   top-k: ...` or `FILE: error: problem`."""
    if isinstance(result, EdgeskinError):
        return f"{source}: error: {problem_of(result, source)}"
    ranked = "  ".join(f"{n} {p:.3f}" for n, p in result.top_k)
    answered = f"   (exit {result.exit})" if getattr(result, "exit", None) else ""  # an anytime run
    return f"{source}: {result.label} ({result.probability:.3f})   top-{len(result.top_k)}: {ranked}{answered}"


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
