"""The parity suite's shared run: `edgeskin parity` once per session on every converted artifact."""

from __future__ import annotations

import json

import pytest

from tests.conftest import DEMO_STUDENT
from tests.helpers import run_cli


@pytest.fixture(scope="session")
def test_split_size(real_data_dir) -> int:
    """194 in ../shared, 49 in the bundled set."""
    from edgeskin.data import open_dataset

    return len(open_dataset(real_data_dir, "test"))


@pytest.fixture(scope="session")
def parity_report(converted, real_data_dir, tmp_path_factory):
    """(report folder, report.json, exit code, stdout) of `edgeskin parity DIST --split test --explain`."""
    out_dir, _, _, _ = converted
    report = tmp_path_factory.mktemp("parity") / "report"
    done = run_cli("parity", out_dir, "--reference", DEMO_STUDENT, "--data", real_data_dir, "--split", "test",
                   "--out", report, "--explain", "--runs", "5", "--threads", "1")
    assert (report / "report.json").is_file(), done.stderr
    return report, json.loads((report / "report.json").read_text()), done.returncode, done.stdout
