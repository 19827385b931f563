"""Training under torchrun: two CPU processes, gloo backend, identical weights at the end."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from edgeskin.checkpoint import PROVENANCE_KEY, read_safetensors, save_checkpoint
from edgeskin.train import weights_digest
from tests.conftest import perturbed_model


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_rank_gloo_training_keeps_ranks_in_sync(tmp_path, bundled_dir):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={_free_port()}",
           "--master_addr=127.0.0.1", "-m", "edgeskin.cli", "train", "--arch", "skindistilvit-ti1",
           "--data", str(bundled_dir), "--train-split", "val", "--val-split", "val", "--batch-size", "8",
           "--max-steps", "3", "--lr", "1e-3", "--threads", "1", "--out", str(tmp_path)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    # every saved checkpoint records the digest of each rank's weights at that moment
    state, meta = read_safetensors(tmp_path / "last.safetensors")
    digests = json.loads(meta[PROVENANCE_KEY])["rank_weights_sha256"]
    # the ranks saw different halves of each batch: equal weights mean gradients were all-reduced
    assert len(digests) == 2 and digests[0] == digests[1], digests
    assert weights_digest(state) == digests[0]  # and the file holds exactly those weights


def test_weights_digest_tells_identical_weights_from_different_ones(tmp_path):
    model = perturbed_model("skindistilvit-ti1")
    saved, _ = read_safetensors(save_checkpoint(model, tmp_path / "m.safetensors"))
    assert weights_digest(saved) == weights_digest(model.state_dict())
    with torch.no_grad():
        model.vit.head.weight[0, 0] += 0.5
    assert weights_digest(saved) != weights_digest(model.state_dict())
