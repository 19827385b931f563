"""The parity report's pictures, each made to answer one question at a glance:
- confusion-<file>.png: what changed? Reference and artifact side by side, then their difference
  (artifact minus reference) with every changed cell outlined;
- flipped-<file>.png: which images flipped? Thumbnails with both labels and probabilities;
- divergence-<file>.png: where does the error start? Relative error per block on a log axis;
- accuracy-latency.png: what does each file cost? Numbered points on a log latency axis, one label
  per cluster of close points, the legend says which is which; written only when latency was measured.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgeskin.divergence import NOISE_FLOOR, SIGNIFICANT

THUMBNAILS = 12  # flipped images shown at most


def _matrix_panel(axis, matrix: np.ndarray, names, title: str, cmap: str, limit: float | None = None) -> None:
    """Counts (limit None) or signed differences (colour range +-2*limit, so black text stays readable)."""
    if limit is None:
        vmax = max(1, matrix.max())
        axis.imshow(matrix, cmap=cmap, vmin=0, vmax=vmax)
    else:
        axis.imshow(matrix, cmap=cmap, vmin=-2 * limit, vmax=2 * limit)
    for (i, j), value in np.ndenumerate(matrix):
        if limit is None:
            axis.text(j, i, str(value), ha="center", va="center", fontsize=8, color="white" if value > vmax / 2 else "black")
        elif value:
            axis.text(j, i, f"{value:+d}", ha="center", va="center", fontsize=10, weight="bold")
    axis.set_xticks(range(len(names)), names, rotation=45)
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title, fontsize=10)


def plot_confusions(dataset: str, names, check, path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    reference, artifact = np.array(check.parity.reference.confusion), np.array(check.parity.artifact.confusion)
    difference = artifact - reference
    figure, axes = plt.subplots(1, 3, figsize=(16, 5.4), constrained_layout=True)
    _matrix_panel(axes[0], reference, names, f"PyTorch reference\nBMA {check.parity.reference_bma:.4f}, n={reference.sum()}", "Blues")
    _matrix_panel(axes[1], artifact, names, f"{check.path.name}\nBMA {check.parity.artifact_bma:.4f}", "Blues")
    changed = int(np.count_nonzero(difference))
    flips = len(check.parity.flipped)
    _matrix_panel(axes[2], difference, names, f"artifact minus reference\n{changed} cell{'s' * (changed != 1)} changed, "
                  f"{flips} image{'s' * (flips != 1)} flipped", "RdBu", limit=max(1, int(np.abs(difference).max())))
    for i, j in zip(*np.nonzero(difference), strict=True):
        axes[2].add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=1.8))
    figure.suptitle(f"Confusion matrices on {dataset}", fontsize=11)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_flipped(check, pixels: np.ndarray, image_ids: list[str], path: Path) -> None:
    """The images whose top-1 class the artifact changed, reference label above artifact label."""
    import matplotlib.pyplot as plt

    flipped = check.parity.flipped[:THUMBNAILS]
    index = {image: n for n, image in enumerate(image_ids)}
    columns = min(4, len(flipped))
    rows = -(-len(flipped) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(max(4.5, 3.1 * columns), 3.6 * rows), constrained_layout=True, squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    for axis, flip in zip(axes.flat, flipped, strict=False):
        axis.imshow(pixels[index[flip["image"]]])
        axis.set_title(f"{flip['image']}\nPyTorch {flip['reference']} {flip['reference_probability']:.3f}\n"
                       f"artifact {flip['artifact']} {flip['artifact_probability']:.3f}", fontsize=9)
    more = f" (first {THUMBNAILS} of {len(check.parity.flipped)})" if len(check.parity.flipped) > THUMBNAILS else ""
    figure.suptitle(f"{check.path.name}\ntop-1 class flipped{more}", fontsize=10)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_divergence(check, path: Path) -> None:
    import matplotlib.pyplot as plt

    divergence = check.divergence
    names = [s.name for s in divergence.stages]
    errors = [max(s.error, 1e-9) for s in divergence.stages]
    figure, axis = plt.subplots(figsize=(max(6.0, 0.55 * len(names)), 4.2), constrained_layout=True)
    axis.semilogy(range(len(names)), errors, marker="o", label="artifact vs PyTorch")
    axis.axhline(SIGNIFICANT, color="gray", linestyle=":", label=f"significant ({SIGNIFICANT:g})")
    axis.axhline(NOISE_FLOOR, color="gray", linestyle="--", alpha=0.5, label=f"float32 round-off ({NOISE_FLOOR:g})")
    if divergence.first_jump in names:
        start = names.index(divergence.first_jump)
        axis.axvline(start, color="tab:red", linestyle="--", alpha=0.6, label=f"error starts: {divergence.first_jump}")
    axis.set_ylim(min(min(errors), NOISE_FLOOR) / 3, max(max(errors), SIGNIFICANT) * 3)
    axis.legend(fontsize=8, loc="lower right")
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_ylabel("relative error vs PyTorch (log)")
    axis.grid(alpha=0.3, which="both")
    axis.set_title(f"{check.path.name}: where the error starts\n{divergence.explanation} (mean of {divergence.images} images)",
                   fontsize=9)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _label_groups(axis, points: list[tuple[float, float]], radius_px: float = 14.0) -> list[list[int]]:
    """Point indices grouped when their markers' centres are within `radius_px` on screen, so one
    label ("1, 2, 7") stands beside a cluster instead of numbers drawn over each other."""
    screen = axis.transData.transform(np.asarray(points, dtype=float))
    groups: list[list[int]] = []
    for index, xy in enumerate(screen):
        home = next((g for g in groups if np.hypot(*(screen[g[0]] - xy)) <= radius_px), None)
        if home is None:
            groups.append([index])
        else:
            home.append(index)
    return groups


def plot_accuracy_latency(run, path: Path, mark, caveat: bool) -> None:
    """BMA vs p50 latency on a log axis (files differ by 100x), one numbered point per artifact
    (marker area ~ file size), the reference a star; each row's ratio carries its own noise verdict."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from edgeskin.noise import ratio_text

    figure, axis = plt.subplots(figsize=(10, 5.2), constrained_layout=True)
    sizes = [c.bytes / 1e6 for c in run.checks]
    scale = 800 / max(sizes) if sizes else 1.0
    stable = run.noise is None or run.noise.stable
    points = [(c.latency.p50_ms, c.parity.artifact_bma) for c in run.checks]
    for n, (check, size) in enumerate(zip(run.checks, sizes, strict=True), 1):
        color = "tab:green" if check.parity.passed else "tab:red"
        ratio = check.latency.ratio_to_reference
        label = (f"{n}: {check.target} {check.recipe}{mark(check.runtime)}, {size:.1f} MB"
                 + (f", {ratio_text(ratio, check.latency.ratio_stable)}" if ratio else ""))
        axis.scatter(*points[n - 1], s=max(30.0, size * scale), alpha=0.5, color=color, edgecolors="black", label=label)
    if run.reference_latency and run.checks:
        axis.scatter(run.reference_latency.p50_ms, run.checks[0].parity.reference_bma, marker="*", s=250, color="tab:blue",
                     label="PyTorch reference")
    latencies = [x for x, _ in points] + ([run.reference_latency.p50_ms] if run.reference_latency else [])
    axis.set_xscale("log")
    axis.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))  # 20, not 2x10^1
    axis.xaxis.set_minor_formatter(NullFormatter())  # under a decade matplotlib labels minor ticks "3x10^0"
    axis.set_xlim(min(latencies) / 1.6, max(latencies) * 1.6)
    axis.margins(y=0.3)
    figure.canvas.draw()  # the limits are final: screen distances below are the printed ones
    for group in _label_groups(axis, points):
        axis.annotate(", ".join(str(i + 1) for i in group), points[group[0]], xytext=(9, 9), textcoords="offset points",
                      fontsize=9, weight="bold", arrowprops={"arrowstyle": "-", "lw": 0.6})
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8, markerscale=0.4, frameon=False)
    threads = run.checks[0].latency.threads
    axis.set_xlabel(f"p50 latency, ms, log scale (batch 1, {threads} thread{'s' if threads != 1 else ''})")
    axis.set_ylabel("BMA")
    axis.ticklabel_format(axis="y", useOffset=False)
    notes = ["marker area ~ file size; red = fails its gate"] + (["* numpy checker time, not Core ML's"] if caveat else [])
    if not stable:
        notes.append("latency UNSTABLE: " + "; ".join(run.noise.reasons)[:120])
    axis.set_title(f"Accuracy vs latency on {run.dataset}\n" + "; ".join(notes), fontsize=9, color="black" if stable else "tab:red")
    axis.grid(alpha=0.3, which="both")
    figure.savefig(path, dpi=110)
    plt.close(figure)
