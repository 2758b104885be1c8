"""A stand-in for the storage account's Event Grid subscription, over Azurite (which emits no
storage events): it watches a container's prefix for new or changed blobs (by name and ETag; those
present at start count as new) and posts a ``Microsoft.Storage.BlobCreated`` event for each to an
Event Grid trigger's webhook, after the validation handshake and retried with backoff, as the
subscription in infra/modules/event-subscription.bicep does in Azure.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from azure.core.exceptions import AzureError
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from functions.promotion.handlers import BLOB_CREATED, blob_subject
from local_host.event_grid import EVENT_TYPE_HEADER, NOTIFICATION_DELIVERY, VALIDATION_DELIVERY

logger = logging.getLogger(__name__)

SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=300)  # the function runs before the answer


class SubscriptionRefused(RuntimeError):
    """The webhook answered the validation handshake with something else than its code."""


@dataclass(frozen=True)
class Subscription:
    """What the stand-in watches, and where it posts: one storage event subscription."""

    connection_string: str
    container: str
    prefix: str
    webhook_url: str


@dataclass
class BlobEventRelay:
    """Turns changes under one container's prefix into Event Grid deliveries to one webhook."""

    container: ContainerClient
    subscription: Subscription
    session: aiohttp.ClientSession
    attempts: int = 4
    first_backoff_seconds: float = 0.5
    _delivered: dict[str, str] = field(default_factory=dict, init=False)  # blob name -> ETag
    _sequence: itertools.count = field(default_factory=itertools.count, init=False)
    _storage_failing: bool = field(default=False, init=False)

    async def validate_subscription(self, wait_seconds: float = 60) -> None:
        """The handshake Event Grid does once; retried while the webhook is not up yet."""
        code = secrets.token_hex(16)
        event = self._event(SUBSCRIPTION_VALIDATION, "", {"validationCode": code})
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            try:
                async with self.session.post(
                    self.subscription.webhook_url,
                    json=[event],
                    headers={EVENT_TYPE_HEADER: VALIDATION_DELIVERY},
                ) as response:
                    status, body = response.status, await response.text()
                break
            except aiohttp.ClientConnectionError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(1)
        try:
            answer = json.loads(body)
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or answer.get("validationResponse") != code:
            raise SubscriptionRefused(
                f"{self.subscription.webhook_url} answered the validation handshake with "
                f"HTTP {status}: {body[:200]}"
            )

    async def run(self, interval_seconds: float = 1.0) -> None:
        """Validate the subscription, then poll and deliver until cancelled."""
        await self.validate_subscription()
        while True:
            await self.poll_once()
            await asyncio.sleep(interval_seconds)

    async def poll_once(self) -> int:
        """Deliver an event for each new or changed blob; return how many were delivered."""
        try:
            blobs = [
                b
                async for b in self.container.list_blobs(name_starts_with=self.subscription.prefix)
            ]
        except AzureError as error:
            if not self._storage_failing:  # once, not every second, while storage stays away
                logger.warning("Cannot list %s: %s", self.container.url, error.message)
            self._storage_failing = True
            return 0
        self._storage_failing = False
        delivered = 0
        for blob in [b for b in blobs if self._delivered.get(b.name) != b.etag]:
            data = {
                "api": "PutBlob",
                "contentType": blob.content_settings.content_type or "application/octet-stream",
                "contentLength": blob.size,
                "blobType": "BlockBlob",
                "url": self.container.get_blob_client(blob.name).url,
                "sequencer": f"{next(self._sequence):032d}",
                # Listings give ETags bare; Event Grid gives them quoted, as the header does.
                "eTag": blob.etag if blob.etag.startswith('"') else f'"{blob.etag}"',
            }
            subject = blob_subject(self.container.container_name, blob.name)
            delivered += await self._deliver(self._event(BLOB_CREATED, subject, data), subject)
            # Given up or not, this version of the blob is done: Event Grid would dead-letter it.
            self._delivered[blob.name] = blob.etag
        # Forget deleted blobs, so that one uploaded again under the same name is new.
        present = {blob.name for blob in blobs}
        self._delivered = {name: etag for name, etag in self._delivered.items() if name in present}
        return delivered

    async def _deliver(self, event: dict, subject: str) -> bool:
        for attempt in range(self.attempts):
            headers = {EVENT_TYPE_HEADER: NOTIFICATION_DELIVERY, "aeg-delivery-count": str(attempt)}
            try:
                async with self.session.post(
                    self.subscription.webhook_url,
                    json=[event],
                    headers=headers,
                    timeout=DELIVERY_TIMEOUT,
                ) as response:
                    outcome = None if response.ok else f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                outcome = f"{type(error).__name__}: {error}"
            if outcome is None:
                logger.info("Delivered BlobCreated for %s (attempt %d)", subject, attempt + 1)
                return True
            if attempt + 1 < self.attempts:
                backoff = self.first_backoff_seconds * 2**attempt
                logger.warning(
                    "Delivery for %s failed (%s); again in %.2f s", subject, outcome, backoff
                )
                await asyncio.sleep(backoff)
        logger.error(
            "Gave up on BlobCreated for %s after %d attempts (%s)", subject, self.attempts, outcome
        )
        return False

    def _event(self, event_type: str, subject: str, data: dict) -> dict:
        return {
            "id": str(uuid.uuid4()),
            # Shaped like a real storage account's topic, with a placeholder subscription.
            "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
            f"/providers/Microsoft.Storage/storageAccounts/{self.container.account_name}",
            "subject": subject,
            "eventType": event_type,
            "eventTime": datetime.now(UTC).isoformat(),
            "dataVersion": "",
            "metadataVersion": "1",
            "data": data,
        }


@contextlib.asynccontextmanager
async def opened_relay(subscription: Subscription) -> AsyncIterator[BlobEventRelay]:
    """A relay for `subscription`, its storage and HTTP clients open while the block runs."""
    # No SDK retries (storage's first waits 15 s): the next poll, a second later, retries.
    async with (
        BlobServiceClient.from_connection_string(
            subscription.connection_string, retry_total=0
        ) as service,
        aiohttp.ClientSession() as session,
    ):
        yield BlobEventRelay(
            service.get_container_client(subscription.container), subscription, session
        )


async def relay_blob_events(subscription: Subscription, interval_seconds: float = 1.0) -> None:
    """Relay until cancelled; a refused subscription or a broken relay is logged, not raised."""
    async with opened_relay(subscription) as relay:
        try:
            await relay.run(interval_seconds)
        except SubscriptionRefused as error:
            logger.warning("Not posting blob events: %s", error)
        except Exception:
            logger.exception("The Event Grid stand-in failed; blob events are no longer posted")
