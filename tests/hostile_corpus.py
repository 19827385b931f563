"""Issue 13's hostile-input corpus: "bad input never costs a traceback, a crash, a hang, lost work or a wrong number".

A generator, not a folder of binaries: `build(folder, models=...)` writes every case into `folder` at run time
(deterministic, seeded, a few seconds; the large images are streamed, so building needs no gigabytes) and
returns the `Case`s. Each case says its failure class (1-12, or "holds" for what already works), the entry
points it applies to, its paths, and what a correct outcome is. `scripts/hostile_check.py` runs them through the
commands; `tests/test_hostile.py` uses them in-process.

Classes: 1 malformed EXIF / Pillow plugins raising odd exceptions, 2 special files in folders, 3 a FIFO as a
model or checkpoint, 4 mutated model files, 5 embedded metadata that contradicts the graph, 6 checkpoint
configs, 7 memory, 8 datasets, 9 Python API inputs, 11 stale staging folders, 12 torch missing.
"""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
from dataclasses import dataclass
from pathlib import Path

from tests.hostile_files import (  # noqa: F401 - re-exported for tests/test_hostile.py and scripts/hostile_check.py
    CLASSES,
    EXIF_RAISES,
    _image,
    _save,
    dds,
    exif_blocks,
    hf_config,
    hf_folder,
    jpeg_with_exif,
    mkfifo,
    mutated,
    mutation_positions,
    orientation_jpeg,
    pickle_payload,
    rewrite_safetensors_config,
    rewrite_tflite_metadata,
    safetensors_bytes,
    streamed_png,
    truncations,
    zip_bomb,
)

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "edgeskin" / "assets" / "isic-cc0"
DEMO = REPO / "edgeskin" / "assets" / "demo" / "skindistilvit-ti6-demo.safetensors"

IMAGE_ENTRIES = ("predict", "pi", "api")
MODEL_ENTRIES = ("predict", "pi", "api", "info")
ENTRY_POINTS = ("predict", "pi", "api", "info", "convert", "eval", "parity")
# what a run ended as, by exit code: 0 done, 1 some rows failed (batch) / a gate failed (convert), 2 one-line error
DONE, ROWS_FAILED, ERROR = "done", "rows failed", "error"


@dataclass(frozen=True)
class Case:
    name: str
    klass: str  # "1".."12" or "holds"
    entries: tuple[str, ...]  # entry points it applies to (ENTRY_POINTS)
    paths: tuple[Path, ...]  # the hostile inputs: images / a folder, a model, a checkpoint, a dataset, an output folder
    expect: str  # a correct outcome, in words
    accept: frozenset[str]  # run kinds that are correct: DONE, ROWS_FAILED, ERROR
    role: str = "images"  # images | model | checkpoint | data | api | out | torchless
    good: tuple[Path, ...] = ()  # good images in the batch: each must come back classified
    names: str | None = None  # what a one-line error must name (default: the first path)
    args: tuple[str, ...] = ()  # api: a Python expression for predict(); torchless: the edgeskin argv ({tflite} filled in)
    timeout: float | None = None  # seconds (None: the checker's default)

    @property
    def named(self) -> str:
        return self.names if self.names is not None else str(self.paths[0]) if self.paths else ""


ROW_ERROR = frozenset({ROWS_FAILED})
ONE_LINE = frozenset({ERROR})
CLASSIFIED = frozenset({DONE})
EITHER = frozenset({DONE, ROWS_FAILED})  # a folder's non-image files may be skipped or reported, never hang


# --- the corpus --------------------------------------------------------------------------------------------


def _good(folder: Path, name: str = "good.jpg", index: int = 0) -> Path:
    source = sorted((BUNDLED / "images").glob("*.jpg"))[index]
    target = folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def image_cases(root: Path) -> list[Case]:
    """Classes 1, 2, 7 and the image cases that hold: every batch ends with a good image."""
    from PIL import Image, features

    cases: list[Case] = []
    d = root / "images"
    d.mkdir(parents=True)
    good = _good(d)

    def batch(name, klass, bad: list[Path], accept, expect, **kw):
        cases.append(Case(name, klass, IMAGE_ENTRIES, (*bad, good), expect, accept, good=(good,), **kw))

    # 1: EXIF that breaks exif_transpose; plugins that raise NotImplementedError / other odd exceptions
    for name, tiff in exif_blocks().items():
        path = jpeg_with_exif(d / f"{name}.jpg", tiff)
        if name in EXIF_RAISES:
            batch(name, "1", [path], EITHER, "classified (orientation applied or ignored), or a row error; the batch goes on")
        else:
            batch(name, "1", [path], EITHER, "classified or a row error; the batch goes on")
    (d / "dds-zero-pixel-format.dds").write_bytes(dds(0))
    (d / "dds-unknown-fourcc.dds").write_bytes(dds(4, b"XYZW"))
    (d / "dds-named-jpg.jpg").write_bytes(dds(0))
    for name in ("dds-zero-pixel-format.dds", "dds-unknown-fourcc.dds", "dds-named-jpg.jpg"):
        batch(name, "1", [d / name], ROW_ERROR, "row error naming the file; the batch goes on")
    blp = b"BLP1" + struct.pack("<IIIIII", 5, 0, 4, 4, 0, 0) + b"\0" * 200  # BLPFormatError (a NotImplementedError)
    (d / "blp-unsupported.blp").write_bytes(blp)
    batch("blp-unsupported", "1", [d / "blp-unsupported.blp"], ROW_ERROR, "row error naming the file; the batch goes on")
    if features.check("avif"):
        buf = io.BytesIO()
        _image("RGB", (64, 48), 2).save(buf, "AVIF")
        data = buf.getvalue()
        (d / "avif-truncated.avif").write_bytes(data[: len(data) * 2 // 3])
        flipped = bytearray(data)
        for i in range(len(flipped) // 2, len(flipped)):
            flipped[i] ^= 0x5A
        (d / "avif-corrupt.avif").write_bytes(bytes(flipped))
        batch("avif-truncated.avif", "1", [d / "avif-truncated.avif"], ROW_ERROR, "row error naming the file; the batch goes on")
        # libavif may decode damaged payload bytes without complaint: garbage pixels, not an error
        batch("avif-corrupt.avif", "1", [d / "avif-corrupt.avif"], EITHER, "classified or a row error; the batch goes on")

    # 2: a folder of good images and special files; the same files given directly
    f = root / "folder"
    goods = (_good(f, "a-good.jpg", 1), _good(f, "m-good.jpg", 2))
    mkfifo(f / "fifo.jpg")
    os.symlink(f / "nowhere.jpg", f / "broken-link.jpg")
    os.symlink(f / "loop-b.jpg", f / "loop-a.jpg")
    os.symlink(f / "loop-a.jpg", f / "loop-b.jpg")
    os.symlink("/dev/zero", f / "zero.jpg")
    (f / "x.jpg").mkdir()
    (f / "x.jpg" / "inner-good.jpg").write_bytes(goods[0].read_bytes())
    (f / "labels.csv").write_text("image,label\na-good.jpg,MEL\n")
    (f / "ATTRIBUTION.md").write_text("# images\nCC0\n")
    (f / ".hidden.jpg").write_bytes(b"not even an image")
    (f / "y.png").write_bytes(b"")
    (f / "z.jpg").write_text("this is a text file, not a JPEG\n")
    cases.append(Case("folder-with-special-files", "2", IMAGE_ENTRIES, (f,), "good images classified, every other "
                      "file a row error or skipped, no hang; the summary printed", EITHER, good=(*goods, f / "x.jpg" / "inner-good.jpg"),
                      timeout=60))
    for name, expect in (("fifo.jpg", "row error naming the FIFO (never opened: no hang)"),
                         ("broken-link.jpg", "row error: broken link"), ("loop-a.jpg", "row error: symbolic link loop"),
                         ("zero.jpg", "row error: a character device (never read: no hang, no memory)"),
                         ("x.jpg", "row error: a folder named like an image, or its images classified"),
                         ("y.png", "row error: empty file"), ("z.jpg", "row error: text file"),
                         ("labels.csv", "row error: not an image")):
        accept = EITHER if name == "x.jpg" else ROW_ERROR
        batch(f"direct-{name}", "2", [f / name], accept, expect, timeout=45)

    # 7: memory: decodes to gigabytes from a few hundred KB, under Pillow's bomb limit and edgeskin's pixel limit
    m = root / "memory"
    m.mkdir()
    streamed_png(m / "rgba16-8944x8944.png", 8944, 8944, color_type=6, depth=16)
    batch("png-rgba16-8944x8944", "7", [m / "rgba16-8944x8944.png"], EITHER,
          "classified or refused in a row, edgeskin-pi under 400 MB peak RSS", timeout=120)
    _save(Image.new("RGB", (8000, 6000), (170, 110, 90)), m / "photo-48mp.jpg", "JPEG", quality=85)
    batch("jpeg-48mp", "7", [m / "photo-48mp.jpg"], CLASSIFIED, "classified, edgeskin-pi under 400 MB peak RSS", timeout=120)
    streamed_png(m / "rgb8-8000x8000.png", 8000, 8000, color_type=2, depth=8)
    batch("png-rgb8-8000x8000", "7", [m / "rgb8-8000x8000.png"], EITHER, "classified or refused in a row, under 400 MB", timeout=120)
    # just under edgeskin's 192 MB decode cap (4 bytes a pixel in Pillow), and 16-bit gray at the 80 MP limit:
    # the largest images that are decoded, so the worst peak memory
    streamed_png(m / "rgb8-7000x6800.png", 7000, 6800, color_type=2, depth=8)
    batch("png-rgb8-at-decode-cap", "7", [m / "rgb8-7000x6800.png"], CLASSIFIED, "classified, under 400 MB", timeout=120)
    streamed_png(m / "gray16-9000x8800.png", 9000, 8800, color_type=0, depth=16)
    batch("png-gray16-at-pixel-limit", "7", [m / "gray16-9000x8800.png"], CLASSIFIED, "classified, under 400 MB", timeout=120)

    # holds: what already works (regression guard)
    h = root / "holds"
    h.mkdir()
    full = good.read_bytes()
    (h / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (h / "random.jpg").write_bytes(random.Random(13).randbytes(4096))
    (h / "text.png").write_text("hello\n" * 20)
    streamed_png(h / "bomb-20000x20000.png", 20000, 20000, color_type=2, depth=8, rows=4)  # over Pillow's 2x limit
    streamed_png(h / "over-limit-10000x10000.png", 10000, 10000, color_type=2, depth=8, rows=4)  # over edgeskin's 80 MP
    for name in ("truncated.jpg", "random.jpg", "text.png", "bomb-20000x20000.png", "over-limit-10000x10000.png"):
        batch(f"holds-{name}", "holds", [h / name], ROW_ERROR, "row error naming the file; the batch goes on")
    modes = {"i16.png": ("I;16", "PNG"), "bilevel.png": ("1", "PNG"), "palette.png": ("P", "PNG"), "cmyk.jpg": ("CMYK", "JPEG"),
             "gray.jpg": ("L", "JPEG"), "float.tiff": ("F", "TIFF"), "gray-alpha.png": ("LA", "PNG"), "rgba.png": ("RGBA", "PNG"),
             "int32.tiff": ("I", "TIFF")}
    for name, (mode, fmt) in modes.items():
        img = _image(mode, (37, 23), 3) if mode != "I" else _image("L", (37, 23), 3).convert("I")
        _save(img, h / name, fmt)
    palette = _image("P", (30, 20), 4)
    palette.info["transparency"] = 0
    _save(palette, h / "palette-transparent.png", "PNG", transparency=0)
    _save(_image("RGB", (1, 1), 5), h / "one-pixel.png", "PNG")
    _save(_image("RGB", (10000, 1), 6), h / "wide-10000x1.png", "PNG")
    _save(_image("RGB", (1, 10000), 7), h / "tall-1x10000.png", "PNG")
    for orientation in range(1, 9):
        orientation_jpeg(h / f"orientation-{orientation}.jpg", orientation)
    odd = [h / "with space.jpg", h / "ünïcødé-病变.jpg", h / "-leading-dash.jpg", h / "new\nline.jpg", h / "no-extension"]
    for path in odd:
        path.write_bytes(full)
    images = [*modes, "palette-transparent.png", "one-pixel.png", "wide-10000x1.png", "tall-1x10000.png",
              *(f"orientation-{o}.jpg" for o in range(1, 9))]
    for name in images:
        batch(f"holds-{name}", "holds", [h / name], CLASSIFIED, "classified")
    for path in odd:
        batch(f"holds-name-{path.name.encode('unicode_escape').decode()}", "holds", [path], CLASSIFIED, "classified (the name kept)")
    return cases


def api_cases(root: Path) -> list[Case]:
    """9: inputs to edgeskin.runtime.load(MODEL).predict(...): `args` is the Python expression passed."""
    good = _good(root / "api")
    exprs = {"list-of-none": "[None]", "list-of-int": "[42]", "generator-of-paths": "(p for p in [GOOD])",
             "empty-array": "np.zeros((0, 0, 3), np.uint8)", "float-array": "np.full((32, 32, 3), 0.5, np.float32)",
             "5d-array": "np.zeros((1, 1, 8, 8, 3), np.uint8)", "array-one-channel": "np.zeros((8, 8, 1), np.uint8)",
             "list-with-bad-then-good": "[b'not an image', GOOD]", "dict": "{'image': GOOD}", "none": "None"}
    accept = {"generator-of-paths": frozenset({DONE, ERROR})}
    return [Case(f"api-{name}", "9", ("api",), (good,), "a one-line EdgeskinError (or, for a generator, every image classified)",
                 accept.get(name, ONE_LINE), role="api", names="", args=(expr,)) for name, expr in exprs.items()]


def fifo_cases(root: Path) -> list[Case]:
    """3: a FIFO where a model or a checkpoint goes (opening one blocks forever)."""
    d = root / "fifos"
    cases = []
    for name in ("m.tflite", "m.onnx"):
        cases.append(Case(f"fifo-model-{name}", "3", MODEL_ENTRIES, (mkfifo(d / name),), "one-line error naming FILE (no hang)",
                          ONE_LINE, role="model", timeout=45))
    for name in ("c.safetensors", "c.bin"):
        cases.append(Case(f"fifo-checkpoint-{name}", "3", ("info", "eval", "convert"), (mkfifo(d / name),),
                          "one-line error naming FILE (no hang)", ONE_LINE, role="checkpoint", timeout=60))
    classes = mkfifo(d / "classes.txt")
    # run where torch is missing: the first problem is the missing extra (info on a checkpoint needs torch), and
    # the FIFO must not be opened (hang) before that is said
    cases.append(Case("fifo-classes-file", "3", ("torchless",), (classes,), "one-line error (no hang)", ONE_LINE,
                      role="torchless", args=("info", str(DEMO), "--classes-file", str(classes)), timeout=60,
                      names="needs the [convert] extra"))
    return cases


def model_cases(root: Path, tflite: Path | None, onnx: Path | None, mutations: int = 20) -> list[Case]:
    """4 (mutations and truncations of a real .tflite / .onnx) and 5 (embedded metadata vs graph)."""
    cases: list[Case] = []
    d = root / "models"
    d.mkdir(parents=True, exist_ok=True)
    either = frozenset({DONE, ERROR})
    for base, count, seed in ((tflite, mutations, 4), (onnx, max(6, mutations // 2), 5)):
        if base is None:
            continue
        data, suffix = base.read_bytes(), base.suffix
        for n, position in enumerate(mutation_positions(len(data), count, seed)):
            width = 4 if n % 5 == 4 else 1
            path = d / f"{base.stem}-flip{width}-at{position}{suffix}"
            path.write_bytes(mutated(data, position, width))
            entries = MODEL_ENTRIES if n % 4 == 0 else ("predict", "pi", "api")
            cases.append(Case(f"mutate-{suffix[1:]}-{width}b-at-{position}", "4", entries, (path,),
                              "one-line error naming FILE, or valid probabilities", either, role="model"))
        for cut in truncations(len(data)):
            path = d / f"{base.stem}-cut{cut}{suffix}"
            path.write_bytes(data[:cut])
            cases.append(Case(f"truncate-{suffix[1:]}-{cut}", "4", MODEL_ENTRIES, (path,), "one-line error naming FILE",
                              ONE_LINE, role="model"))
    if tflite is not None:
        edits = {"two-class-names": {"class_names": ("MEL", "NV")},
                 "nine-class-names": {"class_names": (*CLASSES, "UNK")},
                 "input-size-160": {"input": {"shape": (1, 160, 160, 3)}, "preprocess": {"size": 160}},
                 "layout-nchw": {"input": {"layout": "NCHW", "shape": (1, 3, 224, 224)}},
                 "outputs-swapped": {"outputs": ("logits", "probabilities")},
                 "output-role-unknown": {"outputs": ("probabilities", "scores")},
                 "one-output-named": {"outputs": ("probabilities",)},
                 "preprocess-size-zero": {"preprocess": {"size": 0}},
                 "class-names-not-strings": {"class_names": tuple(range(8))}}
        for name, change in edits.items():
            path = rewrite_tflite_metadata(tflite, d / f"meta-{name}.tflite", **change)
            accept = either if name == "outputs-swapped" else ONE_LINE
            cases.append(Case(f"metadata-{name}", "5", (*MODEL_ENTRIES, "parity"), (path,),
                              "one-line error naming FILE (metadata contradicts the graph)"
                              + (", or the right probabilities" if name == "outputs-swapped" else ""), accept, role="model"))
        cases.append(Case("metadata-holds-fp32", "holds", MODEL_ENTRIES, (tflite,), "classified", CLASSIFIED, role="model"))
    return cases


def checkpoint_cases(root: Path) -> list[Case]:
    """6: native .safetensors configs, Hugging Face folders, a zip bomb; holds: a pickle with a payload."""
    d = root / "checkpoints"
    d.mkdir(parents=True)
    entries = ("info", "eval")
    cases: list[Case] = []

    def add(name, path, klass="6", more=(), accept=ONE_LINE, expect="one-line error naming FILE", names=None, timeout=None):
        cases.append(Case(name, klass, (*entries, *more), (path,), expect, accept, role="checkpoint", names=names, timeout=timeout))

    edits = {"missing-depth": lambda c: {k: v for k, v in c.items() if k != "depth"},
             "class-names-mapping": lambda c: {**c, "class_names": {"0": "MEL"}},
             "preprocess-list": lambda c: {**c, "preprocess": [224]},
             "config-list": lambda c: list(c.items()),
             "num-heads-zero": lambda c: {**c, "num_heads": 0},
             "mlp-ratio-huge": lambda c: {**c, "mlp_ratio": 1e9},
             "depth-negative": lambda c: {**c, "depth": -3},
             "embed-dim-string": lambda c: {**c, "embed_dim": "wide"}}
    for n, (name, edit) in enumerate(edits.items()):
        path = rewrite_safetensors_config(DEMO, d / f"{name}.safetensors", edit)
        add(f"native-{name}", path, more=("convert",) if n % 3 == 0 else ())
    for name, config in {"hidden-size-zero": hf_config(hidden_size=0), "id2label-list": hf_config(id2label=list(CLASSES)),
                         "config-list": [hf_config()], "layers-null": hf_config(num_hidden_layers=None),
                         "heads-zero": hf_config(num_attention_heads=0)}.items():
        folder = hf_folder(d / f"hf-{name}", config)
        add(f"hf-{name}", folder, names=str(folder))
    bomb = zip_bomb(d / "bomb.bin")
    add("zip-bomb-bin", bomb, more=("convert",), timeout=120)
    marker = root / "PAYLOAD-RAN"
    for zipped in (False, True):
        path = pickle_payload(d / f"payload-{'zip' if zipped else 'raw'}.bin", marker, zipped)
        add(f"holds-pickle-payload-{'zip' if zipped else 'raw'}", path, klass="holds",
            expect=f"one-line error naming FILE; {marker.name} never created")
    return cases


def data_cases(root: Path) -> list[Case]:
    """8: labels.csv with duplicate ids (same and conflicting labels), an ISIC ground truth with a short row."""
    cases: list[Case] = []
    images = sorted((BUNDLED / "images").glob("*.jpg"))[:6]
    labels = ["MEL", "NV", "MEL", "NV", "MEL", "NV"]

    def dataset(name: str, rows: list[str], header: str = "image,label", csv_name: str = "labels.csv") -> Path:
        folder = root / "data" / name
        (folder / "images").mkdir(parents=True)
        for image in images:
            shutil.copyfile(image, folder / "images" / image.name)
        (folder / csv_name).write_text("\n".join([header, *rows]) + "\n")
        return folder

    base = [f"{p.name},{lab}" for p, lab in zip(images, labels, strict=True)]
    variants = {"duplicate-ids": base + [base[0], base[1]],
                "duplicate-ids-conflicting": base + [f"{images[0].name},NV"],
                "duplicate-ids-by-stem": base + [f"{images[2].stem},MEL"]}
    for name, rows in variants.items():
        folder = dataset(name, rows)
        cases.append(Case(f"data-{name}", "8", ("eval", "parity", "convert") if name == "duplicate-ids" else ("eval", "parity"),
                          (folder,), "one-line error naming labels.csv and the repeated id", ONE_LINE, role="data",
                          names=str(folder / "labels.csv")))
    header = "image," + ",".join(CLASSES) + ",UNK"
    rows = [f"{p.stem}," + ",".join("1.0" if c == lab else "0.0" for c in CLASSES) + ",0.0" for p, lab in zip(images, labels, strict=True)]
    rows[3] = f"{images[3].stem},0.0,1.0"  # a short row
    folder = dataset("isic-short-row", rows, header, "ISIC_2019_Training_GroundTruth.csv")
    cases.append(Case("data-isic-short-row", "8", ("eval", "parity"), (folder,), "one-line error naming the CSV and its line",
                      ONE_LINE, role="data", names=str(folder / "ISIC_2019_Training_GroundTruth.csv")))
    fifo_set = dataset("lists-a-fifo", base)
    (fifo_set / "images" / images[0].name).unlink()
    mkfifo(fifo_set / "images" / images[0].name)
    cases.append(Case("data-lists-a-fifo", "8", ("eval",), (fifo_set,), "one-line error naming the FIFO (no hang)", ONE_LINE,
                      role="data", names=str(fifo_set / "images" / images[0].name), timeout=60))
    return cases


def staging_cases(root: Path) -> list[Case]:
    """11: the `.OUT.partial-XXXX` a SIGKILLed `edgeskin convert` leaves (converters/artifacts.py's naming)."""
    cases = []
    for name, existing in (("stale-partial-new-out", False), ("stale-partial-existing-out", True)):
        parent = root / "staging" / name
        out = parent / "out"
        stale = parent / ".out.partial-k1ll3d"
        (stale / ".work").mkdir(parents=True)
        (stale / ".work" / "probe-fp32.tflite").write_bytes(b"TFL3" + bytes(1 << 16))
        if existing:
            out.mkdir()
            (out / "manifest.json").write_text("{}")
        cases.append(Case(name, "11", ("convert",), (out,), "converted; the dead run's staging folder removed (or named)",
                          CLASSIFIED, role="out", names=str(stale)))
    return cases


def torchless_cases() -> list[Case]:
    """12: commands that need the [convert] extra, where `import torch` fails; predict/info of an artifact need none."""
    needs = {"convert": ("convert", "--target", "tflite", "--recipes", "fp32", "--out", "{tmp}/out"),
             "eval": ("eval", "--checkpoint", str(DEMO)), "info": ("info", str(DEMO)),
             "parity": ("parity", "{tflite}", "--reference", str(DEMO), "--no-bench"),
             "bench": ("bench", "{tflite}", "--reference", str(DEMO), "--runs", "1")}
    cases = [Case(f"torchless-{name}", "12", ("torchless",), (), "one-line error saying to install edgeskin[convert]",
                  ONE_LINE, role="torchless", names="[convert]", args=argv, timeout=60) for name, argv in needs.items()]
    good = sorted((BUNDLED / "images").glob("*.jpg"))[0]
    cases.append(Case("torchless-predict", "holds", ("torchless",), (), "classified without torch", CLASSIFIED,
                      role="torchless", args=("predict", "{tflite}", str(good), "--json")))
    cases.append(Case("torchless-info-artifact", "holds", ("torchless",), (), "the contract, without torch", CLASSIFIED,
                      role="torchless", args=("info", "{tflite}")))
    return cases


SECTIONS = ("images", "api", "fifos", "models", "checkpoints", "data", "staging", "torchless")


def build(folder: str | os.PathLike, tflite: Path | None = None, onnx: Path | None = None,
          sections: tuple[str, ...] = SECTIONS, mutations: int = 20) -> list[Case]:
    """Write the corpus into `folder` (emptied first) and return its cases. `tflite`/`onnx`: real converted
    models the model cases (4, 5) are derived from; without them those cases are left out."""
    root = Path(folder)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    makers = {"images": lambda: image_cases(root), "api": lambda: api_cases(root), "fifos": lambda: fifo_cases(root),
              "models": lambda: model_cases(root, tflite, onnx, mutations), "checkpoints": lambda: checkpoint_cases(root),
              "data": lambda: data_cases(root), "staging": lambda: staging_cases(root), "torchless": torchless_cases}
    cases = [case for section in sections for case in makers[section]()]
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


def payload_marker(folder: str | os.PathLike) -> Path:
    return Path(folder) / "PAYLOAD-RAN"
