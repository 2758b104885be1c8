"""A container in Azurite for the Event Grid tests, and the record of the Event Grid test app
(tests/apps/event_grid_app)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from azure.storage.blob import ContainerClient


@dataclass
class BlobAppStorage:
    """A fresh container, and the file where the Event Grid test app records its calls."""

    container: ContainerClient
    record_file: Path

    @property
    def name(self) -> str:
        return self.container.container_name

    def upload(self, name: str, data: bytes, metadata: dict[str, str] | None = None) -> str:
        """Upload (or overwrite) a blob; return its ETag."""
        blob = self.container.get_blob_client(name)
        return blob.upload_blob(data, metadata=metadata, overwrite=True)["etag"]

    def records(self) -> list[dict[str, Any]]:
        if not self.record_file.exists():
            return []
        return [json.loads(line) for line in self.record_file.read_text().splitlines()]
