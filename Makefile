# One entry point for users and CI. `make test` and `make demo` create .venv and install
# everything pinned (constraints.txt) on first use; later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# onnx2tf runs onnxsim as a subprocess: the venv's bin folder must be on PATH (DESIGN.md section 10)
export PATH := $(BIN):$(PATH)
PYTEST_ARGS ?=

.PHONY: install test test-slow lint demo demo-model device-test clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[convert,dev]'
	# startup hook: `import timm` / `import transformers` work with the CPU torch (edgeskin/_timm_shim.py)
	$(BIN)/python -m edgeskin._timm_shim
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# edgeskin-pi on emulated Raspberry Pi CPUs (qemu cortex-a76 and cortex-a72) vs this x86 host, every recipe
# (scripts/device_test.py). First use builds an arm64 bookworm userland, the aarch64 wheels and the demo
# artifacts under .cache/device-test/ (apt-installs mmdebstrap and qemu-user-static when missing).
DEVICE_TEST_ARGS ?=
device-test: $(STAMP)
	$(BIN)/python scripts/device_test.py $(DEVICE_TEST_ARGS)

demo: $(STAMP)
	$(BIN)/edgeskin info edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors
	$(BIN)/edgeskin convert --target tflite --recipes fp32,fp16,dynamic,int8-mixed --out dist/skindistilvit-ti6 --force
	$(BIN)/edgeskin predict dist/skindistilvit-ti6/skindistilvit-ti6-e6-int8-mixed.tflite edgeskin/assets/isic-cc0/images/ISIC_0000002.jpg edgeskin/assets/isic-cc0/images/ISIC_0000015.jpg
	$(BIN)/edgeskin parity dist/skindistilvit-ti6 --reference edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors --split test

# Reproduces the bundled demo weights from ../shared/data/isic-public (about 45 + 25 minutes on
# 2 CPU cores); the exact command lines are also in edgeskin/assets/demo/MODEL_CARD.md.
DATA ?= ../shared/data/isic-public
TRAIN_FLAGS := --data $(DATA) --batch-size 64 --lr 5e-4 --warmup-epochs 2 --class-weights balanced --precision bf16 --seed 42
demo-model: $(STAMP)
	$(BIN)/edgeskin train --arch skindistilvit-ti12 --out runs/teacher-ti12 --epochs 25 $(TRAIN_FLAGS)
	$(BIN)/edgeskin distill --teacher runs/teacher-ti12/best.safetensors --blocks first6 --out runs/student-ti6 --epochs 20 $(TRAIN_FLAGS)
	$(BIN)/python scripts/bundle_demo.py --data $(DATA)
	$(BIN)/edgeskin eval --checkpoint edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors --data $(DATA) --split test

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
