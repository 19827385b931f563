"""What each TFLite recipe's description says is int8, int16 and float is what the file holds;
routes refuse what they cannot build; progress is never silent for long."""

from __future__ import annotations

import time

import pytest

from edgeskin.converters.litert_route import QUANTIZER_RECIPES
from edgeskin.converters.recipes import RECIPES, recipes_for
from edgeskin.converters.tflite import tensor_types
from edgeskin.progress import stage
from edgeskin.runtime import EdgeskinError
from tests.helpers import assert_one_line_error, run_cli

TFLITE_RECIPES = [name for name, recipe in RECIPES.items() if recipe.tflite is not None]


@pytest.mark.parametrize("recipe", TFLITE_RECIPES)
def test_file_tensor_types_match_the_recipe(converted, recipe):
    out, manifest, _, _ = converted
    art = next(a for a in manifest["artifacts"] if a["target"] == "tflite" and a["recipe"] == recipe)
    declared = RECIPES[recipe].tflite
    found = tensor_types((out / art["file"]).read_bytes())
    assert found.linear_weights == {declared.linear_weights}, found
    assert found.linear_activations == {declared.linear_activations}, found
    assert found.other_activations == {declared.other_activations}, found
    assert found.io == {declared.io}, found
    assert declared.describe() in art["description"]
    assert found.op_counts.get("FULLY_CONNECTED", 0) > 0 and found.op_counts.get("CONV_2D", 0) == 1
    for op in QUANTIZER_RECIPES[recipe].float_ops if recipe in QUANTIZER_RECIPES else ():
        assert found.input_types[op] == {"float32"}, (op, found.input_types[op])  # kept float inside an integer recipe


def test_every_tflite_recipe_is_in_the_demo_conversion(converted):
    """The parametrized test above must see every recipe the table declares."""
    _, manifest, _, _ = converted
    assert {a["recipe"] for a in manifest["artifacts"] if a["target"] == "tflite"} == set(TFLITE_RECIPES)


def test_routes_refuse_what_they_cannot_build():
    assert [r.name for r in recipes_for("tflite", "fp32,int8-mixed", "onnx2tf")["tflite"]] == ["fp32", "int8-mixed"]
    with pytest.raises(EdgeskinError, match="'w8a16' is not built by the onnx2tf route"):
        recipes_for("tflite", "w8a16", "onnx2tf")
    with pytest.raises(EdgeskinError, match="--route tvm: expected one of litert, onnx2tf"):
        recipes_for("tflite", "fp32", "tvm")


def test_onnx2tf_route_without_its_environment_says_how_to_build_it(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGESKIN_ONNX2TF_PYTHON", str(tmp_path / "nowhere" / "python"))
    done = run_cli("convert", "--route", "onnx2tf", "--recipes", "fp32", "--out", tmp_path / "o")
    assert_one_line_error(done, "make install-onnx2tf", "EDGESKIN_ONNX2TF_PYTHON")
    assert not (tmp_path / "o").exists()


class Lines(list):
    def __call__(self, message: str) -> None:
        self.append(message)


def test_a_stage_without_a_terminal_prints_a_line_at_least_every_heartbeat(monkeypatch):
    monkeypatch.setattr("edgeskin.progress.HEARTBEAT_SECONDS", 0.05)
    lines = Lines()
    with stage(lines, "calibrating on 4 images", total=4) as advance:
        for _ in range(4):
            time.sleep(0.06)
            advance(1)
    assert lines[0] == "calibrating on 4 images ..."
    assert any(line.startswith("calibrating on 4 images: 0 s, ") and line.endswith("/4") for line in lines[1:-1]), lines
    assert lines[-1].startswith("calibrating on 4 images: ") and lines[-1].endswith(" s")
    assert len(lines) >= 4


class Terminal(Lines):
    def __init__(self):
        super().__init__()
        import io

        self.stream = io.StringIO()

    def isatty(self) -> bool:
        return True


def test_a_stage_on_a_terminal_draws_a_bar_and_ends_with_its_time():
    terminal = Terminal()
    with stage(terminal, "calibrating on 3 images", total=3) as advance:
        for _ in range(3):
            advance(1)
        time.sleep(1.2)  # the stage redraws its bar every second, even when nothing advances
    drawn = terminal.stream.getvalue()
    assert "calibrating on 3 images" in drawn and "3/3" in drawn, drawn
    assert terminal[-1].startswith("calibrating on 3 images: ") and terminal[-1].endswith(" s")
