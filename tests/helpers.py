"""Running the `edgeskin` command as a user does, and checking its one-line errors.

`run_cli` calls the CLI's entry function in this process (no 6-9 s interpreter + torch start per
call); `run_console` starts the installed console script, for the tests that are about the script
itself (exit codes seen by a shell, signals, a relative --out from another folder).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def run_cli(*args, cwd=None, timeout=None) -> subprocess.CompletedProcess:
    """`edgeskin ARGS` in-process: its exit code, stdout and stderr, as subprocess.run would give them."""
    from edgeskin.cli import main

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}  # convert installs its own
    previous = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
    finally:
        os.chdir(previous)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return subprocess.CompletedProcess(["edgeskin", *argv], code, out.getvalue(), err.getvalue())


def run_console(*args, cwd=None, timeout=600, env=None) -> subprocess.CompletedProcess:
    """The installed `edgeskin` console script in a fresh process, as a shell runs it."""
    return subprocess.run([str(BIN / "edgeskin"), *map(str, args)], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=env)


def assert_one_line_error(done, *fragments):
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("edgeskin: error:"), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def has_real_data(real_data_dir) -> bool:
    """Whether the larger real set (../shared or $EDGESKIN_DATA) is here, not only the bundled one."""
    from edgeskin.image_sources import BUNDLED_IMAGES

    return Path(real_data_dir).resolve() != BUNDLED_IMAGES.resolve()
