"""Fixtures the HTTP API's tests share."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.storage.blob import ContainerClient


@pytest.fixture
def feedback_container(azurite) -> Iterator[ContainerClient]:
    """A feedback container of its own in Azurite, removed afterwards."""
    container = ContainerClient.from_connection_string(azurite, f"feedback-{uuid.uuid4().hex[:8]}")
    container.create_container()
    yield container
    container.delete_container()
