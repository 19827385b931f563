# One entry point for users and CI. `make test` and `make demo` create .venv and install
# everything pinned (constraints.txt) on first use; later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# onnx2tf runs onnxsim as a subprocess: the venv's bin folder must be on PATH (DESIGN.md section 10)
export PATH := $(BIN):$(PATH)
PYTEST_ARGS ?=

.PHONY: install test test-slow lint demo clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[convert,dev]'
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

demo: $(STAMP)
	$(BIN)/edgeskin info edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors
	$(BIN)/edgeskin eval --checkpoint edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors --data edgeskin/assets/samples --split test

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
