"""Fixtures of the local host's tests: a container for the Event Grid test app."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.local_host_storage import BlobAppStorage


@pytest.fixture
def blob_app_storage(
    azurite: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[BlobAppStorage]:
    """A fresh Azurite container, with the settings tests/apps/event_grid_app reads."""
    with BlobServiceClient.from_connection_string(azurite) as service:
        container = service.get_container_client(f"test-{uuid.uuid4().hex[:12]}")
        container.create_container()
        monkeypatch.setenv("TEST_STORAGE", azurite)
        monkeypatch.setenv("TEST_CONTAINER", container.container_name)
        monkeypatch.setenv("TEST_RECORD_FILE", str(tmp_path / "record.jsonl"))
        yield BlobAppStorage(container, tmp_path / "record.jsonl")
        container.delete_container()
