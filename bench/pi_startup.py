"""Start-up time of `edgeskin-pi`: a fresh process, from launch to its first result line.

For the demo fp32 and dynamic models and one bundled image, median over N runs of
  - baseline: a Python process that imports nothing (`python -c pass`);
  - imports: numpy + Pillow + the TFLite runtime + edgeskin.runtime.pi, nothing run;
  - edgeskin-pi: launch -> first JSON result line on stdout (decode, model load, one inference),
    and launch -> exit;
in two environments when available: the project venv (the `edgeskin-pi` console script) and a
clean torch-free one like a Pi's (the x86_64 wheels `make device-test` installs, run with -S).
Usage: python bench/pi_startup.py [--artifacts DIR] [--runs 10] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGE = REPO / "edgeskin" / "assets" / "isic-cc0" / "images" / "ISIC_0000002.jpg"
CANDIDATES = [REPO / "dist" / "skindistilvit-ti6", REPO / ".cache" / "device-test" / "artifacts", Path("/tmp/pi-artifacts")]
CLEAN_SITE = REPO / ".cache" / "device-test" / "site-litert-x86_64"
CLEAN_SRC = REPO / ".cache" / "device-test" / "src"
IMPORTS = "import numpy, PIL.Image, ai_edge_litert.interpreter, edgeskin.runtime.pi"


def first_line_seconds(command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    """(seconds to the first stdout line, seconds to exit) of a fresh process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd)
    line = process.stdout.readline()
    first = time.perf_counter() - start
    process.stdout.read()
    code = process.wait()
    if code != 0 or not line.startswith("{"):
        raise SystemExit(f"{' '.join(command)} failed (exit {code}): {line!r}")
    json.loads(line)
    return first, time.perf_counter() - start


def median_of(runs: int, command: list[str], env: dict, cwd: Path) -> tuple[float, float]:
    first_line_seconds(command, env, cwd)  # warm the page cache once
    samples = [first_line_seconds(command, env, cwd) for _ in range(runs)]
    return statistics.median(s[0] for s in samples), statistics.median(s[1] for s in samples)


def plain_seconds(runs: int, command: list[str], env: dict, cwd: Path) -> float:
    subprocess.run(command, env=env, cwd=cwd, check=True)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def environments() -> list[tuple[str, list[str], list[str], dict, Path]]:
    """(name, python command, edgeskin-pi command, env, working folder)."""
    found = [("project venv", [sys.executable], [str(Path(sys.executable).with_name("edgeskin-pi"))], dict(os.environ), REPO)]
    if (CLEAN_SITE / ".requirements").is_file() and CLEAN_SRC.is_dir():
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env["PYTHONPATH"] = f"{CLEAN_SRC}{os.pathsep}{CLEAN_SITE}"
        python = [sys.executable, "-S"]
        found.append(("clean (numpy, Pillow, ai-edge-litert)", python, [*python, "-m", "edgeskin.runtime.pi"], env, CLEAN_SRC.parent))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", type=Path, default=None, help="folder with the demo .tflite files (default: dist/skindistilvit-ti6, "
                        "then .cache/device-test/artifacts)")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--threads", default="2")
    args = parser.parse_args()
    folder = args.artifacts or next((c for c in CANDIDATES if (c / "skindistilvit-ti6-e6-fp32.tflite").is_file()), None)
    if folder is None:
        raise SystemExit("no demo artifacts: run `make demo` (or pass --artifacts DIR)")
    models = [folder / f"skindistilvit-ti6-e6-{recipe}.tflite" for recipe in ("fp32", "dynamic")]
    print(f"edgeskin-pi start-up, median of {args.runs} fresh processes; {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {args.threads} threads, image {IMAGE.name}")
    print(f"{'environment':<40} {'what':<36} {'to first result s':>18} {'to exit s':>10}")
    for name, python, pi, env, cwd in environments():
        print(f"{name:<40} {'baseline: python -c pass':<36} {plain_seconds(args.runs, [*python, '-c', 'pass'], env, cwd):>18.3f}")
        imports = plain_seconds(args.runs, [*python, "-c", IMPORTS], env, cwd)
        print(f"{name:<40} {'imports only (numpy, PIL, litert, pi)':<36} {imports:>18.3f}")
        for model in models:
            first, total = median_of(args.runs, [*pi, str(model), str(IMAGE), "--json", "--threads", args.threads], env, cwd)
            print(f"{name:<40} {'edgeskin-pi ' + model.stem.split('-e6-')[-1]:<36} {first:>18.3f} {total:>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
