"""A stand-in for Event Grid over Azurite, which emits no storage events.

It watches where an Event Grid blob trigger's path points and, for each blob that is new or
changed (by name and ETag; blobs present at start count as new), posts a
``Microsoft.Storage.BlobCreated`` event to the trigger's webhook after the validation handshake,
as Event Grid would. The webhook is the Functions host's own, so it serves ``func start`` too::

    python -m local_host.event_grid [--app function_app] [--function NAME] [--host-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from local_host.app_functions import app_functions
from local_host.blob_trigger import (
    BLOB_CREATED,
    EVENT_TYPE_HEADER,
    SUBSCRIPTION_VALIDATION,
    VALIDATION_DELIVERY,
    blob_subject,
    event_grid_blob_functions,
    webhook_url,
)
from local_host.log_output import configure_logging
from local_host.server import wait_for_stop_signal
from local_host.settings import (
    APP_ROOT,
    load_function_app,
    load_local_settings,
)

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=300)  # the function runs before the answer


class SubscriptionRefused(RuntimeError):
    """The webhook answered the validation handshake with something else than its code."""


@dataclass(frozen=True)
class WatchedBlobs:
    """What the stand-in watches for one blob trigger, and where it posts."""

    connection_string: str
    container: str
    prefix: str
    webhook_url: str


def watched_blobs(
    function_app: func.FunctionApp, function_name: str | None, host_url: str
) -> WatchedBlobs:
    """From the app's Event Grid blob trigger: its connection, its path's container and literal
    start (``incoming/`` of ``%MODELS_CONTAINER%/incoming/{name}``), and its webhook."""
    triggers = event_grid_blob_functions(app_functions(function_app))
    chosen = [t for t in triggers if function_name in (None, t.function.name)]
    if len(chosen) != 1:
        names = [trigger.function.name for trigger in triggers]
        raise ValueError(
            f"choose one of the app's Event Grid blob triggers with --function: {names}"
        )
    container, prefix = chosen[0].watched
    if not container:
        raise ValueError(
            f"{chosen[0].function.name}: its path {chosen[0].path_template!r} names no container"
        )
    url = webhook_url(host_url.rstrip("/"), chosen[0].function.name)
    return WatchedBlobs(chosen[0].connection_string, container, prefix, url)


def _event(event_type: str, subject: str, data: dict, account: str, when: datetime) -> dict:
    return {
        "id": str(uuid.uuid4()),
        # Shaped like a real storage account's topic, with a placeholder subscription.
        "topic": "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local"
        f"/providers/Microsoft.Storage/storageAccounts/{account}",
        "subject": subject,
        "eventType": event_type,
        "eventTime": when.isoformat(),
        "dataVersion": "",
        "metadataVersion": "1",
        "data": data,
    }


@dataclass
class BlobEventRelay:
    """Turns changes in one container into Event Grid deliveries to one webhook."""

    container: ContainerClient
    webhook_url: str
    session: aiohttp.ClientSession
    prefix: str = ""
    attempts: int = 4
    first_backoff_seconds: float = 0.5
    _delivered: dict[str, str] = field(default_factory=dict, init=False)  # blob name -> ETag
    _sequence: itertools.count = field(default_factory=itertools.count, init=False)
    _storage_failing: bool = field(default=False, init=False)

    async def validate_subscription(self, wait_seconds: float = 60) -> None:
        """The handshake Event Grid does once; retried while the webhook is not up yet."""
        code = secrets.token_hex(16)
        event = _event(
            SUBSCRIPTION_VALIDATION,
            "",
            {"validationCode": code},
            self.container.account_name,
            datetime.now(UTC),
        )
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            try:
                async with self.session.post(
                    self.webhook_url,
                    json=[event],
                    headers={EVENT_TYPE_HEADER: VALIDATION_DELIVERY},
                ) as response:
                    status, body = response.status, await response.text()
                break
            except aiohttp.ClientConnectionError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                logger.info("Waiting for the webhook at %s", self.webhook_url)
                await asyncio.sleep(1)
        try:
            answer = json.loads(body)
        except json.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict) or answer.get("validationResponse") != code:
            raise SubscriptionRefused(
                f"{self.webhook_url} answered the validation handshake with HTTP {status}: "
                + body[:200]
            )
        logger.info("Subscription validated by %s", self.webhook_url)

    async def run(self, interval_seconds: float = 1.0) -> None:
        """Validate the subscription, then poll and deliver until cancelled."""
        await self.validate_subscription()
        while True:
            await self.poll_once()
            await asyncio.sleep(interval_seconds)

    async def poll_once(self) -> int:
        """Deliver an event for each new or changed blob; return how many were delivered."""
        try:
            blobs = [b async for b in self.container.list_blobs(name_starts_with=self.prefix)]
        except AzureError as error:
            if not self._storage_failing:  # once, not every second, while storage stays away
                logger.warning("Cannot list %s: %s", self.container.url, error.message)
            self._storage_failing = True
            return 0
        if self._storage_failing:
            logger.info("Listing %s again", self.container.url)
        self._storage_failing = False
        delivered = 0
        for blob in [b for b in blobs if self._delivered.get(b.name) != b.etag]:
            delivered += await self._deliver(blob)
            # Given up or not, this version of the blob is done: Event Grid would dead-letter it.
            self._delivered[blob.name] = blob.etag
        # Forget deleted blobs, so that one uploaded again under the same name is new.
        present = {blob.name for blob in blobs}
        self._delivered = {name: etag for name, etag in self._delivered.items() if name in present}
        return delivered

    async def _deliver(self, blob: BlobProperties) -> bool:
        path = f"{self.container.container_name}/{blob.name}"
        data = {
            "api": "PutBlob",
            "contentType": blob.content_settings.content_type or "application/octet-stream",
            "contentLength": blob.size,
            "blobType": "BlockBlob",
            "url": self.container.get_blob_client(blob.name).url,
            "sequencer": f"{next(self._sequence):032d}",
            # Listings give ETags bare; Event Grid gives them quoted, as the ETag header does.
            "eTag": blob.etag if blob.etag.startswith('"') else f'"{blob.etag}"',
        }
        event = _event(
            BLOB_CREATED,
            blob_subject(path),
            data,
            self.container.account_name,
            blob.last_modified,
        )
        for attempt in range(self.attempts):
            headers = {
                EVENT_TYPE_HEADER: "Notification",
                "aeg-delivery-count": str(attempt),
            }
            try:
                async with self.session.post(
                    self.webhook_url,
                    json=[event],
                    headers=headers,
                    timeout=DELIVERY_TIMEOUT,
                ) as response:
                    outcome = None if response.ok else f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as error:
                outcome = f"{type(error).__name__}: {error}"
            if outcome is None:
                logger.info("Delivered BlobCreated for %s (attempt %d)", path, attempt + 1)
                return True
            if attempt + 1 < self.attempts:
                backoff = self.first_backoff_seconds * 2**attempt
                logger.warning(
                    "Delivery for %s failed (%s); retrying in %.2f s",
                    path,
                    outcome,
                    backoff,
                )
                await asyncio.sleep(backoff)
        logger.error(
            "Gave up on BlobCreated for %s after %d attempts (%s)",
            path,
            self.attempts,
            outcome,
        )
        return False


@asynccontextmanager
async def open_relay(watched: WatchedBlobs) -> AsyncIterator[BlobEventRelay]:
    """A relay with its storage client and HTTP session, closed on exit."""
    # No SDK retries (storage's first waits 15 s): the next poll, a second later, retries.
    async with (
        BlobServiceClient.from_connection_string(
            watched.connection_string, retry_total=0
        ) as service,
        aiohttp.ClientSession() as session,
    ):
        container = service.get_container_client(watched.container)
        yield BlobEventRelay(container, watched.webhook_url, session, watched.prefix)


async def relay_until_stopped(watched: WatchedBlobs, interval_seconds: float = 1.0) -> None:
    """Relay until SIGINT or SIGTERM; raise what stops it sooner (e.g. SubscriptionRefused)."""
    async with open_relay(watched) as relay:
        logger.info("Watching %s for blobs under %r", relay.container.url, watched.prefix)
        relaying = asyncio.create_task(relay.run(interval_seconds))
        stopping = asyncio.create_task(wait_for_stop_signal())
        await asyncio.wait({relaying, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (relaying, stopping):
            task.cancel()
        await asyncio.gather(relaying, stopping, return_exceptions=True)
        if not relaying.cancelled():
            relaying.result()
        logger.info("Stopping")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m local_host.event_grid",
        description="Post Event Grid BlobCreated events for new or changed blobs in Azurite to "
        "the webhook of the app's Event Grid blob trigger, watching where its path points.",
    )
    parser.add_argument("--app", default="function_app", help="module that defines `app`")
    parser.add_argument("--function", help="the blob trigger (default: the app's only one)")
    parser.add_argument("--host-url", default="http://localhost:7071", help="the Functions host")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    arguments = parser.parse_args(argv)
    configure_logging()
    load_local_settings(APP_ROOT)
    try:
        watched = watched_blobs(
            load_function_app(arguments.app), arguments.function, arguments.host_url
        )
        asyncio.run(relay_until_stopped(watched, arguments.interval))
    except (ValueError, SubscriptionRefused, aiohttp.ClientConnectionError) as error:
        raise SystemExit(f"Event Grid stand-in stopped: {error}") from None


if __name__ == "__main__":
    main()
