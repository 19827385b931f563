"""Issue 13's check: every hostile case (tests/hostile_corpus.py) through every entry point it applies to.

    .venv/bin/python scripts/hostile_check.py [--only CLASS] [--json results.json] [--timeout 120] [--jobs 2]

Each run is a child process with a timeout: `edgeskin predict`, `edgeskin-pi`, a `python -c` driving
`edgeskin.runtime.load(MODEL).predict(...)`, `edgeskin info`, `convert`, `eval`, `parity`, and commands with torch
made unimportable. Outcomes: traceback, crash (signal), hang (timeout), memory (edgeskin-pi peak RSS over
400 MB), lost output (a good image's row or the summary missing), wrong result (a number outside [0,1], a label
not among the classes, the wrong kind of ending), unclear error (exit 2 without exactly one line naming the
file), else ok. Exit code 1 when any run is not ok. The demo model is converted once into --cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.hostile_corpus import BUNDLED, CLASSES, DEMO, DONE, ERROR, ROWS_FAILED, Case, build, payload_marker  # noqa: E402

BIN = Path(sys.executable).parent
MEMORY_LIMIT_MB = 400
OUTCOMES = ("ok", "traceback", "crash", "hang", "memory", "lost output", "wrong result", "unclear error")
PROG = {"pi": "edgeskin-pi", "api": "api"}
KIND = {0: DONE, 1: ROWS_FAILED, 2: ERROR}

API = """
import json, sys
import numpy as np
from edgeskin.runtime import EdgeskinError, load
model, spec = sys.argv[1], json.loads(sys.argv[2])
try:
    predictor = load(model, threads=1)
except EdgeskinError as exc:
    print(f"api: error: {exc}", file=sys.stderr); sys.exit(2)
def row(name, p):
    return {"image": name, "label": p.label, "probability": p.probability,
            "probabilities": [float(v) for v in p.probabilities], "top_k": [{"label": n, "probability": q} for n, q in p.top_k]}
if "expr" in spec:
    GOOD = spec["good"]
    try:
        results = predictor.predict(eval(spec["expr"]))
    except EdgeskinError as exc:
        print(f"api: error: {exc}", file=sys.stderr); sys.exit(2)
    for n, p in enumerate(results):
        print(json.dumps(row(f"#{n}", p)))
    print(json.dumps({"summary": {"images": len(results)}})); sys.exit(0)
failures = 0
for path in spec["images"]:
    try:
        print(json.dumps(row(path, predictor.predict([path])[0])), flush=True)
    except EdgeskinError as exc:
        failures += 1; print(json.dumps({"image": path, "error": str(exc)}), flush=True)
print(json.dumps({"summary": {"images": len(spec["images"]), "failures": failures}}))
sys.exit(1 if failures else 0)
"""
TORCHLESS = "import sys; sys.modules['torch'] = None; from edgeskin.cli import main; sys.exit(main(sys.argv[1:]))"


@dataclass
class Result:
    case: str
    klass: str
    entry: str
    outcome: str
    detail: str
    returncode: int | None
    seconds: float
    peak_rss_mb: float
    first_stderr: str
    command: list[str]


def _high_water_mb(pid: int) -> float | None:
    """VmHWM of a running process: its own peak RSS since exec. (wait4's ru_maxrss would not do: Linux
    carries the forking parent's high-water mark across exec, so every child would report ours.)"""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next((line for line in status if line.startswith("VmHWM:")), None)
    except OSError:
        return None
    return int(line.split()[1]) / 1024 if line else None


def run_child(argv: list[str], timeout: float, cwd: Path | None = None) -> tuple[int | None, str, str, float, float]:
    """(returncode or None on timeout, stdout, stderr, seconds, peak RSS MB) of a child in its own process group."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        began = time.monotonic()
        child = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=cwd, start_new_session=True)
        status: dict = {"rss": 0.0}
        while True:  # poll the child's high-water mark until it exits (a zombie has none left to read)
            peak = _high_water_mb(child.pid)
            if peak is not None:
                status["rss"] = max(status["rss"], peak)
            pid, code = os.waitpid(child.pid, os.WNOHANG)
            if pid:
                status["code"] = os.waitstatus_to_exitcode(code)
                break
            if time.monotonic() - began > timeout:
                os.killpg(child.pid, signal.SIGKILL)
                os.waitpid(child.pid, 0)
                status["code"] = None
                break
            time.sleep(0.02)
        child.returncode = -9 if status["code"] is None else status["code"]  # reaped here: keep Popen from waiting again
        seconds = time.monotonic() - began
        out.seek(0)
        err.seek(0)
        text = lambda f: f.read().decode("utf-8", "replace")  # noqa: E731
        return status["code"], text(out), text(err), seconds, status.get("rss", 0.0)


def listed(folder: Path) -> list[str]:
    """A folder's entries, non-hidden, as the API is handed them one by one (special files included)."""
    return [str(folder / name) for name in sorted(os.listdir(folder)) if not name.startswith(".")]


def command(case: Case, entry: str, model: Path, work: Path) -> list[str]:
    py, edgeskin = sys.executable, str(BIN / "edgeskin")
    paths = [str(p) for p in case.paths]
    target = paths[0] if paths else ""
    if case.role == "torchless":
        argv = [a.format(tflite=model, tmp=work) for a in case.args]
        return [py, "-c", TORCHLESS, *argv]
    if entry == "api":
        if case.role == "api":
            spec = {"expr": case.args[0], "good": paths[0]}
        elif case.role == "model":
            spec, model = {"images": [str(next(iter(sorted((BUNDLED / "images").glob("*.jpg")))))]}, Path(target)
        else:
            spec = {"images": [q for p in case.paths for q in (listed(p) if p.is_dir() and not p.suffix else [str(p)])]}
        return [py, "-c", API, str(model), json.dumps(spec)]
    if case.role in ("images", "model"):
        images = paths if case.role == "images" else [str(sorted((BUNDLED / "images").glob("*.jpg"))[0])]
        artifact = str(model) if case.role == "images" else target
        if entry == "predict":
            return [edgeskin, "predict", artifact, *images, "--json"]
        if entry == "pi":
            return [str(BIN / "edgeskin-pi"), artifact, *images, "--json", "--raw"]
        if entry == "info":
            return [edgeskin, "info", artifact]
        if entry == "parity":
            return [edgeskin, "parity", artifact, "--reference", str(DEMO), "--data", str(BUNDLED), "--split", "val",
                    "--no-bench", "--out", str(work / "parity")]
    checkpoint, data = (target, str(BUNDLED)) if case.role == "checkpoint" else (str(DEMO), target)
    if case.role == "out":
        data = str(BUNDLED)
    split = "test" if case.role == "checkpoint" else "all"
    if entry == "info":
        return [edgeskin, "info", checkpoint]
    if entry == "eval":
        return [edgeskin, "eval", "--checkpoint", checkpoint, "--data", data, "--split", split]
    if entry == "parity":
        return [edgeskin, "parity", str(model), "--reference", str(DEMO), "--data", data, "--split", split, "--no-bench",
                "--out", str(work / "parity")]
    if entry == "convert":
        out = target if case.role == "out" else str(work / "out")
        head = [edgeskin, "convert"] + ([checkpoint] if case.role == "checkpoint" else [])
        return head + ["--target", "tflite", "--recipes", "fp32", "--out", out, "--force", "--data", data]
    raise ValueError(f"{case.name}: no command for entry point {entry}")


def _bad_number(value) -> bool:
    return not isinstance(value, (int, float)) or math.isnan(value) or not 0.0 <= value <= 1.0


def check_rows(case: Case, entry: str, stdout: str) -> tuple[str, str] | None:
    """Lost output / wrong numbers in a batch's JSON lines; None when the rows are fine."""
    records = []
    for line in stdout.splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            records.append(value)
    rows = {r["image"]: r for r in records if "image" in r}
    if not any("summary" in r for r in records):
        return "lost output", "no summary line"
    given = {str(p) for p in case.paths}
    names = [str(g) for g in case.good if case.role != "api" and (entry != "api" or str(g) in given or str(g.parent) in given)]
    missing = [n for n in names if "label" not in rows.get(n, {})]
    if missing:
        return "lost output", f"good image not classified: {Path(missing[0]).name}"
    for name, row in rows.items():
        if "label" not in row:
            continue
        probabilities = row.get("probabilities") or []
        numbers = [row.get("probability"), *(k.get("probability") for k in row.get("top_k", [])), *probabilities]
        if any(_bad_number(v) for v in numbers):
            return "wrong result", f"{Path(name).name}: a probability outside [0, 1]: {numbers[:3]}"
        if probabilities and abs(sum(probabilities) - 1) > 1e-3:
            return "wrong result", f"{Path(name).name}: probabilities sum to {sum(probabilities):.4f}"
        if row["label"] not in CLASSES:
            return "wrong result", f"{Path(name).name}: label {row['label']!r} is not one of the model's classes"
    return None


def classify(case: Case, entry: str, code: int | None, stdout: str, stderr: str, rss: float, work: Path,
             marker: Path) -> tuple[str, str]:
    first = next((line for line in stderr.splitlines() if line.strip()), "")
    if "Traceback (most recent call last)" in stderr:
        last = [line for line in stderr.strip().splitlines() if line.strip()]
        return "traceback", last[-1] if last else ""
    if code is None:
        return "hang", "timed out"
    if code < 0 or code >= 128 and code != 130:
        return "crash", f"exit {code}" + (f" ({signal.Signals(-code).name})" if code < 0 else "")
    if entry == "pi" and rss > MEMORY_LIMIT_MB:
        return "memory", f"peak RSS {rss:.0f} MB"
    if "payload" in case.name and marker.exists():
        marker.unlink()
        return "wrong result", "the pickle payload ran"
    batch = entry in ("predict", "pi", "api") and case.role in ("images", "model", "api") or (
        case.role == "torchless" and case.args[:1] == ("predict",))
    if batch and code in (0, 1):
        problem = check_rows(case, entry, stdout)
        if problem:
            return problem
    if case.role == "out" and code == 0:
        if not (Path(case.paths[0]) / "manifest.json").is_file():
            return "lost output", "no manifest.json in the output folder"
        if Path(case.named).exists() and case.named not in stderr + stdout:
            return "wrong result", f"stale {Path(case.named).name} left in place, unmentioned"
    kind = KIND.get(code, f"exit {code}")
    # `info` reads the embedded contract only (no runtime): for a damaged model, printing it is fine too
    accept = case.accept | {DONE} if entry == "info" and case.role == "model" else case.accept
    if kind not in accept:
        return "wrong result", f"exit {code} ({kind}); expected {' or '.join(sorted(accept))}: {first[:120]}"
    if code == 2:
        lines = [line for line in stderr.splitlines() if line.strip()]
        prog = PROG.get(entry, "edgeskin")
        if len(lines) != 1 or not lines[0].startswith(f"{prog}: ") or case.named not in lines[0]:
            return "unclear error", f"{len(lines)} lines" + ("" if case.named in stderr else f"; does not name {case.named}")
    return "ok", ""


def run_case(case: Case, entry: str, model: Path, timeout: float, marker: Path) -> Result:
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        work = Path(tmp)
        argv = command(case, entry, model, work)
        code, stdout, stderr, seconds, rss = run_child(argv, case.timeout or timeout, cwd=work)
        outcome, detail = classify(case, entry, code, stdout, stderr, rss, work, marker)
    first = next((line for line in stderr.splitlines() if line.strip()), "")
    return Result(case.name, case.klass, "torchless:" + case.args[0] if case.role == "torchless" else entry, outcome, detail,
                  code, round(seconds, 2), round(rss, 1), first[:300], argv if entry != "api" else argv[:2] + ["API"] + argv[3:])


def demo_models(cache: Path) -> tuple[Path, Path, Path]:
    """(fp32 .tflite, dynamic .tflite, fp32 .onnx) of the demo student, converted once into `cache`."""
    tflite, onnx = cache / "demo", cache / "demo-onnx"
    for folder, target, recipes in ((tflite, "tflite", "fp32,dynamic"), (onnx, "onnx", "fp32")):
        if not (folder / "manifest.json").is_file():
            print(f"converting the demo student ({target}) into {folder} ...", file=sys.stderr, flush=True)
            subprocess.run([str(BIN / "edgeskin"), "convert", "--target", target, "--recipes", recipes, "--out", str(folder),
                            "--force", "--data", str(BUNDLED)], check=True, stdout=subprocess.DEVNULL)
    name = "skindistilvit-ti6-e6-{}.{}"
    return tflite / name.format("fp32", "tflite"), tflite / name.format("dynamic", "tflite"), onnx / name.format("fp32", "onnx")


def table(results: list[Result]) -> str:
    entries = sorted({r.entry for r in results})
    head = f"{'entry point':<18} {'cases':>5} {'runs':>5} " + " ".join(f"{o:>13}" for o in OUTCOMES)
    lines = [head, "-" * len(head)]
    for entry in [*entries, "all"]:
        mine = [r for r in results if entry in ("all", r.entry)]
        counts = " ".join(f"{sum(r.outcome == o for r in mine):>13}" for o in OUTCOMES)
        lines.append(f"{entry:<18} {len({r.case for r in mine}):>5} {len(mine):>5} {counts}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", action="append", default=None, help="failure class to run (1-12 or holds; repeatable)")
    p.add_argument("--case", default=None, help="only cases whose name contains this")
    p.add_argument("--json", type=Path, default=None, help="write every result here")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per run (default 120; some cases set less)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (default 2)")
    p.add_argument("--cache", type=Path, default=REPO / ".cache" / "hostile", help="where the demo model is converted once")
    p.add_argument("--corpus", type=Path, default=None, help="where the corpus is written (default: a temporary folder)")
    args = p.parse_args(argv)
    fp32, dynamic, onnx = demo_models(args.cache)
    with tempfile.TemporaryDirectory(prefix="hostile-corpus-") as tmp:
        corpus = args.corpus or Path(tmp) / "corpus"
        began = time.monotonic()
        cases = build(corpus, tflite=dynamic, onnx=onnx)
        print(f"corpus: {len(cases)} cases in {corpus} ({time.monotonic() - began:.1f} s)", file=sys.stderr, flush=True)
        cases = [c for c in cases if (not args.only or c.klass in args.only) and (not args.case or args.case in c.name)]
        runs = [(c, e) for c in cases for e in c.entries]
        marker = payload_marker(corpus)

        def one(job):
            case, entry = job
            result = run_case(case, entry, fp32, args.timeout, marker)
            if result.outcome != "ok":
                print(f"  {result.outcome}: {case.name} [{result.entry}] {result.detail}", file=sys.stderr, flush=True)
            return result

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            results = list(pool.map(one, runs))
    print(table(results))
    bad = [r for r in results if r.outcome != "ok"]
    if bad:
        print(f"\n{len(bad)} runs not ok:")
        for r in bad:
            print(f"[{r.klass}] {r.case} [{r.entry}] {r.outcome}: {r.detail}\n      stderr: {r.first_stderr[:200]}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1, ensure_ascii=False) + "\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
