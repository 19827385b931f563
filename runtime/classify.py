"""The one classification loop of the commands that classify many images: `edgeskin predict`
and `edgeskin-pi`, so both expand folders, time, and report bad files the same way.

Each source gives one Classified: a Prediction, or the EdgeskinError that stopped it (the run
goes on to the next source), with timings; a Tally sums a run up for its summary and exit code.
Sources come from runtime/inputs.py, which also counts what a folder held that was skipped.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from .errors import EdgeskinError
from .predictions import Prediction
from .predictor import Predictor
from .preprocess import ImageSource, PreprocessConfig, preprocess
from .reporting import median


def quiet_decoder_warnings() -> None:
    """For the commands: Pillow's warnings about a file ("Corrupt EXIF data", a decompression-bomb
    notice) are not for the terminal; the file's row says what matters. Libraries keep them."""
    warnings.filterwarnings("ignore", module=r"PIL\.")


@dataclass(frozen=True)
class Classified:
    name: str
    result: Prediction | EdgeskinError
    infer_ms: float | None = None  # the model alone
    total_ms: float | None = None  # decode, resize and the model

    @property
    def failed(self) -> bool:
        return isinstance(self.result, EdgeskinError)


def classify(predictor: Predictor, sources: Iterable[tuple[str, ImageSource | EdgeskinError]], top_k: int = 3,
             config: PreprocessConfig | None = None, policy=None) -> Iterator[Classified]:
    """Classify each (name, image) in turn; `config` overrides the artifact's preprocessing; an
    anytime artifact stops where `policy` (runtime/anytime.ExitPolicy) says."""
    config = config or predictor.preprocess_config
    for name, source in sources:
        if isinstance(source, EdgeskinError):  # found unreadable while expanding a folder
            yield Classified(name, source)
            continue
        start = time.perf_counter()
        try:
            pixels = preprocess(source, config)
            begin = time.perf_counter()
            prediction = predictor.predict_pixels(pixels, top_k, policy) if policy else predictor.predict_pixels(pixels, top_k)
        except EdgeskinError as exc:
            yield Classified(name, exc)
            continue
        except (RuntimeError, ValueError) as exc:  # a runtime failing on invoke: report, go on
            yield Classified(name, EdgeskinError.about(name, f"inference failed ({exc})"))
            continue
        done = time.perf_counter()
        yield Classified(name, prediction, (done - begin) * 1e3, (done - start) * 1e3)


@dataclass
class Tally:
    """Counts and timings of a run so far (a camera run is summed up when it is interrupted)."""

    count: int = 0
    failures: int = 0
    skipped: str = ""  # Inputs.skipped_note(): what folders held that was not classified
    infer_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)  # anytime runs: the exit that answered each image

    def add(self, item: Classified) -> None:
        self.count += 1
        if item.failed:
            self.failures += 1
        else:
            self.infer_ms.append(item.infer_ms)
            self.total_ms.append(item.total_ms)
            if getattr(item.result, "exit", None):
                self.exits.append(item.result.exit)

    @property
    def mean_infer_ms(self) -> float | None:
        return sum(self.infer_ms) / len(self.infer_ms) if self.infer_ms else None

    def exit_histogram(self) -> dict[int, int]:
        return {k: self.exits.count(k) for k in sorted(set(self.exits))}

    @property
    def p50_infer_ms(self) -> float | None:
        return median(self.infer_ms)

    @property
    def p50_total_ms(self) -> float | None:
        return median(self.total_ms)

    def counts(self) -> dict:
        """The summary's counts, as `--json` prints them."""
        counts = {"images": self.count, "classified": self.count - self.failures, "failures": self.failures,
                  "skipped": self.skipped}
        if self.exits:
            counts["exits"] = {str(k): n for k, n in self.exit_histogram().items()}
        return counts

    def summary_line(self) -> str:
        """'4 images, 2 failures, p50 latency 9.1 ms (12.0 ms with decode and resize)[; skipped ...]'."""
        p50 = "n/a" if self.p50_infer_ms is None else f"{self.p50_infer_ms:.1f} ms"
        with_decode = "" if self.p50_total_ms is None else f" ({self.p50_total_ms:.1f} ms with decode and resize)"
        skipped = f"; {self.skipped}" if self.skipped else ""
        anytime = ""
        if self.exits:
            histogram = ", ".join(f"exit {k}: {n}" for k, n in self.exit_histogram().items())
            anytime = f"; mean latency {self.mean_infer_ms:.1f} ms; answered at {histogram}"
        return f"{self.count} images, {self.failures} failures, p50 latency {p50}{with_decode}{anytime}{skipped}"
