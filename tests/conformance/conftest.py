"""One real Python worker for the whole session, indexed and loaded as the Functions host does,
with its model storage in a fresh container of the session's Azurite."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import BlobServiceClient

from tests.conformance.worker_host import WorkerHost, built_worker, load_protos, worker_copy
from tests.stack import REPO_ROOT


@pytest.fixture(scope="session")
def conformance_storage(azurite: str) -> dict[str, str]:
    """The settings both the worker and the local host get: the same Azurite container, so
    /api/models and /api/health have the same storage to report."""
    container = f"conformance-{uuid.uuid4().hex[:12]}"
    with BlobServiceClient.from_connection_string(azurite) as service:
        service.create_container(container)
    return {"MODELS_STORAGE": azurite, "MODELS_CONTAINER": container}


@pytest.fixture(scope="session")
def worker_build():
    """The worker copy, compiled into build/ (skips the suite where there is none)."""
    return built_worker(worker_copy())


@pytest.fixture(scope="session")
def worker(worker_build, conformance_storage, tmp_path_factory) -> Iterator[WorkerHost]:
    """The worker after init, metadata and load of every function it indexed."""
    host = WorkerHost(
        load_protos(worker_build),
        worker_build,
        REPO_ROOT,
        {**os.environ, **conformance_storage},
        tmp_path_factory.mktemp("worker") / "worker.log",
    )
    try:
        host.start()
        yield host
    finally:
        host.close()
