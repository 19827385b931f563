"""The parity report a reviewer reads: report.json (every number), report.md (one table), PNGs.

Written into a temporary folder beside the destination and moved into place when complete,
so an interrupted run never leaves half a report where a good one was.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from edgeskin import report_plots as plots
from edgeskin.benchmark import latency_caveat, latency_mark
from edgeskin.markdown import markdown_table
from edgeskin.noise import ratio_text
from edgeskin.parity_check import ParityRun
from edgeskin.runtime.errors import EdgeskinError
from edgeskin.verification import ArtifactCheck


def _artifact_dict(check: ArtifactCheck) -> dict:
    meta = check.metadata
    return {"file": str(check.path), "name": check.path.name, "target": meta.target, "recipe": meta.recipe, "exit": meta.exit,
            "route": meta.route or None,
            "runtime": check.runtime, "bytes": check.bytes,
            "verdict": check.verdict, "failures": check.failures,
            "manifest": str(check.manifest) if check.manifest else None, "parity": check.parity.to_dict(),
            "divergence": check.divergence.to_dict() if check.divergence else None,
            "latency": check.latency.to_dict() if check.latency else None,
            **({"exit_parity": {str(k): p.to_dict() for k, p in check.exit_parity.items()}} if check.exit_parity else {}),
            **({"anytime": check.anytime.to_dict()} if check.anytime else {})}


def report_dict(run: ParityRun) -> dict:
    ref = run.reference
    return {
        "edgeskin_parity_report": 1,
        "created": run.created,
        "reference": {"checkpoint": str(ref.source), "sha256": ref.source_sha256, "arch": ref.config.arch,
                      "reports": {str(e): r.to_dict() for e, r in run.reference_reports.items()},
                      "latency": run.reference_latency.to_dict() if run.reference_latency else None},
        "noise": run.noise.to_dict() if run.noise else None, "peak": run.peak.to_dict() if run.peak else None,
        "images": {"source": run.dataset, "count": len(run.labels), "ids": run.image_ids},
        "environment": run.environment,
        "artifacts": [_artifact_dict(c) for c in run.checks],
        "passed": not run.failed,
    }


def _fmt_latency(check: ArtifactCheck) -> str:
    if check.latency is None:
        return "-"
    ratio = "" if check.latency.ratio_to_reference is None else f" ({ratio_text(check.latency.ratio_to_reference, check.latency.ratio_stable)})"
    return f"{check.latency.p50_ms:.2f} ms{ratio}{latency_mark(check.runtime)}"


def table_notes(run: ParityRun) -> list[str]:
    """Footnotes to the table (printed by the command and written in report.md)."""
    caveat = latency_caveat([c.runtime for c in run.checks if c.latency])
    return ([caveat] if caveat else []) + ([run.noise.sentence()] if run.noise else [])


def table_rows(run: ParityRun) -> list[list[str]]:
    """The one table of the report (also printed by the command)."""
    melanoma = "MEL" in run.reference.config.class_names  # a user's own classes may have no melanoma class
    # two routes' files of one recipe share a name: side by side, the route tells them apart
    routes = (len({(c.metadata.target, c.recipe, c.metadata.route) for c in run.checks})
              > len({(c.metadata.target, c.recipe) for c in run.checks}))
    rows = [["artifact"] + (["route"] if routes else []) + ["recipe", "size", "cosine", "agreement", "BMA ref/artifact"]
            + (["MEL sens ref/artifact"] if melanoma else []) + ["p50 latency", "verdict"]]
    for c in run.checks:
        p = c.parity
        rows.append([c.path.name] + ([c.metadata.route or "-"] if routes else [])
                    + [c.recipe, f"{c.bytes / 1e6:.2f} MB", f"{p.cosine_mean:.5f}", f"{p.agreement:.1%}",
                     f"{p.reference_bma:.4f}/{p.artifact_bma:.4f}"]
                    + ([f"{p.reference.melanoma_sensitivity:.3f}/{p.artifact.melanoma_sensitivity:.3f}"] if melanoma else [])
                    + [_fmt_latency(c), "pass" if c.passed else "FAIL"])
    return rows


def exit_rows(check: ArtifactCheck) -> list[list[str]]:
    """An anytime file's exit-wise rows: each exit against PyTorch's same exit."""
    rows = [["exit", "max |dlogit|", "cosine", "agreement", "BMA ref/artifact", "verdict"]]
    for exit, p in sorted(check.exit_parity.items()):
        rows.append([str(exit), f"{p.max_abs_logit_diff:.3g}", f"{p.cosine_mean:.5f}", f"{p.agreement:.1%}",
                     f"{p.reference_bma:.4f}/{p.artifact_bma:.4f}", "pass" if p.passed else "FAIL"])
    return rows


def report_markdown(run: ParityRun) -> str:
    ref, env = run.reference, run.environment
    out = [f"# Parity report: {ref.config.arch}", "",
           f"Reference: `{ref.source}` (sha256 {ref.source_sha256[:12]}...), PyTorch. Images: {len(run.labels)} from `{run.dataset}`. "
           f"Created {run.created}.", "",
           markdown_table([[("**FAIL**" if cell == "FAIL" else cell) for cell in row] for row in table_rows(run)]), "",
           *[f"{note}\n" for note in table_notes(run)]]
    if run.reference_latency:
        r = run.reference_latency
        out += [f"PyTorch reference latency: p50 {r.p50_ms:.2f} ms, p90 {r.p90_ms:.2f}, p99 {r.p99_ms:.2f} ({r.backend}, {r.threads} threads); "
                f"latency ratios are artifact p50 / reference p50, measured in one run on {env.get('cpu')} ({env.get('cores')} cores).", ""]
    for c in run.checks:
        p = c.parity
        out += [f"## {c.path.name}", "",
                f"- runtime: {c.runtime}; verdict: {'pass' if p.passed else 'FAIL: ' + '; '.join(p.failures)}",
                f"- logits max/mean |diff| {p.max_abs_logit_diff:.4g} / {p.mean_abs_logit_diff:.4g}; probabilities "
                f"{p.max_abs_prob_diff:.4g} / {p.mean_abs_prob_diff:.4g}; cosine mean {p.cosine_mean:.6f} (min {p.cosine_min:.6f})",
                f"- BMA {p.reference_bma:.4f} -> {p.artifact_bma:.4f}; difference {p.bma_difference.estimate:+.4f}, "
                f"95% bootstrap interval [{p.bma_difference.low:+.4f}, {p.bma_difference.high:+.4f}] ({p.bma_difference.resamples} resamples)",
                *([f"- melanoma sensitivity {p.reference.melanoma_sensitivity:.3f} -> {p.artifact.melanoma_sensitivity:.3f}, "
                   f"specificity {p.reference.melanoma_specificity:.3f} -> {p.artifact.melanoma_specificity:.3f}"]
                  if "MEL" in run.reference.config.class_names else []),
                f"- exact McNemar: reference-only correct {p.mcnemar.reference_only_correct}, artifact-only correct "
                f"{p.mcnemar.artifact_only_correct}, p = {p.mcnemar.p_value:.4g}",
                "- per-class recall (reference -> artifact): " + ", ".join(
                    f"{k} {p.reference.per_class_recall[k]:.2f}->{p.artifact.per_class_recall[k]:.2f}"
                    for k in p.reference.per_class_recall if p.reference.support[k]), ""]
        if p.flipped:
            out += [f"Flipped top-1 ({len(p.flipped)}):", "", markdown_table(
                [["image", "reference", "p", "artifact", "p"]] + [[f["image"], f["reference"], f"{f['reference_probability']:.3f}",
                                                                   f["artifact"], f"{f['artifact_probability']:.3f}"] for f in p.flipped]), ""]
        if c.exit_parity:
            out += ["Exit by exit (each against PyTorch's same exit):", "", markdown_table(exit_rows(c)), ""]
        if c.anytime:
            from edgeskin.anytime_report import markdown

            out += markdown(c.path.name, c.anytime, _png("anytime", c))
        if p.flipped:
            out += [f"![flipped images]({_png('flipped', c)})", ""]
        if c.divergence:
            out += [f"Where divergence starts: **{c.divergence.explanation}** (CLS token relative error, mean of "
                    f"{c.divergence.images} images; embedding: all tokens)", "", f"![divergence]({_png('divergence', c)})", ""]
        out += [f"![confusion matrices]({_png('confusion', c)})", ""]
    if _latency_measured(run):
        out += ["![accuracy vs latency](accuracy-latency.png)", ""]
    if run.peak:
        out += [f"Physical floor: {run.peak.sentence()}.", ""]
    out += ["Environment (every field in report.json):", "", markdown_table(environment_rows(env)), ""]
    return "\n".join(out)


def _png(kind: str, check: ArtifactCheck) -> str:
    """A picture's name in the report folder: confusion-, flipped-, divergence-, anytime-<file>.png."""
    return f"{kind}-{check.path.name}.png"


def _latency_measured(run: ParityRun) -> bool:
    return bool(run.checks) and all(c.latency for c in run.checks)


def environment_rows(env: dict) -> list[list[str]]:
    """The machine and libraries as a short two-column table (report.json keeps every field)."""
    rows = [["component", "version"], ["machine", f"{env.get('cpu', '?')}, {env.get('cores', '?')} cores"],
            ["system", f"{env.get('os', env.get('platform', '?'))}, python {env.get('python', '?')}"]]
    libraries = env.get("libraries", {})
    rows += [[name, str(version)] for name, version in libraries.items()]
    return rows


def check_report_folder(out: Path) -> None:
    """A report replaces an older report, never anything else."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "report.json").is_file())):
        raise EdgeskinError.about(out, "exists and is not an edgeskin report folder: choose another --out")


def write_reports(run: ParityRun, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    check_report_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        (staging / "report.json").write_text(json.dumps(report_dict(run), indent=2) + "\n")
        (staging / "report.md").write_text(report_markdown(run))
        names = run.reference.config.class_names
        for check in run.checks:
            plots.plot_confusions(run.dataset, names, check, staging / _png("confusion", check))
            if check.parity.flipped:
                plots.plot_flipped(check, run.images.pixels, run.images.image_ids, staging / _png("flipped", check))
            if check.divergence:
                plots.plot_divergence(check, staging / _png("divergence", check))
            if check.anytime:
                from edgeskin.anytime_report import plot

                plot(check.path.name, check.anytime, run.dataset, staging / _png("anytime", check))
        if _latency_measured(run):
            plots.plot_accuracy_latency(run, staging / "accuracy-latency.png", latency_mark, bool(table_notes(run)))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
