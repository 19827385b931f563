"""Any torch.nn.Module classifier through the Python API: the stated contract (normalized RGB
(N, 3, H, W) in, logits out), the probe's checks, an ONNX conversion with its verdict, and the
divergence analysis of a model without transformer blocks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import edgeskin
from edgeskin.evaluate import predict_logits
from edgeskin.models import ISIC_CLASSES
from tests.conftest import DEMO_STUDENT

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TinyNet(nn.Module):
    """A small conv net, nothing like a ViT: no CLS token, no blocks, BatchNorm in eval mode."""

    def __init__(self, classes: int = len(ISIC_CLASSES)) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.features(x))


class FlatNet(nn.Module):
    """Takes one input size only (a Linear on the flattened image); returns (logits, features)."""

    def __init__(self, size: int, classes: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(3 * size * size, classes)

    def forward(self, x):
        return self.fc(x.flatten(1)), x


class OutputNet(nn.Module):
    """TinyNet's logits inside what transformers' classifiers return (ModelOutput: `.logits`)."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()

    def forward(self, x):
        from transformers.modeling_outputs import ImageClassifierOutput

        return ImageClassifierOutput(logits=self.inner(x))


def tiny_net(seed: int = 0) -> TinyNet:
    torch.manual_seed(seed)
    model = TinyNet()
    with torch.no_grad():  # BatchNorm statistics other than 0/1, so that a missed eval() would show
        model.features[1].running_mean.uniform_(-0.2, 0.2)
        model.features[1].running_var.uniform_(0.5, 2.0)
    return model.eval()


def _normalized(pixels: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def test_reference_logits_are_the_module_own_forward(sample_pixels):
    from edgeskin.module_import import state_digest

    module = tiny_net()
    loaded = edgeskin.load_model(module, classes=ISIC_CLASSES, mean=MEAN, std=STD)
    assert loaded.config.arch == "module-TinyNet" and loaded.config.exit_blocks == (1,) and loaded.source_format == "module"
    assert loaded.config.preprocess.size == loaded.config.img_size == 224
    assert loaded.source_sha256 == state_digest(module.state_dict())  # identity: the weights, not the object
    ours = predict_logits(loaded.model, sample_pixels)
    with torch.no_grad():
        theirs = module(_normalized(sample_pixels)).numpy()
    assert theirs.std(axis=0).mean() > 1e-3  # logits that differ between images
    np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)
    with pytest.raises(edgeskin.EdgeskinError, match=r"module-TinyNet has one exit, its output \(exit 1\); exit 2 asked"):
        loaded.model(torch.zeros(1, 3, 224, 224), exit=2)


def test_a_generic_module_needs_its_contract_stated():
    with pytest.raises(edgeskin.EdgeskinError, match=r"^<in-memory TinyNet>: a generic module carries no class names or "
                                                     r"normalization: pass classes=, mean=, std= \(it is fed RGB"):
        edgeskin.load_model(tiny_net())
    with pytest.raises(edgeskin.EdgeskinError, match=r"pass std= \("):
        edgeskin.load_model(tiny_net(), classes=ISIC_CLASSES, mean=MEAN)


@pytest.mark.parametrize("module", [tiny_net(), OutputNet().eval()], ids=["tensor", "ModelOutput"])
def test_stated_classes_are_checked_against_a_forward_pass(module):
    name = type(module).__name__
    with pytest.raises(edgeskin.EdgeskinError, match=rf"^<in-memory {name}>: classes= names 3 classes but the module returns 8 logits$"):
        edgeskin.load_model(module, classes=("a", "b", "c"), mean=MEAN, std=STD)


def test_an_output_that_is_not_logits_is_refused():
    with pytest.raises(edgeskin.EdgeskinError, match=r"^<in-memory Sequential>: forward returned shape \(1, 8, 55, 55\), not logits"):
        edgeskin.load_model(nn.Sequential(nn.Conv2d(3, 8, 5, stride=4)), classes="a,b", mean=0.5, std=0.5)


def test_input_size_reaches_the_probe_and_the_preprocessing(sample_pixels):
    module = FlatNet(32).eval()
    with pytest.raises(edgeskin.EdgeskinError, match=r"forward on a normalized \(1, 3, 224, 224\) float tensor failed "
                                                     r"\(RuntimeError: .*\); pass input_size= if"):
        edgeskin.load_model(module, classes="a,b,c", mean=0.5, std=0.5)
    loaded = edgeskin.load_model(module, classes="a,b,c", mean=0.5, std=0.5, input_size=32)  # tuple output: first element
    assert loaded.config.preprocess.size == loaded.config.img_size == 32
    small = np.stack([np.asarray(Image.fromarray(p).resize((32, 32))) for p in sample_pixels[:2]])
    with torch.no_grad():
        expected = module((torch.from_numpy(small).permute(0, 3, 1, 2).float() / 255 - 0.5) / 0.5)[0].numpy()
    np.testing.assert_allclose(predict_logits(loaded.model, small), expected, atol=1e-5, rtol=0)
    with pytest.raises(edgeskin.EdgeskinError, match=r"input_size=32, but the model takes 224x224 images"):
        edgeskin.load_model(edgeskin.load_model(DEMO_STUDENT).model, input_size=32)  # a SkinViT: its size is a fact


def test_onnx_conversion_passes_and_divergence_says_there_are_no_blocks(tmp_path, bundled_dir):
    module = tiny_net(seed=1)
    result = edgeskin.convert(module, target="onnx", out=tmp_path / "out", classes=ISIC_CLASSES, mean=MEAN, std=STD,
                              data=bundled_dir)
    (artifact,) = result.artifacts
    assert result.passed and artifact.path.name == "module-TinyNet-e1-fp32.onnx"
    assert artifact.parity.agreement == 1.0 and artifact.parity.max_abs_logit_diff < 1e-4
    assert result.manifest.source_checkpoint.format == "module"
    run = edgeskin.verify(result, data=bundled_dir, split="val", explain=True)
    divergence = run.checks[0].divergence
    assert [s.name for s in divergence.stages] == ["logits"] and divergence.stages[0].error < 1e-4
    assert divergence.explanation.startswith("no transformer blocks to compare (module-TinyNet is a generic module), logits only")


def test_tflite_through_the_default_route_passes(tmp_path, bundled_dir, sample_pixels):
    module = tiny_net(seed=2)
    result = edgeskin.convert(module, target="tflite", recipes="fp32", out=tmp_path / "out", classes=ISIC_CLASSES, mean=MEAN,
                              std=STD, data=bundled_dir)
    (artifact,) = result.artifacts
    assert result.passed and artifact.parity.max_abs_logit_diff < 1e-4
    ours = np.stack([edgeskin.load(artifact.path).predict_pixels(p).logits for p in sample_pixels[:4]])
    with torch.no_grad():
        np.testing.assert_allclose(ours, module(_normalized(sample_pixels[:4])).numpy(), atol=1e-4, rtol=0)


def test_core_ml_takes_the_stated_input_size(tmp_path, bundled_dir):
    """The package's image input is the model's size, not a fixed 224 (which a conv net with
    global pooling would even accept, silently fed other pixels than the verdict's)."""
    result = edgeskin.convert(tiny_net(), target="coreml", recipes="fp32", out=tmp_path / "out", classes=ISIC_CLASSES,
                              mean=MEAN, std=STD, data=bundled_dir, input_size=160)
    (artifact,) = result.artifacts
    assert result.passed and tuple(result.manifest.artifacts[0].input["shape"]) == (1, 3, 160, 160)
    assert edgeskin.load(artifact.path).predict(bundled_dir / "images" / "ISIC_0000002.jpg")[0].label in ISIC_CLASSES
