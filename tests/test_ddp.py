"""Training under torchrun: two CPU processes, gloo backend, identical weights at the end."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import torch

from edgeskin.checkpoint import read_safetensors


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_gloo_training_keeps_ranks_in_sync(tmp_path, bundled_dir):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "--master_addr=127.0.0.1", "-m", "edgeskin.cli", "train", "--arch", "skindistilvit-ti1",
           "--data", str(bundled_dir), "--train-split", "val", "--val-split", "val", "--batch-size", "8",
           "--max-steps", "3", "--lr", "1e-3", "--threads", "1", "--out", str(tmp_path), "--dump-rank-weights"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, _ = read_safetensors(tmp_path / "rank0.safetensors")
    rank1, _ = read_safetensors(tmp_path / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), f"ranks diverged at {key}"
    # the ranks saw different halves of each batch: equal weights mean gradients were all-reduced
    best, _ = read_safetensors(tmp_path / "best.safetensors")
    assert torch.equal(best["vit.head.weight"], rank0["vit.head.weight"])
