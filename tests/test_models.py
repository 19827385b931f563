"""SkinViT registry, exits and the deployable wrapper."""

from __future__ import annotations

import pytest
import torch

from edgeskin.models import config_for, deployable
from edgeskin.runtime import EdgeskinError
from tests.conftest import perturbed_model


def test_registry_matches_the_paper_sizes():
    from edgeskin.models import build_model

    b6 = build_model(config_for("skindistilvit-b6"))
    params = sum(p.numel() for p in b6.parameters())
    assert abs(params / 1e6 - 43.3) < 0.1  # the paper's 6-block student: ~43.3M
    assert config_for("skindistilvit-b12").embed_dim == 768 and config_for("skindistilvit-b12").depth == 12
    ti = config_for("skindistilvit-ti12")
    assert (ti.embed_dim, ti.num_heads, ti.depth) == (192, 3, 12)
    assert config_for("skindistilvit-b12-exits").exit_blocks == tuple(range(1, 13))


def test_unknown_model_name_is_clear():
    with pytest.raises(EdgeskinError, match="unknown model 'vit-huge'"):
        config_for("vit-huge")


def test_exits_agree_with_early_forward():
    model = perturbed_model("skindistilvit-ti6-exits")
    x = torch.rand(2, 3, 224, 224) * 255
    every = model.forward_exits(x)
    assert sorted(every) == [1, 2, 3, 4, 5, 6]
    for block in (1, 4, 6):
        torch.testing.assert_close(model(x, exit=block), every[block])
    assert not torch.allclose(every[2], every[6])
    with pytest.raises(ValueError, match="no exit after block 7"):
        model(x, exit=7)


def test_deployable_normalizes_inside_and_outputs_probabilities():
    model = perturbed_model("skindistilvit-ti2")
    pixels = torch.randint(0, 256, (2, 3, 224, 224)).float()
    probs = deployable(model)(pixels)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2))
    # independent: normalize by hand with mean = std = 0.5 and call timm's ViT directly
    manual = torch.softmax(model.vit((pixels / 255 - 0.5) / 0.5), -1)
    torch.testing.assert_close(probs, manual, atol=1e-5, rtol=1e-4)
    probs2, logits = deployable(model, with_logits=True)(pixels)  # OUTPUT_ROLES: probabilities, then logits
    torch.testing.assert_close(torch.softmax(logits, -1), probs2)


def test_deployable_rejects_missing_exit():
    with pytest.raises(ValueError, match="no exit after block 1"):
        deployable(perturbed_model("skindistilvit-ti2"), exit=1)
