"""Shared fixtures: where the repository and the MNIST data are."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient

from tests.helpers import wait_for_health
from tests.local_host_storage import BlobAppStorage

REPO_ROOT = Path(__file__).resolve().parent.parent


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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def base_url(azurite, tmp_path_factory):
    """The function app served by `python -m local_host`, as `make run` serves it, with its
    model storage in Azurite."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("local-host") / "host.log"
    environment = {**os.environ, "MODELS_STORAGE": azurite, "MODELS_CONTAINER": "models"}
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the host
        host = subprocess.Popen(
            [sys.executable, "-m", "local_host", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO_ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/api"
    try:
        wait_for_health(url, host, log_path)
        yield url
    finally:
        host.terminate()
        status = host.wait(timeout=15)
    assert status == 0


AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory) -> str:
    """A real Azurite blob service on a free loopback port; yields its connection string."""
    binary = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
    if not binary.exists():
        pytest.fail(f"{binary} is missing; `make setup` (npm ci) installs Azurite")
    port = free_port()
    process = subprocess.Popen(
        [
            str(binary),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(tmp_path_factory.mktemp("azurite")),
            "--silent",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"Azurite did not start:\n{process.stdout.read()}")
            time.sleep(0.2)
    yield (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/devstoreaccount1;"
    )
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture(scope="session")
def site_url(base_url: str) -> str:
    """The drawing site, served by the same local host at / (the API is under /api)."""
    return base_url.removesuffix("/api") + "/"


@pytest.fixture
def blob_app_storage(
    azurite: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[BlobAppStorage]:
    """A fresh Azurite container, with the settings tests/local_host_blob_app.py reads."""
    with BlobServiceClient.from_connection_string(azurite) as service:
        container = service.get_container_client(f"test-{uuid.uuid4().hex[:12]}")
        container.create_container()
        monkeypatch.setenv("TEST_STORAGE", azurite)
        monkeypatch.setenv("TEST_CONTAINER", container.container_name)
        monkeypatch.setenv("TEST_RECORD_FILE", str(tmp_path / "record.jsonl"))
        yield BlobAppStorage(container, tmp_path / "record.jsonl")
        container.delete_container()


@pytest.fixture(scope="session")
def bundled():
    """The bundled model, loaded as the app loads it."""
    from functions.serving.model import load_model_file  # noqa: PLC0415 - onnxruntime: here only
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
    from functions.storage.registry import ModelRegistry  # noqa: PLC0415

    return ModelRegistry(container)
