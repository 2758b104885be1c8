"""The feedback container (contracts.md section 2a): each item written once, whole, under its
content hash."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings, StorageErrorCode

from functions.clock import utc_now
from functions.feedback.item import FeedbackItem, blob_name, stored_document
from functions.json_codec import to_json
from functions.storage.errors import StorageUnavailable

JSON_CONTENT = ContentSettings(content_type="application/json")
log = logging.getLogger(__name__)


class FeedbackStore:
    def __init__(self, container: ContainerClient, *, now: Callable[[], str] = utc_now) -> None:
        self.container = container
        self.now = now

    def save(self, item: FeedbackItem) -> str:
        """The item's id once it is stored, by this call or an earlier one. One create-only
        Put Blob: storage keeps the whole item or none of it. StorageUnavailable otherwise."""
        name = blob_name(item.id)
        data = to_json(stored_document(item, self.now()))
        try:
            try:
                self._create(name, data)
            except ResourceNotFoundError:
                # Infra creates the container in Azure; locally the first item creates it.
                self._create_container()
                self._create(name, data)
        except ResourceExistsError as error:
            # The SDK also says "exists" for a container being deleted: only this code means
            # the item is there.
            if error.error_code != StorageErrorCode.BLOB_ALREADY_EXISTS:
                log.warning("feedback item %s not stored: %s", item.id, error)
                raise StorageUnavailable("storage did not take the correction") from error
            log.info("feedback item %s was stored before", item.id)
        except AzureError as error:
            log.warning("feedback item %s not stored: %s", item.id, error)
            raise StorageUnavailable("storage did not take the correction") from error
        else:
            log.info(
                "stored feedback item %s (label %s, model said %s, %s)",  # a digit or not_digit
                item.id,
                item.label,
                item.predicted,
                item.model_version,
            )
        return item.id

    def _create(self, name: str, data: bytes) -> None:
        # overwrite=False sends If-None-Match: *, so an item is never rewritten.
        self.container.upload_blob(name, data, overwrite=False, content_settings=JSON_CONTENT)

    def _create_container(self) -> None:
        # Created meanwhile by another instance: what was wanted.
        with contextlib.suppress(ResourceExistsError):
            self.container.create_container()
