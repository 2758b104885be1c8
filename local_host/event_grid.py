"""The parts of the Event Grid schema for blob storage events that the local host speaks.

The blob trigger's webhook reads these events and the ``blob_events`` stand-in writes them, so
the two cannot drift apart.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from azure.storage.blob import BlobProperties

EVENT_TYPE_HEADER = "aeg-event-type"
DELIVERY_COUNT_HEADER = "aeg-delivery-count"
VALIDATION_DELIVERY = "SubscriptionValidation"
NOTIFICATION_DELIVERY = "Notification"

BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"

# Storage events name the blob in their subject, e.g.
# /blobServices/default/containers/models/blobs/incoming/v2.onnx
_BLOB_SUBJECT = re.compile(
    r"/blobServices/default/containers/(?P<container>[^/]+)/blobs/(?P<name>.+)"
)


@dataclass(frozen=True)
class BlobLocation:
    """A blob by container and name; ``path`` is how bindings and ``InputStream.name`` spell it."""

    container: str
    name: str

    @property
    def path(self) -> str:
        return f"{self.container}/{self.name}"

    @property
    def subject(self) -> str:
        return f"/blobServices/default/containers/{self.container}/blobs/{self.name}"

    @classmethod
    def from_path(cls, path: str) -> BlobLocation | None:
        """``models/incoming/v2.onnx`` -> container ``models``, name ``incoming/v2.onnx``."""
        container, _, name = path.strip("/").partition("/")
        return cls(container, name) if container and name else None


def blob_location(event: dict[str, Any]) -> BlobLocation | None:
    """The blob a storage event is about, from its subject."""
    subject = event.get("subject")
    if isinstance(subject, str) and (match := _BLOB_SUBJECT.fullmatch(subject)):
        return BlobLocation(match["container"], match["name"])
    return None


def _topic(account_name: str) -> str:
    """A topic shaped like a real storage account's, with a placeholder subscription."""
    return (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
        f"/providers/Microsoft.Storage/storageAccounts/{account_name}"
    )


def blob_created_event(
    location: BlobLocation, blob: BlobProperties, url: str, *, account_name: str, sequencer: str
) -> dict[str, Any]:
    """A ``Microsoft.Storage.BlobCreated`` event in the Event Grid schema."""
    # Listings give ETags bare; Event Grid gives them as the ETag header does, quoted.
    etag = blob.etag if blob.etag.startswith('"') else f'"{blob.etag}"'
    return {
        "id": str(uuid.uuid4()),
        "topic": _topic(account_name),
        "subject": location.subject,
        "eventType": BLOB_CREATED,
        "eventTime": blob.last_modified.isoformat(),
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlob",
            "contentType": blob.content_settings.content_type or "application/octet-stream",
            "contentLength": blob.size,
            "blobType": "BlockBlob",
            "url": url,
            "sequencer": sequencer,
            "eTag": etag,
        },
    }


def validation_event(validation_code: str, *, account_name: str) -> dict[str, Any]:
    """The event Event Grid sends once to prove the webhook wants the subscription."""
    return {
        "id": str(uuid.uuid4()),
        "topic": _topic(account_name),
        "subject": "",
        "eventType": SUBSCRIPTION_VALIDATION,
        "eventTime": datetime.now(UTC).isoformat(),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {"validationCode": validation_code},
    }


def validation_code(events: list[dict[str, Any]]) -> str | None:
    """The code of the first subscription-validation event, if there is one."""
    for event in events:
        data = event.get("data")
        if event.get("eventType") == SUBSCRIPTION_VALIDATION and isinstance(data, dict):
            code = data.get("validationCode")
            if isinstance(code, str):
                return code
    return None
