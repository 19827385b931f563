"""The wheel `make wheel` builds is what a Pi installs (README, "Raspberry Pi"): it must hold every
module of the three source folders pyproject maps into edgeskin, and the package data the commands
read (demo weights and model card, CC0 images), and nothing else (no tests, no caches)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# pyproject's package-dir: checkout folder -> folder in the wheel
FOLDERS = {"edgeskin": "edgeskin", "runtime": "edgeskin/runtime", "converters": "edgeskin/converters"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    """Built from a copy of the checkout's files (tracked or not ignored), so no build/ or
    *.egg-info here is read or written while others work in the same checkout."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    source = tmp_path_factory.mktemp("source")
    for name in filter(None, listed):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    # the venv's setuptools (bdist_wheel built in): no index needed, seconds
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = out.glob("edgeskin-*-py3-none-any.whl")
    return zipfile.ZipFile(built)


CHECKOUT_ONLY = "skindistilvit-ti6-exits-demo.safetensors"


def test_every_module_and_asset_is_in_the_wheel(wheel):
    names = set(wheel.namelist())
    expected = {
        f"{inside}/{path.relative_to(REPO / folder).as_posix()}"
        for folder, inside in FOLDERS.items()
        for path in (REPO / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc"
        and (path.suffix == ".py" or folder == "edgeskin" and path.is_relative_to(REPO / "edgeskin" / "assets"))
        and path.name != CHECKOUT_ONLY
    }
    assert {"edgeskin/runtime/pi.py", "edgeskin/assets/demo/MODEL_CARD.md",
            "edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors", "edgeskin/assets/isic-cc0/labels.csv"} <= expected
    assert sorted(expected - names) == []
    assert f"edgeskin/assets/demo/{CHECKOUT_ONLY}" not in names  # the multi-exit demo: nothing installed reads it


def test_nothing_else_is_in_the_wheel(wheel):
    names = wheel.namelist()
    assert {name.split("/")[0] for name in names} == {"edgeskin", "edgeskin-" + wheel_version(wheel) + ".dist-info"}
    assert [n for n in names if "__pycache__" in n or n.endswith(".pyc") or "/tests/" in n or ".cache" in n] == []


def test_the_console_scripts_are_declared(wheel):
    info = "edgeskin-" + wheel_version(wheel) + ".dist-info"
    entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    assert "edgeskin-pi = edgeskin.runtime.pi:main" in entry_points
    assert "edgeskin = edgeskin.cli:main" in entry_points
    assert "Provides-Extra: pi" in wheel.read(f"{info}/METADATA").decode()


def wheel_version(wheel: zipfile.ZipFile) -> str:
    return Path(wheel.filename).name.split("-")[1]
