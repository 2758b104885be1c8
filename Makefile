# The project's commands. `make run` and `make test` set up everything they need first.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= localhost
PORT ?= 7071
AZURITE_PORT ?= 10000
MODEL_OUT ?= build/model
MNIST_PATH ?= ../shared/data/mnist.npz
export MNIST_PATH

.PHONY: setup run test lint format train bundle-model benchmark soak clean

setup: $(VENV)/.installed node_modules/.installed

# Re-installs only when a requirements file changes.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# Azurite (the storage emulator) for `make run` and the tests.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Azurite, the local host (API, site, blob trigger, timer) and the Event Grid stand-in.
run: setup
	$(BIN)/python -m local_host.dev --host $(HOST) --port $(PORT) --azurite-port $(AZURITE_PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest
	node --test tests/js/

# Train -> convert -> verify -> evaluate into $(MODEL_OUT) (about 21 minutes on 2 cores).
train: setup
	$(BIN)/python -m conversion.pipeline --data $(MNIST_PATH) --out $(MODEL_OUT)

# Make the model in $(MODEL_OUT) the one the app ships and serves by default.
bundle-model:
	cp $(MODEL_OUT)/model.onnx $(MODEL_OUT)/report.json $(MODEL_OUT)/MODEL_CARD.md \
	   $(MODEL_OUT)/confusion_matrix.png functions/model/

# The serving benchmark: handler latency vs Keras, batches, cold start, HTTP, overhead against the
# bare session and HTTP against a lean FastAPI server (about six minutes),
# then what the largest accepted pictures cost to decode (docs/benchmarks.md).
# Cold start is measured with the deployed app's dependencies only (requirements.txt).
benchmark: setup build/runtime-venv/.installed
	$(BIN)/python -m benchmarks.serving --json build/benchmark.json \
	    --runtime-python build/runtime-venv/bin/python
	$(BIN)/python -m benchmarks.picture_decoding --json build/picture_decoding.json

build/runtime-venv/.installed: requirements.txt
	test -x build/runtime-venv/bin/python || $(PYTHON) -m venv build/runtime-venv
	build/runtime-venv/bin/python -m pip install --quiet -r requirements.txt
	touch $@

# The soak (docs/benchmarks.md, Soak): hostile pictures and bodies, frozen storage and bad model
# drops against a stack of its own (about five minutes). Not part of `make test`; it exits 1 when
# a figure misses its target.
soak: setup
	$(BIN)/python -m benchmarks.soak --json build/soak.json

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache test-artifacts
