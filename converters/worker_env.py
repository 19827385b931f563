"""Environments edgeskin cannot share its own with, and the worker scripts it runs there.

Two converter tools pin libraries the main environment has newer majors of (numpy 1, protobuf 4):
onnx2tf (the second TFLite route) and MediaPipe 0.10.21 (the TFLite metadata writer). Each lives
in its own virtual environment; edgeskin runs a worker script there as a subprocess, with its
output in a log and a failure reported as one line.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeskin.converters.quiet import log_tail
from edgeskin.runtime.errors import EdgeskinError

CHECKOUT = Path(__file__).resolve().parents[1]  # the repository root, in an editable install


@dataclass(frozen=True)
class WorkerEnvironment:
    variable: str  # an environment variable that names the environment's Python
    folder: str  # the default environment, in a checkout (`make ...` builds it)
    purpose: str  # what needs it, for the error: "--route onnx2tf"
    make_target: str
    requirement: str  # what a Python given instead must have

    def python(self) -> Path:
        """The environment's Python, or one line saying how to get one."""
        given = os.environ.get(self.variable)
        python = Path(given) if given else CHECKOUT / self.folder / "bin" / "python"
        if not python.is_file():
            where = f"{self.variable}={given} does not exist" if given else f"no environment at {CHECKOUT / self.folder}"
            raise EdgeskinError(f"{self.purpose}: {where}; build it with `make {self.make_target}` in an edgeskin checkout, "
                                f"or point {self.variable} at a Python with {self.requirement}")
        return python

    def run(self, worker: Path, job_file: Path, log: Path, what: str, env: dict | None = None) -> None:
        """`python -I WORKER JOB` in that environment, output appended to `log`; raises one line on failure."""
        python, job_file = self.python(), job_file.resolve()  # the worker runs in the job's folder
        variables = dict(os.environ, PATH=f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {}))
        with open(log, "ab") as out:
            # -I: the worker's folder (converters/, whose onnx.py would shadow the onnx package) stays off sys.path
            done = subprocess.run([str(python), "-I", str(worker), str(job_file)], stdout=out, stderr=subprocess.STDOUT,
                                  env=variables, cwd=job_file.parent)
        if done.returncode != 0:
            raise EdgeskinError(f"{what} failed: {log_tail(log)} (log: {log})")
