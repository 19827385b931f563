"""Issue 13: bad input never costs a traceback, a crash, a hang, lost work or a wrong number.

The inputs come from tests/hostile_corpus.py (generated at run time). Fast tests run the image cases through
`edgeskin-pi` and `edgeskin predict` in this process, property-test the decoder and the metadata reader, and
load byte-mutated .tflite files and .mlpackage files in child processes. The slow test is the whole
scripts/hostile_check.py run (every case through every entry point, each in a child process).
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from edgeskin.runtime.errors import EdgeskinError
from tests import hostile_corpus as hc
from tests.conftest import BUNDLED, REPO, perturbed_model

GOOD_IMAGE = sorted((BUNDLED / "images").glob("*.jpg"))[0]
IN_PROCESS_SECONDS = 60  # an in-process hang (a FIFO opened) fails the test instead of stopping the suite


@pytest.fixture(scope="session")
def image_corpus(tmp_path_factory) -> list[hc.Case]:
    return hc.build(tmp_path_factory.mktemp("hostile") / "corpus", sections=("images",))


@pytest.fixture(scope="session")
def tiny_mlpackage(tmp_path_factory) -> Path:
    import edgeskin

    out = tmp_path_factory.mktemp("tiny-coreml") / "ti2"
    result = edgeskin.convert(perturbed_model("skindistilvit-ti2"), target="coreml", recipes=["fp32"], out=out, data=BUNDLED)
    return result.artifacts[0].path


# --- the generator itself ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(hc.EXIF_RAISES))
def test_exif_blocks_really_break_exif_transpose(tmp_path, name):
    path = hc.jpeg_with_exif(tmp_path / "x.jpg", hc.exif_blocks()[name])
    with Image.open(path) as img:
        img.load()  # decodes: only the EXIF is bad
        with pytest.raises(hc.EXIF_RAISES[name]):
            ImageOps.exif_transpose(img)


def test_dds_plugin_raises_not_implemented(tmp_path):
    with pytest.raises(NotImplementedError):
        Image.open(io.BytesIO(hc.dds(0))).load()


def test_streamed_png_decodes_large_from_little(tmp_path):
    path = hc.streamed_png(tmp_path / "big.png", 8944, 8944)
    assert path.stat().st_size < 2_000_000
    with Image.open(path) as img:
        assert img.size == (8944, 8944) and img.mode == "RGBA"  # 16-bit RGBA opens as RGBA (decoding keeps 16 bits)
        assert 8944 * 8944 < Image.MAX_IMAGE_PIXELS


def test_corpus_covers_every_class(tmp_path, tiny_tflite):
    cases = hc.build(tmp_path / "corpus", tflite=tiny_tflite, mutations=6)
    classes = {c.klass for c in cases}
    for klass in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "11", "12", "holds"):
        assert sum(c.klass == klass for c in cases) >= 2, klass
    assert classes <= {"1", "2", "3", "4", "5", "6", "7", "8", "9", "11", "12", "holds"}
    assert all(set(c.entries) <= {*hc.ENTRY_POINTS, "torchless"} and c.accept for c in cases)
    again = hc.build(tmp_path / "again", tflite=tiny_tflite, mutations=6)
    assert [c.name for c in again] == [c.name for c in cases]  # deterministic


# --- image cases in this process --------------------------------------------------------------------------


class _Hang(Exception):
    pass


def _in_process(entry: str, model: Path, paths) -> tuple[int | str, str, str]:
    """(exit code, or 'raised X' / 'hang'; stdout; stderr) of edgeskin-pi or `edgeskin predict` in this process."""
    from edgeskin.cli import main as cli_main
    from edgeskin.runtime.pi import main as pi_main

    argv = [str(model), *map(str, paths), "--json"]
    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise _Hang

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(IN_PROCESS_SECONDS)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = pi_main([*argv, "--raw"]) if entry == "pi" else cli_main(["predict", *argv])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 2
    except _Hang:
        code = "hang"
    except BaseException as exc:  # noqa: BLE001 - what escapes is the finding
        code = f"raised {type(exc).__name__}: {str(exc)[:160]}"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue()


def _problems(case: hc.Case, code, stdout: str, stderr: str) -> list[str]:
    kinds = {0: hc.DONE, 1: hc.ROWS_FAILED, 2: hc.ERROR}
    if not isinstance(code, int):
        return [str(code)]
    found = []
    if "Traceback (most recent call last)" in stderr:
        found.append("traceback: " + stderr.strip().splitlines()[-1][:160])
    if kinds.get(code) not in case.accept:
        first = next(iter(stderr.strip().splitlines()), "")
        found.append(f"exit {code}, expected {'/'.join(sorted(case.accept))}: {first[:160]}")
    records = []
    for line in stdout.splitlines():
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    rows = [r for r in records if isinstance(r, dict) and "image" in r]
    if not any(isinstance(r, dict) and "summary" in r for r in records):
        found.append("no summary")
    folders = [p for p in case.paths if p.is_dir() and not p.suffix]
    if not folders and len(rows) != len(case.paths):
        found.append(f"{len(rows)} rows for {len(case.paths)} files")
    by_name = {r["image"]: r for r in rows}
    for good in case.good:
        if "label" not in by_name.get(str(good), {}):
            found.append(f"good image {good.name} not classified")
    for row in rows:
        if "label" not in row:
            continue
        numbers = [row["probability"], *(k["probability"] for k in row["top_k"]), *row.get("probabilities", [])]
        if any(math.isnan(v) or not 0 <= v <= 1 for v in numbers):
            found.append(f"{row['image']}: probability outside [0, 1]")
        if row["label"] not in hc.CLASSES:
            found.append(f"{row['image']}: label {row['label']!r}")
    return found


@pytest.mark.parametrize("klass", ["1", "2", "holds"])
@pytest.mark.parametrize("entry", ["pi", "predict"])
def test_image_cases_in_process(image_corpus, tiny_tflite, entry, klass):
    """Every image case of the class: the accepted exit code, no traceback, one row per file, the good image
    classified, the summary printed, probabilities in [0, 1]. (Class 7, memory, runs in child processes only.)"""
    failures = []
    for case in (c for c in image_corpus if c.klass == klass):
        code, stdout, stderr = _in_process(entry, tiny_tflite, case.paths)
        failures += [f"{case.name}: {problem}" for problem in _problems(case, code, stdout, stderr)]
    assert not failures, "\n".join(failures)


# --- properties -------------------------------------------------------------------------------------------


def _valid_image_bytes() -> list[bytes]:
    out = []
    for fmt, mode in (("PNG", "RGB"), ("JPEG", "RGB"), ("GIF", "P"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB")):
        buf = io.BytesIO()
        Image.new(mode, (5, 4)).save(buf, fmt)
        out.append(buf.getvalue())
    return out


VALID = _valid_image_bytes()


@st.composite
def _damaged_images(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 6))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.binary(max_size=2048), _damaged_images()))
def test_any_bytes_give_pixels_or_edgeskin_error(data):
    from edgeskin.runtime.preprocess import preprocess

    try:
        pixels = preprocess(data)
    except EdgeskinError as exc:
        assert "\n" not in str(exc)
        return
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


MODES = {"1": "PNG", "L": "PNG", "P": "PNG", "RGB": "JPEG", "RGBA": "PNG", "LA": "PNG", "CMYK": "JPEG", "I;16": "PNG",
         "I": "TIFF", "F": "TIFF", "YCbCr": "JPEG"}


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(sorted(MODES)), width=st.integers(1, 64), height=st.integers(1, 64), seed=st.integers(0, 2**32 - 1),
       source=st.sampled_from(["bytes", "image", "array"]), orientation=st.integers(1, 8))
def test_any_valid_small_image_gives_pixels(mode, width, height, seed, source, orientation):
    from edgeskin.runtime.preprocess import preprocess

    rng = np.random.default_rng(seed)
    if mode == "F":
        img = Image.fromarray(rng.random((height, width), dtype=np.float32) * 255, mode="F")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65535, (height, width), dtype=np.uint16))
    else:
        img = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8), "RGB")
        img = img.convert("I") if mode == "I" else img.convert(mode)
    if source == "array":
        value = np.asarray(img.convert("RGBA" if mode in ("RGBA", "LA") else "RGB"))
    elif source == "image":
        value = img
    else:
        buf = io.BytesIO()
        exif = Image.Exif()
        exif[0x0112] = orientation
        img.save(buf, MODES[mode], **({"exif": exif.tobytes()} if MODES[mode] in ("JPEG", "PNG", "TIFF") else {}))
        value = buf.getvalue()
    pixels = preprocess(value)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=12)
_FIELDS = ["model", "exit", "recipe", "target", "class_names", "input", "preprocess", "outputs", "normalization", "route",
           "converter", "source_checkpoint_sha256", "shape", "dtype", "layout", "scale", "zero_point"]


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200), _json.map(json.dumps),
                 st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=len(_FIELDS)).map(json.dumps)))
def test_metadata_from_json_returns_or_raises_edgeskin_error(text):
    from edgeskin.runtime.metadata import ArtifactMetadata

    try:
        meta = ArtifactMetadata.from_json(text, "m.tflite")
    except EdgeskinError as exc:
        assert "\n" not in str(exc) and str(exc).startswith("m.tflite: ")
        return
    assert isinstance(meta, ArtifactMetadata)


# --- mutated models, each loaded in a child process ------------------------------------------------------


def _child(argv, timeout=60) -> str | None:
    """None when the child ended well (exit 0/1/2, no traceback, a one-line error for 2), else what went wrong."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    except subprocess.TimeoutExpired:
        return "hang"
    if done.returncode not in (0, 1, 2):
        return f"exit {done.returncode} (crash)"
    if "Traceback (most recent call last)" in done.stderr:
        return "traceback: " + done.stderr.strip().splitlines()[-1][:160]
    lines = done.stderr.strip().splitlines()
    if done.returncode == 2 and len(lines) != 1:
        return f"exit 2 with {len(lines)} stderr lines: {lines[:1]}"
    return None


def _mutants(data: bytes, folder: Path, suffix: str, count: int, seed: int) -> list[Path]:
    paths = []
    for position in hc.mutation_positions(len(data), count, seed):
        paths.append(folder / f"flip-{position}{suffix}")
        paths[-1].write_bytes(hc.mutated(data, position))
    for cut in hc.truncations(len(data))[1:]:
        paths.append(folder / f"cut-{cut}{suffix}")
        paths[-1].write_bytes(data[:cut])
    return paths


def test_mutated_tflite_never_crashes_hangs_or_tracebacks(tiny_tflite, tmp_path):
    models = _mutants(tiny_tflite.read_bytes(), tmp_path, ".tflite", 20, seed=13)
    runs = [[sys.executable, "-m", "edgeskin.runtime.pi", str(m), str(GOOD_IMAGE), "--json"] for m in models]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(_child, runs))
    failures = [f"{m.name}: {o}" for m, o in zip(models, outcomes, strict=True) if o]
    assert not failures, "\n".join(failures)


COREML_CHILD = """
import sys
from edgeskin.runtime import EdgeskinError, load
try:
    p = load(sys.argv[1], coreml_checker=True).predict([sys.argv[2]])[0]
except EdgeskinError as exc:
    print(f"coreml: error: {exc}", file=sys.stderr); sys.exit(2)
assert 0 <= p.probability <= 1, p.probability
print(p.label, p.probability)
"""


@pytest.mark.parametrize("member", ["model.mlmodel", "weight.bin", "Manifest.json"])
def test_mutated_mlpackage_never_crashes_hangs_or_tracebacks(tiny_mlpackage, tmp_path, member):
    source = next(p for p in tiny_mlpackage.rglob(member) if p.is_file())
    relative = source.relative_to(tiny_mlpackage)
    packages = []
    for n, mutant in enumerate(_mutants(source.read_bytes(), tmp_path, ".x", 8, seed=len(member))):
        package = tmp_path / f"{n}-{mutant.stem}.mlpackage"
        shutil.copytree(tiny_mlpackage, package)
        shutil.copyfile(mutant, package / relative)
        packages.append(package)
    runs = [[sys.executable, "-c", COREML_CHILD, str(p), str(GOOD_IMAGE)] for p in packages]
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(_child, runs))
    failures = [f"{p.name}: {o}" for p, o in zip(packages, outcomes, strict=True) if o]
    assert not failures, "\n".join(failures)


# --- the whole check -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_hostile_check_finds_nothing(tmp_path):
    """scripts/hostile_check.py: every case through every entry point; zero runs that are not ok."""
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "hostile_check.py"), "--json", str(tmp_path / "results.json")],
                          capture_output=True, text=True, timeout=3600, cwd=REPO)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
