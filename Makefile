# One entry point for users and CI. `make test` and `make demo` create .venv and install
# everything pinned (constraints.txt) on first use; later runs reuse it.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
# The onnx2tf route's own environment (numpy 1, TensorFlow): `make install-onnx2tf`; edgeskin runs
# onnx2tf there as a subprocess (converters/onnx2tf_route.py)
ONNX2TF_VENV := .venv-onnx2tf
ONNX2TF_STAMP := $(ONNX2TF_VENV)/.installed
# The TFLite metadata writer's environment (MediaPipe 0.10.21, protobuf 4): every .tflite gets its
# standard metadata there, as a subprocess (converters/tflite_metadata.py). Part of `make install`.
MEDIAPIPE_VENV := .venv-mediapipe
TIMMX_VENV := .venv-timmx
TIMMX_STAMP := $(TIMMX_VENV)/.installed
MEDIAPIPE_STAMP := $(MEDIAPIPE_VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install install-onnx2tf install-timmx bench-peers test test-slow test-onnx2tf lint wheel demo demo-model device-test clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[convert,dev]'
	# startup hook: `import timm` / `import transformers` work with the CPU torch (edgeskin/_timm_shim.py)
	$(BIN)/python -m edgeskin._timm_shim
	touch $(STAMP)

$(MEDIAPIPE_STAMP): constraints-mediapipe.txt
	$(PYTHON) -m venv $(MEDIAPIPE_VENV)
	$(MEDIAPIPE_VENV)/bin/pip install --quiet -c constraints-mediapipe.txt mediapipe
	touch $(MEDIAPIPE_STAMP)

install: $(STAMP) $(MEDIAPIPE_STAMP)

$(ONNX2TF_STAMP): constraints-onnx2tf.txt
	$(PYTHON) -m venv $(ONNX2TF_VENV)
	$(ONNX2TF_VENV)/bin/pip install --quiet -c constraints-onnx2tf.txt onnx2tf tensorflow tf-keras onnx onnxruntime \
		onnxsim onnx-graphsurgeon sng4onnx simple-onnx-processing-tools ai-edge-litert protobuf psutil h5py opencv-python Pillow
	touch $(ONNX2TF_STAMP)

install-onnx2tf: $(ONNX2TF_STAMP)

# timmx, the peer bench/peers.py compares with, in its own environment: `make install-timmx`
$(TIMMX_STAMP): constraints-timmx.txt
	$(PYTHON) -m venv $(TIMMX_VENV)
	$(TIMMX_VENV)/bin/pip install --quiet torch==2.13.0
	$(TIMMX_VENV)/bin/pip install --quiet -c constraints-timmx.txt 'timmx[onnx,litert,coreml]'
	# the same torchvision startup hook as the main environment's, standalone (no edgeskin there)
	$(TIMMX_VENV)/bin/python edgeskin/_timm_shim.py --standalone
	touch $(TIMMX_STAMP)

install-timmx: $(TIMMX_STAMP)

# edgeskin and timmx side by side on the demo student (README: "Against a peer")
bench-peers: $(STAMP) $(MEDIAPIPE_STAMP) $(TIMMX_STAMP)
	$(BIN)/python bench/peers.py

test: $(STAMP) $(MEDIAPIPE_STAMP)
	$(BIN)/python -m pytest -m "not slow and not onnx2tf" $(PYTEST_ARGS)

test-slow: $(STAMP) $(MEDIAPIPE_STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# the onnx2tf route end to end (needs its environment, which this target builds)
test-onnx2tf: $(STAMP) $(ONNX2TF_STAMP) $(MEDIAPIPE_STAMP)
	$(BIN)/python -m pytest -m onnx2tf $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

# The one installable file, for a Pi or any machine without this checkout (README, "Raspberry Pi"):
# pure Python, with the package data `edgeskin convert` and the tests read (demo weights, CC0 images).
# Always rebuilt (seconds), from a clean slate: setuptools would package stale copies left in build/,
# and files an old *.egg-info/SOURCES.txt lists.
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
WHEEL := dist/edgeskin-$(VERSION)-py3-none-any.whl
wheel: $(STAMP)
	rm -rf build *.egg-info $(WHEEL)
	$(BIN)/pip wheel --quiet --no-deps -w dist .
	rm -rf build *.egg-info
	@$(BIN)/python -c "import os, sys; print(f'{sys.argv[1]}: {os.path.getsize(sys.argv[1]) / 1e6:.1f} MB')" $(WHEEL)

# edgeskin-pi on emulated Raspberry Pi CPUs (qemu cortex-a76 and cortex-a72) vs this x86 host, every recipe
# (scripts/device_test.py). First use builds an arm64 bookworm userland, the aarch64 wheels and the demo
# artifacts under .cache/device-test/ (apt-installs mmdebstrap and qemu-user-static when missing).
# edgeskin runs from the wheel above, installed into the emulated Pi's (and x86's) site folders.
DEVICE_TEST_ARGS ?=
device-test: wheel $(MEDIAPIPE_STAMP)
	$(BIN)/python scripts/device_test.py --wheel $(WHEEL) $(DEVICE_TEST_ARGS)

demo: $(STAMP) $(MEDIAPIPE_STAMP)
	$(BIN)/edgeskin info edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors
	$(BIN)/edgeskin convert --target tflite --recipes fp32,fp16,dynamic,int8-mixed --out dist/skindistilvit-ti6 --force
	$(BIN)/edgeskin predict dist/skindistilvit-ti6/skindistilvit-ti6-e6-int8-mixed.tflite edgeskin/assets/isic-cc0/images/ISIC_0000002.jpg edgeskin/assets/isic-cc0/images/ISIC_0000015.jpg
	$(BIN)/edgeskin parity dist/skindistilvit-ti6 --reference edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors --split test

# Reproduces the bundled demo weights from ../shared/data/isic-public (teacher, single-exit student,
# multi-exit student; about 45 + 25 + 30 minutes on 2 CPU cores); the command lines are also in the
# model cards (edgeskin/assets/demo/MODEL_CARD.md, MODEL_CARD-exits.md).
DATA ?= ../shared/data/isic-public
TRAIN_FLAGS := --data $(DATA) --batch-size 64 --lr 5e-4 --warmup-epochs 2 --class-weights balanced --precision bf16 --seed 42
demo-model: $(STAMP) $(MEDIAPIPE_STAMP)
	$(BIN)/edgeskin train --arch skindistilvit-ti12 --out runs/teacher-ti12 --epochs 25 $(TRAIN_FLAGS)
	$(BIN)/edgeskin distill --teacher runs/teacher-ti12/best.safetensors --blocks first6 --out runs/student-ti6 --epochs 20 $(TRAIN_FLAGS)
	$(BIN)/python scripts/bundle_demo.py --data $(DATA)
	$(BIN)/edgeskin eval --checkpoint edgeskin/assets/demo/skindistilvit-ti6-demo.safetensors --data $(DATA) --split test
	# the multi-exit student (anytime inference): a head after every block, each distilled from the same teacher
	$(BIN)/edgeskin distill --teacher runs/teacher-ti12/best.safetensors --blocks first6 --every-exit --out runs/student-ti6-exits --epochs 30 $(TRAIN_FLAGS)
	$(BIN)/python scripts/bundle_demo.py --data $(DATA) --student runs/student-ti6-exits/best.safetensors --out edgeskin/assets/demo/skindistilvit-ti6-exits-demo.safetensors
	$(BIN)/edgeskin eval --checkpoint edgeskin/assets/demo/skindistilvit-ti6-exits-demo.safetensors --data $(DATA) --split test --all-exits

clean:
	rm -rf $(VENV) $(ONNX2TF_VENV) $(MEDIAPIPE_VENV) .pytest_cache .ruff_cache *.egg-info
