"""`make device-test`: run edgeskin-pi on emulated Raspberry Pi CPUs and compare with x86.

For every recipe of the demo artifacts (litert-torch route: fp32, fp16, dynamic, int8-mixed, and
the full-integer int8 and int16-activation w8a16 files, which must still run), on the 16 bundled images:
1. ai-edge-litert (what `pip install "edgeskin[pi]"` installs): `edgeskin-pi --json --raw` on
   arm64 under `qemu-aarch64-static -cpu cortex-a76` (Pi 5) and `-cpu cortex-a72` (Pi 4), and on
   this x86 host with the same package versions. A row passes when top-1 is identical for every
   image (an exact tie in the x86 probabilities excepted) and the outputs are within tolerance:
   1e-5 for the float recipes; one int8 step of the logits for recipes with int8 kernels, which
   round differently on NEON and AVX (see tolerances()). Any failing row makes the command exit 1.
2. Older runtimes, ai-edge-litert 2.1.0 and tflite-runtime 2.14 (the fallback, numpy<2): on each
   CPU and on x86, whether the bare interpreter loads and runs each recipe (ok / cannot load /
   crash with its signal), and what edgeskin-pi says against ai-edge-litert 2.3 on x86.
   Informational: it never fails the command.
3. Anytime inference: the bundled multi-exit student as an anytime file (`convert --exits all`,
   fp32), `edgeskin-pi --anytime auto` on each CPU and x86: a row passes when every image stops at
   the same exit with outputs within 1e-5, so the stage-by-stage path runs on the Pi as on x86.
edgeskin itself runs from its wheel (`make wheel`, --wheel), installed into every site folder as
on a Pi, never from this checkout. Setup (apt tools, rootfs, wheels, artifacts) is in device_env.py;
all of it is cached.
"""

from __future__ import annotations

import argparse
import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import device_env as dev  # noqa: E402

BUNDLED = dev.REPO / "edgeskin" / "assets" / "isic-cc0"
IMAGE_COUNT = 16  # of the bundled test split: full-size originals, so the resize path runs too
RECIPES = ["fp32", "fp16", "dynamic", "int8-mixed", "int8", "w8a16"]
ROUTE = "litert-torch"  # cached artifacts from another route (onnx2tf, before 2026-12) are rebuilt
OLDER_RUNTIMES = {"litert-2.1.0": "ai-edge-litert 2.1.0", "tflite-runtime": "tflite-runtime 2.14"}
FLOAT_RECIPES = ("fp32", "fp16")
FLOAT_TOLERANCE = 1e-5
THREADS = "2"
OLDER_RUNTIME_IMAGES = 4
DEMO_ANYTIME = dev.REPO / "edgeskin" / "assets" / "demo" / "skindistilvit-ti6-exits-demo.safetensors"

# The bare interpreter on one real image, bypassing edgeskin's own checks: shows what the
# runtime itself does with each file (load error, crash, or a result).
PROBE = """
import sys
from edgeskin.runtime.predictions import model_input
from edgeskin.runtime.preprocess import preprocess
module = sys.argv[1]
Interpreter = __import__(module + ".interpreter", fromlist=["Interpreter"]).Interpreter
try:
    interpreter = Interpreter(model_path=sys.argv[2], num_threads=2)
    interpreter.allocate_tensors()
except Exception as exc:
    print("cannot load: " + (str(exc).strip().splitlines() or [type(exc).__name__])[0][:140])
    sys.exit(3)
from edgeskin.runtime.backends import TFLiteBackend
detail = interpreter.get_input_details()[0]
spec = TFLiteBackend._spec(detail)
interpreter.set_tensor(detail["index"], model_input(preprocess(sys.argv[3]), "NHWC", spec))
interpreter.invoke()
print("ok")
"""


def artifacts(folder: Path | None) -> dict[str, Path]:
    """recipe -> .tflite file; builds the demo artifacts under the cache when none are given."""
    if folder is None:
        folder = dev.CACHE / "artifacts"
        if not _current(folder / "manifest.json"):
            dev.log(f"building the demo artifacts into {folder.relative_to(dev.REPO)} (edgeskin convert, a few minutes)")
            bin_dir = Path(sys.executable).parent
            done = subprocess.run([str(bin_dir / "edgeskin"), "convert", "--target", "tflite", "--recipes", ",".join(RECIPES),
                                   "--out", str(folder), "--force"], cwd=dev.REPO, capture_output=True, text=True)
            if not (folder / "manifest.json").is_file():  # int8 failing its gate (exit 1) is expected
                raise SystemExit(f"edgeskin convert failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            (folder / "converter.sha256").write_text(converter_digest() + "\n")
    manifest = folder / "manifest.json"
    if manifest.is_file():  # failed artifacts (int8) are listed too, with their failed/ path
        from edgeskin.manifest import read_manifest

        listed = read_manifest(manifest).artifacts
        found = {a.recipe: folder / a.file for a in listed if a.target == "tflite" and (folder / a.file).is_file()}
    else:
        found = {p.stem.rsplit("-e", 1)[-1].split("-", 1)[-1]: p for p in sorted(folder.glob("**/*.tflite"))}
    missing = [r for r in RECIPES if r not in found]
    if missing:
        dev.log(f"no artifact for {', '.join(missing)} in {folder}: those rows are skipped")
    return {recipe: found[recipe] for recipe in RECIPES if recipe in found}


def converter_digest() -> str:
    """sha256 over the converter's and the models' sources: cached artifacts are rebuilt when either changes,
    so the emulated Pi always runs files as this checkout writes them (TFLite Metadata and all)."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([*(dev.REPO / "converters").glob("*.py"), *(dev.REPO / "edgeskin" / "models").glob("*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def _current(manifest: Path) -> bool:
    """Whether cached artifacts hold every recipe, built by this route and by this converter."""
    stamp = manifest.parent / "converter.sha256"
    if not manifest.is_file() or not stamp.is_file() or stamp.read_text().strip() != converter_digest():
        return False
    from edgeskin.manifest import read_manifest

    built = {a.recipe: a.route for a in read_manifest(manifest).artifacts}
    return all(built.get(recipe) == ROUTE for recipe in RECIPES)


def run_pi(arch: str, cpu: str | None, site: Path, model: Path, images: list[Path], extra: tuple[str, ...] = ()) -> tuple[dict, dict | str]:
    """edgeskin-pi --json --raw: ({image: record}, summary) or ({}, one-line problem)."""
    done = dev.run_python(arch, cpu, site, ["-m", "edgeskin.runtime.pi", str(model), *map(str, images),
                                             "--json", "--raw", "--threads", THREADS, *extra])
    runs = dev.CACHE / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{site.name.removeprefix('site-')}-{cpu or 'host'}-{model.stem}.jsonl").write_text(done.stdout)
    records, summary = {}, None
    for line in done.stdout.splitlines():
        item = json.loads(line)
        if "summary" in item:
            summary = item["summary"]
        else:
            records[item["image"]] = item
    if summary is None:
        return {}, outcome(done)
    return records, summary


def outcome(done: subprocess.CompletedProcess) -> str:
    """What a process that did not finish normally did, in a few words."""
    if done.returncode < 0:
        return f"crash ({signal.Signals(-done.returncode).name})"
    lines = [line for line in done.stderr.splitlines() if line.strip() and not line.startswith(("INFO:", "WARNING:"))]
    text = lines[-1] if lines else (done.stdout.strip().splitlines() or [f"exit {done.returncode}"])[-1]
    if done.returncode in (132, 134, 139) or "core dumped" in text:
        return f"crash (exit {done.returncode})"
    return text.removeprefix("edgeskin-pi: error: ")[:160]


def dequantized_logits_step(model: Path) -> float | None:
    """The scale of the int8 tensor a float logits output is dequantized from (int8-mixed), read
    with this host's TFLite runtime; None when the logits never pass through int8 (dynamic)."""
    from edgeskin.runtime.backends import tflite_interpreter_class

    interpreter = tflite_interpreter_class()[0](model_path=str(model))
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    outputs = {d["index"] for d in interpreter.get_output_details()}
    for op in interpreter._get_ops_details():  # the public API has no op list
        if op["op_name"] == "DEQUANTIZE" and outputs & {int(i) for i in op["outputs"]}:
            scale, _ = tensors[int(op["inputs"][0])]["quantization"]
            return float(scale) or None
    return None


def tolerances(recipe: str, model: Path, summary: dict, reference: dict) -> dict[str, float]:
    """What may differ between x86 and arm64, per output.

    Float recipes run the same float kernels: every output within 1e-5. Recipes with integer
    kernels (dynamic, int8-mixed, int8, w8a16) round differently on NEON and AVX, so their logits may
    move by one int8 step: the scale of the int8 logits (int8) or of the int8 tensor they are
    dequantized from (int8-mixed); for activations quantized at run time (dynamic), and for int16
    activations (w8a16: its int16 reference kernels round differently through every op, measured
    2 int16 steps, 3e-4, on both Pi CPUs), the step of an int8 tensor spanning the logits' range
    (range / 255). Their probabilities follow from the logits and are reported, not gated.
    """
    if recipe in FLOAT_RECIPES:
        return {"logits": FLOAT_TOLERANCE, "probabilities": FLOAT_TOLERANCE}
    logits = next((o for o in summary["outputs"] if o["name"] == "logits"), None)
    step = logits["scale"] if logits and logits["dtype"] in ("int8", "uint8") and logits["scale"] else None
    step = step or dequantized_logits_step(model)
    if step is None:
        values = [v for record in reference.values() for v in record.get("logits", [])]
        step = (max(values) - min(values)) / 255
    return {"logits": step * 1.0001}  # the 1.0001: float rounding of a difference of exactly one step


def describe(limits: dict[str, float]) -> str:
    if set(limits) == {"logits"}:
        return f"logits 1 step {limits['logits'] / 1.0001:.3g}"
    return "1e-05"


def _tied(record: dict) -> bool:
    """The top two probabilities are equal at the output's resolution: either label is right."""
    top = sorted(record["probabilities"])[-2:]
    return len(top) == 2 and top[1] - top[0] <= 1e-6


def compare(reference: dict, other: dict, limits: dict[str, float] | None = None) -> tuple[int, bool, float, float]:
    """(images compared, top-1 identical everywhere (ties excepted), max |difference| over the gated
    outputs, the largest difference as a fraction of its output's tolerance: <= 1 passes)."""
    limits = limits or {"logits": FLOAT_TOLERANCE, "probabilities": FLOAT_TOLERANCE}
    same, worst, ratio, count = True, 0.0, 0.0, 0
    for image, ref in reference.items():
        got = other.get(image)
        if got is None or "error" in got or "error" in ref:
            return count, False, float("inf"), float("inf")
        count += 1
        same &= got["label"] == ref["label"] or _tied(ref)
        for key, limit in limits.items():
            if key in ref:
                diff = max(abs(a - b) for a, b in zip(ref[key], got[key], strict=True))
                worst = max(worst, diff)
                ratio = max(ratio, diff / limit)
    return count, same, worst, ratio


def litert_rows(models: dict[str, Path], images: list[Path], cpus: list[str]) -> tuple[list[dict], dict[str, dict]]:
    """The gated rows, and the x86 records per recipe (the reference for the tflite-runtime pass)."""
    arm_site = dev.ensure_site("litert", "aarch64")
    x86_site = dev.ensure_site("litert", "x86_64", dev.pinned(arm_site, "litert"))
    for arch, cpu, site in (("x86_64", None, x86_site), ("aarch64", cpus[0], arm_site)):
        print(f"edgeskin ({arch}) from {dev.imported_from(arch, cpu, site).relative_to(dev.REPO)}", flush=True)
    print(f"{'recipe':<11} {'cpu':<11} {'runtime':<22} {'images':>6} {'top-1':>5} {'max|diff|':>10} {'tolerance':>18} "
          f"{'result':<5} {'arm ms':>8} {'x86 ms':>7}")
    rows, references = [], {}
    for recipe, model in models.items():
        reference, ref_summary = run_pi("x86_64", None, x86_site, model, images)
        references[recipe] = reference
        for cpu in cpus:
            started = time.monotonic()
            records, summary = run_pi("aarch64", cpu, arm_site, model, images)
            row = {"recipe": recipe, "cpu": cpu, "seconds": round(time.monotonic() - started, 1)}
            if isinstance(ref_summary, str) or isinstance(summary, str):
                row.update(result="FAIL", problem=f"x86: {ref_summary}" if isinstance(ref_summary, str) else f"arm64: {summary}")
            else:
                limits = tolerances(recipe, model, ref_summary, reference)
                count, same, worst, ratio = compare(reference, records, limits)
                passed = same and ratio <= 1.0 and count == len(images)
                row.update(runtime=summary["runtime"], images=count, top1_same=same, max_diff=worst, tolerance=describe(limits),
                           arm_p50_ms=summary["p50_latency_ms"], x86_p50_ms=ref_summary["p50_latency_ms"],
                           result="PASS" if passed else "FAIL")
            rows.append(row)
            print_row(row)
    return rows, references


def anytime_artifact() -> Path | None:
    """The multi-exit demo student as an anytime fp32 file, built once into the cache."""
    if not DEMO_ANYTIME.is_file():
        dev.log(f"no {DEMO_ANYTIME.name}: the anytime rows are skipped")
        return None
    folder = dev.CACHE / "anytime"
    found = sorted(folder.glob("**/*-anytime-*-fp32.tflite"))
    stamp = folder / "converter.sha256"
    if not found or not stamp.is_file() or stamp.read_text().strip() != converter_digest():
        dev.log(f"building the anytime demo file into {folder.relative_to(dev.REPO)} (edgeskin convert --exits all)")
        done = subprocess.run([str(Path(sys.executable).parent / "edgeskin"), "convert", str(DEMO_ANYTIME), "--exits", "all",
                               "--recipes", "fp32", "--out", str(folder), "--force"], cwd=dev.REPO, capture_output=True, text=True)
        found = sorted(folder.glob("**/*-anytime-*-fp32.tflite"))
        if not found:
            raise SystemExit(f"edgeskin convert --exits all failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        stamp.write_text(converter_digest() + "\n")
    return found[0]


def anytime_rows(model: Path, images: list[Path], cpus: list[str]) -> list[dict]:
    """edgeskin-pi --anytime auto on arm64 vs x86: the same exit per image, outputs within 1e-5."""
    arm_site = dev.ensure_site("litert", "aarch64")
    x86_site = dev.ensure_site("litert", "x86_64", dev.pinned(arm_site, "litert"))
    reference, ref_summary = run_pi("x86_64", None, x86_site, model, images, ("--anytime", "auto"))
    rows = []
    for cpu in cpus:
        records, summary = run_pi("aarch64", cpu, arm_site, model, images, ("--anytime", "auto"))
        row = {"recipe": "anytime", "cpu": cpu}
        if isinstance(ref_summary, str) or isinstance(summary, str):
            row.update(result="FAIL", problem=f"x86: {ref_summary}" if isinstance(ref_summary, str) else f"arm64: {summary}")
        else:
            count, same, worst, ratio = compare(reference, records)
            exits_same = all(records.get(image, {}).get("exit") == ref.get("exit") for image, ref in reference.items())
            row.update(runtime=summary["runtime"], images=count, top1_same=same and exits_same, max_diff=worst,
                       tolerance="1e-05, same exit", arm_p50_ms=summary["p50_latency_ms"], x86_p50_ms=ref_summary["p50_latency_ms"],
                       exits=summary.get("exits"), result="PASS" if same and exits_same and ratio <= 1.0 and count == len(images) else "FAIL")
        rows.append(row)
        print_row(row)
    if not isinstance(ref_summary, str):
        print(f"anytime exits (x86, stored thresholds): {ref_summary.get('exits')}, mean {ref_summary.get('mean_latency_ms')} ms", flush=True)
    return rows


def older_runtime_rows(env: str, models: dict[str, Path], images: list[Path], cpus: list[str],
                       litert_x86: dict[str, dict]) -> list[dict]:
    rows = []
    images = images[:OLDER_RUNTIME_IMAGES]  # informational, and emulated float math is slow (seconds per image)
    for arch in ("aarch64", "x86_64"):
        site = dev.ensure_site(env, arch)
        for cpu in cpus if arch == "aarch64" else [None]:
            for recipe, model in models.items():
                probe = dev.run_python(arch, cpu, site, ["-c", PROBE, dev.ENVIRONMENTS[env][1], str(model), str(images[0])])
                bare = "ok" if probe.returncode == 0 else outcome(probe)
                records, summary = run_pi(arch, cpu, site, model, images)
                if isinstance(summary, str):
                    said = f"refuses: {summary}"
                else:
                    reference = {image: litert_x86[recipe][image] for image in records if image in litert_x86.get(recipe, {})}
                    count, same, worst, _ = compare(reference, records)
                    said = (f"ok: {count}/{len(images)} images, top-1 vs ai-edge-litert x86 {'identical' if same else 'DIFFERS'}, "
                            f"max diff {worst:.2g}, p50 {summary['p50_latency_ms']:.0f} ms")
                row = {"runtime": OLDER_RUNTIMES[env], "arch": arch, "cpu": cpu or "x86_64 host", "recipe": recipe,
                       "bare_interpreter": bare, "edgeskin_pi": said}
                rows.append(row)
                print(f"{row['cpu']:<12} {recipe:<11} {bare[:60]:<60} {said[:150]}", flush=True)
    return rows


def print_row(row: dict) -> None:
    if "problem" in row:
        print(f"{row['recipe']:<11} {row['cpu']:<11} {'':<22} {'':>6} {'':>5} {'':>10} {'':>18} {row['result']}  {row['problem']}", flush=True)
        return
    print(f"{row['recipe']:<11} {row['cpu']:<11} {row['runtime']:<22} {row['images']:>6} {'yes' if row['top1_same'] else 'NO':>5} "
          f"{row['max_diff']:>10.2e} {row['tolerance']:>18} {row['result']:<5} {row['arm_p50_ms']:>8.0f} {row['x86_p50_ms']:>7.1f}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=None, help="folder with the .tflite files (default: build the demo ones under .cache/device-test)")
    parser.add_argument("--cpus", default="cortex-a76,cortex-a72", help="qemu CPU models (default: cortex-a76,cortex-a72)")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="recipes to check (default: all six)")
    parser.add_argument("--skip-older-runtimes", "--skip-tflite-runtime", action="store_true",
                        help="skip the informational pass on ai-edge-litert 2.1.0 and tflite-runtime 2.14")
    parser.add_argument("--wheel", type=Path, default=dev.default_wheel(),
                        help="the edgeskin wheel the emulated Pi installs (default: `make wheel`'s, dist/edgeskin-<version>-py3-none-any.whl)")
    parser.add_argument("--report", type=Path, default=dev.CACHE / "report.json", help="where to write every number as JSON")
    args = parser.parse_args(argv)
    cpus = [c for c in args.cpus.split(",") if c]
    unknown = [c for c in cpus if c not in dev.CPUS]
    if unknown:
        parser.error(f"unknown CPU {', '.join(unknown)} (known: {', '.join(dev.CPUS)})")
    started = time.monotonic()
    dev.WHEEL = dev.check_wheel(args.wheel.resolve())
    dev.ensure_tools()
    dev.ensure_rootfs()
    models = {r: p for r, p in artifacts(args.artifacts).items() if r in args.recipes.split(",")}
    with open(BUNDLED / "labels.csv", newline="") as handle:
        images = [BUNDLED / "images" / r["image"] for r in csv.DictReader(handle) if r["split"] == "test"][:IMAGE_COUNT]
    print(f"\nx86_64 vs emulated arm64 (qemu {'/'.join(cpus)}), edgeskin-pi on {len(images)} bundled images, {THREADS} threads, "
          f"from {dev.WHEEL.name} ({dev.WHEEL.stat().st_size / 1e6:.1f} MB)")
    rows, x86_records = litert_rows(models, images, cpus)
    anytime = anytime_artifact()
    if anytime is not None:
        print(f"\nanytime: {anytime.name}, edgeskin-pi --anytime auto")
        rows += anytime_rows(anytime, images, cpus)
    report = {"cpus": cpus, "images": len(images), "wheel": dev.WHEEL.name, "litert": rows}
    for env, label in {} if args.skip_older_runtimes else OLDER_RUNTIMES.items():
        print(f"\n{label} (informational): bare interpreter on one image, then edgeskin-pi on "
              f"{min(len(images), OLDER_RUNTIME_IMAGES)}")
        report[env] = older_runtime_rows(env, models, images, cpus, x86_records)
    failed = [r for r in rows if r["result"] != "PASS"]
    report["seconds"] = round(time.monotonic() - started, 1)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    print(f"\n{len(rows) - len(failed)}/{len(rows)} rows pass; {report['seconds']:.0f} s; report: {args.report}")
    return 1 if failed or not rows else 0


if __name__ == "__main__":
    sys.exit(main())
