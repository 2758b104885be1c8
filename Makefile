# The project's commands. `make run` and `make test` set up everything they need first.

SHELL := /bin/bash
# Python 3.13, as Azure runs the app: python3.13 on the PATH, else pyenv's (PYTHON=... overrides).
PYTHON ?= $(shell for python in python3.13 $${PYENV_ROOT:-$$HOME/.pyenv}/versions/3.13*/bin/python3.13; do \
	"$$python" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null && { echo "$$python"; break; }; done)
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= localhost
PORT ?= 7071
AZURITE_PORT ?= 10000
MODEL_OUT ?= build/model
MNIST_PATH ?= ../shared/data/mnist.npz
export MNIST_PATH

.PHONY: setup run test lint format train bundle-model benchmark soak clean

RPC_PROTOS := third_party/azure-functions-rpc
RPC_MESSAGES := local_host/rpc/FunctionRpc_pb2.py

setup: $(VENV)/.installed node_modules/.installed $(RPC_MESSAGES)

# Re-installs only when a requirements file changes; a venv of another Python is made anew.
$(VENV)/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed: put python3.13 on the PATH, install it with pyenv (pyenv install 3.13), or set PYTHON=/path/to/python3.13" >&2; exit 1; }
	$(BIN)/python -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null || { rm -rf $(VENV); $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# Azurite (the storage emulator) for `make run` and the tests.
node_modules/.installed: package.json package-lock.json
	tools/system-packages.sh node npm
	npm ci --no-audit --no-fund
	touch $@

# The Functions protocol's messages, which the local host hands to azure-functions-runtime, compiled
# from the .proto files the project carries; their imports made relative to their package.
$(RPC_MESSAGES): $(VENV)/.installed $(shell find $(RPC_PROTOS) -name '*.proto')
	cd $(RPC_PROTOS) && $(abspath $(BIN))/python -m grpc_tools.protoc -I. --python_out=$(abspath local_host/rpc) \
	    FunctionRpc.proto identity/ClaimsIdentityRpc.proto shared/NullableTypes.proto
	sed -i -E 's/^from (identity|shared) import/from .\1 import/' local_host/rpc/FunctionRpc_pb2.py
	sed -i -E 's/^from shared import/from ..shared import/' local_host/rpc/identity/ClaimsIdentityRpc_pb2.py

# Azurite, the local host (API, site, blob trigger, timer) and the Event Grid stand-in.
run: setup
	$(BIN)/python -m local_stack --host $(HOST) --port $(PORT) --azurite-port $(AZURITE_PORT)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	tools/system-packages.sh chromium
	$(BIN)/pytest
	node --test tests/js/

# Train -> convert -> verify -> evaluate into $(MODEL_OUT) (about 22 minutes on 2 cores).
train: setup
	$(BIN)/python -m conversion.pipeline --data $(MNIST_PATH) --out $(MODEL_OUT)

# Make the model in $(MODEL_OUT) the one the app ships and serves by default.
bundle-model:
	cp $(MODEL_OUT)/model.onnx $(MODEL_OUT)/report.json $(MODEL_OUT)/MODEL_CARD.md \
	   $(MODEL_OUT)/confusion_matrix.png functions/model/

# The serving benchmark (docs/benchmarks.md): handler latency vs Keras, batches, cold start
# through azure-functions-runtime, HTTP through the local host, predict through the runtime, the
# handler and the bare session in process, async against the thread pool (about a minute), then
# what the largest accepted pictures cost to decode.
benchmark: setup build/runtime-venv/.installed
	$(BIN)/python -m benchmarks.serving --json build/benchmark.json \
	    --runtime-python build/runtime-venv/bin/python
	$(BIN)/python -m benchmarks.picture_decoding --json build/picture_decoding.json

# The cold start's interpreter: the deployed app's dependencies only (requirements.txt), plus the
# protobuf that Azure's proxy worker brings, for the compiled messages of local_host/rpc (pinned
# in requirements-dev.txt). A venv of another Python is made anew.
build/runtime-venv/.installed: requirements.txt requirements-dev.txt
	@test -n "$(PYTHON)" || { echo "Python 3.13 is needed (PYTHON=/path/to/python3.13)" >&2; exit 1; }
	build/runtime-venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null \
	    || { rm -rf build/runtime-venv; $(PYTHON) -m venv build/runtime-venv; }
	build/runtime-venv/bin/python -m pip install --quiet -r requirements.txt \
	    $$(grep -oE '^protobuf==[^ ]+' requirements-dev.txt)
	touch $@

# The soak (docs/benchmarks.md, Soak): hostile pictures and bodies, frozen storage and bad model
# drops against a stack of its own: Azurite, the local host and the Event Grid stand-in (about two
# and a half minutes). Not part of `make test`; it exits 1 when a figure misses its target.
soak: setup
	$(BIN)/python -m benchmarks.soak --json build/soak.json

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache test-artifacts
