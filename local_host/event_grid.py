"""The parts of the Event Grid schema for blob storage events that the local host speaks.

Both sides use this module: the blob trigger's webhook reads these events and the
``blob_events`` stand-in writes them, so the two cannot drift apart.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote, urlsplit

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

    @classmethod
    def from_path(cls, path: str) -> BlobLocation | None:
        """``models/incoming/v2.onnx`` -> container ``models``, name ``incoming/v2.onnx``."""
        container, _, name = path.strip("/").partition("/")
        return cls(container, name) if container and name else None


def event_type(event: dict[str, Any]) -> str | None:
    """The type of an Event Grid event (``eventType``) or a CloudEvents 1.0 one (``type``)."""
    return event.get("eventType") or event.get("type")


def blob_location(event: dict[str, Any]) -> BlobLocation | None:
    """The blob a storage event is about: from its subject, else from ``data.url``."""
    subject = event.get("subject")
    if isinstance(subject, str) and (match := _BLOB_SUBJECT.fullmatch(subject)):
        return BlobLocation(match["container"], match["name"])
    data = event.get("data")
    url = data.get("url") if isinstance(data, dict) else None
    return _location_from_url(url) if isinstance(url, str) else None


def _location_from_url(url: str) -> BlobLocation | None:
    parts = urlsplit(url)
    segments = parts.path.lstrip("/").split("/")
    # Emulators such as Azurite put the account in the path (http://127.0.0.1:10000/account/c/b);
    # Azure puts it in the host name (https://account.blob.core.windows.net/c/b).
    if _is_ip_address_or_localhost(parts.hostname or ""):
        segments = segments[1:]
    return BlobLocation.from_path(unquote("/".join(segments)))


def _is_ip_address_or_localhost(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def blob_subject(location: BlobLocation) -> str:
    return f"/blobServices/default/containers/{location.container}/blobs/{location.name}"


def storage_account_topic(account_name: str) -> str:
    """A topic shaped like a real storage account's, with a placeholder subscription."""
    return (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
        f"/providers/Microsoft.Storage/storageAccounts/{account_name}"
    )


@dataclass(frozen=True)
class CreatedBlob:
    """What a ``BlobCreated`` event says about the blob."""

    location: BlobLocation
    url: str
    etag: str
    content_type: str
    content_length: int
    last_modified: datetime


def blob_created_event(blob: CreatedBlob, *, account_name: str, sequencer: str) -> dict[str, Any]:
    """A ``Microsoft.Storage.BlobCreated`` event in the Event Grid schema."""
    return {
        "id": str(uuid.uuid4()),
        "topic": storage_account_topic(account_name),
        "subject": blob_subject(blob.location),
        "eventType": BLOB_CREATED,
        "eventTime": blob.last_modified.isoformat(),
        "dataVersion": "",
        "metadataVersion": "1",
        "data": {
            "api": "PutBlob",
            "contentType": blob.content_type,
            "contentLength": blob.content_length,
            "blobType": "BlockBlob",
            "url": blob.url,
            "sequencer": sequencer,
            "eTag": blob.etag,
        },
    }


def validation_event(validation_code: str, *, account_name: str) -> dict[str, Any]:
    """The event Event Grid sends once to prove the webhook wants the subscription."""
    return {
        "id": str(uuid.uuid4()),
        "topic": storage_account_topic(account_name),
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
        if event_type(event) == SUBSCRIPTION_VALIDATION and isinstance(data, dict):
            code = data.get("validationCode")
            if isinstance(code, str):
                return code
    return None
