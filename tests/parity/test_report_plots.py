"""The accuracy-latency picture: close points share one label, far ones keep their own, and an
unstable row says so in the legend (stand-in checks: no conversion needed)."""

from __future__ import annotations

from types import SimpleNamespace

from PIL import Image

from edgeskin.report_plots import _label_groups, plot_accuracy_latency


def _check(p50_ms: float, bma: float, stable: bool | None = True, passed: bool = True):
    return SimpleNamespace(bytes=3_000_000, target="tflite", recipe=f"r{p50_ms:g}", runtime="litert",
                           parity=SimpleNamespace(passed=passed, artifact_bma=bma, reference_bma=0.42),
                           latency=SimpleNamespace(p50_ms=p50_ms, ratio_to_reference=p50_ms / 10, ratio_stable=stable, threads=1))


def test_points_drawn_over_each_other_share_one_label():
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4))
    axis.set_xscale("log")
    axis.set_xlim(1, 1000)
    axis.set_ylim(0.40, 0.44)
    figure.canvas.draw()
    groups = _label_groups(axis, [(9.0, 0.4205), (9.1, 0.4205), (300.0, 0.43), (9.05, 0.4206), (3.0, 0.41)])
    plt.close(figure)
    assert groups == [[0, 1, 3], [2], [4]]


def test_the_plot_is_written_with_a_per_row_noise_verdict(tmp_path, monkeypatch):
    import matplotlib.axes

    legends = []
    original = matplotlib.axes.Axes.legend
    monkeypatch.setattr(matplotlib.axes.Axes, "legend",
                        lambda self, *a, **k: legends.append(self.get_legend_handles_labels()[1]) or original(self, *a, **k))
    run = SimpleNamespace(checks=[_check(3.0, 0.42), _check(250.0, 0.43, stable=False), _check(9.0, 0.41, passed=False)],
                          reference_latency=SimpleNamespace(p50_ms=10.0), noise=None, dataset="set:test")
    plot_accuracy_latency(run, tmp_path / "plot.png", lambda runtime: "", caveat=False)
    with Image.open(tmp_path / "plot.png") as image:
        assert image.size[0] > 800
    labels = legends[0]
    assert labels[0].endswith("0.30x") and labels[1].endswith("25.00x (unstable)") and labels[-1] == "PyTorch reference"
