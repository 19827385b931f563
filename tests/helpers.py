"""Running the `edgeskin` command as a user does, and checking its one-line errors."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "edgeskin.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeskin: error:"), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def has_real_data(real_data_dir) -> bool:
    return real_data_dir.name != "samples"
