"""Shared fixtures: where the repository and the MNIST data are."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from local_host.worker import SCRIPT_MODULE
from tests.stack import REPO_ROOT, Azurite, running_azurite, running_local_host


def mnist_path() -> Path:
    """$MNIST_PATH, else the shared offline copy beside the repository."""
    return Path(os.environ.get("MNIST_PATH") or REPO_ROOT.parent / "shared" / "data" / "mnist.npz")


@pytest.fixture(scope="session")
def mnist() -> dict[str, np.ndarray]:
    path = mnist_path()
    if not path.is_file():
        pytest.fail(f"MNIST not found at {path}; set MNIST_PATH to a keras-format mnist.npz")
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


@pytest.fixture(scope="session")
def azurite_process(tmp_path_factory) -> Iterator[Azurite]:
    """A real Azurite blob service on a free loopback port, for the whole session."""
    with running_azurite(tmp_path_factory.mktemp("azurite")) as azurite:
        yield azurite


@pytest.fixture(scope="session")
def azurite(azurite_process: Azurite) -> str:
    """That Azurite's connection string."""
    return azurite_process.connection_string


@pytest.fixture(scope="session")
def base_url(azurite_process, tmp_path_factory):
    """The function app, with the site and the Event Grid stand-in, as `make run` serves them
    (`python -m local_stack`), on the session's Azurite."""
    azurite = azurite_process.connection_string
    environment = {
        **os.environ,
        "MODELS_STORAGE": azurite,
        "MODELS_CONTAINER": "models",
        # The API's fuzzing sends hundreds of corrections from one address: the rate limit
        # itself is tested in tests/api/test_feedback_api.py.
        "FEEDBACK_PER_MINUTE": "6000",
    }
    log_path = tmp_path_factory.mktemp("local-stack") / "stack.log"
    with running_local_host(environment, log_path, stack=azurite_process) as url:
        yield url


@pytest.fixture(scope="session")
def bundled():
    """The bundled model, loaded as the app loads it."""
    from functions.serving.loaded_model import load_model_file  # noqa: PLC0415 - onnxruntime: here only
    from functions.serving.provider import BUNDLED_MODEL  # noqa: PLC0415

    return load_model_file(BUNDLED_MODEL, source="bundled")


@pytest.fixture
def container(azurite):
    """A fresh, empty model container in Azurite for one test."""
    from azure.storage.blob import ContainerClient  # noqa: PLC0415

    client = ContainerClient.from_connection_string(azurite, f"models-{uuid.uuid4().hex[:12]}")
    client.create_container()
    return client


@pytest.fixture
def registry(container):
    from functions.storage.model_registry import ModelRegistry  # noqa: PLC0415

    return ModelRegistry(container)


@pytest.fixture
def restored_imports() -> Iterator[None]:
    """The host puts the app's folder first on sys.path and imports it as ``function_app``:
    undone after the test, so that other tests import the repository's own app."""
    path, module = list(sys.path), sys.modules.get(SCRIPT_MODULE)
    yield
    sys.path[:] = path
    if module is None:
        sys.modules.pop(SCRIPT_MODULE, None)
    else:
        sys.modules[SCRIPT_MODULE] = module
