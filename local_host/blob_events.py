"""A stand-in for Event Grid over Azurite, which emits no storage events.

It watches a container and, for each blob that is new or changed (by name and ETag), posts a
``Microsoft.Storage.BlobCreated`` event in the Event Grid schema to a blob trigger's webhook,
after the subscription-validation handshake, as Event Grid would. Blobs already present at
start count as new. The webhook is the Functions host's own, so this works the same against
``python -m local_host`` and ``func start``::

    python -m local_host.blob_events [--app function_app] [--function NAME] [--host-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
import azure.functions as func
from azure.core.exceptions import AzureError
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from local_host.app_functions import app_functions
from local_host.blob_trigger import event_grid_blob_functions, webhook_url
from local_host.event_grid import (
    DELIVERY_COUNT_HEADER,
    EVENT_TYPE_HEADER,
    NOTIFICATION_DELIVERY,
    VALIDATION_DELIVERY,
    BlobLocation,
    blob_created_event,
    validation_event,
)
from local_host.server import wait_for_stop_signal
from local_host.settings import (
    APP_ROOT,
    configure_logging,
    load_function_app,
    load_local_settings,
)

logger = logging.getLogger(__name__)

DEFAULT_HOST_URL = "http://localhost:7071"
DELIVERY_TIMEOUT = aiohttp.ClientTimeout(total=300)  # the function runs before the answer


class SubscriptionRefused(RuntimeError):
    """The webhook answered the validation handshake with something else than its code."""


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
    _sequence: itertools.count[int] = field(default_factory=itertools.count, init=False)
    _storage_failing: bool = field(default=False, init=False)

    async def validate_subscription(self, wait_seconds: float = 60) -> None:
        """The handshake Event Grid does once; retried while the webhook is not up yet."""
        code = secrets.token_hex(16)
        event = validation_event(code, account_name=self.container.account_name)
        headers = {EVENT_TYPE_HEADER: VALIDATION_DELIVERY}
        deadline = asyncio.get_running_loop().time() + wait_seconds
        while True:
            try:
                async with self.session.post(
                    self.webhook_url, json=[event], headers=headers
                ) as response:
                    status, body = response.status, await response.text()
                break
            except aiohttp.ClientConnectionError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                logger.info("Waiting for the webhook at %s", self.webhook_url)
                await asyncio.sleep(1)
        if _validation_response(body) != code:
            raise SubscriptionRefused(
                f"{self.webhook_url} answered the validation handshake with HTTP {status}: "
                f"{body[:200]}"
            )
        logger.info("Subscription validated by %s", self.webhook_url)

    async def validate_and_run(self, interval_seconds: float = 1.0) -> None:
        await self.validate_subscription()
        await self.run(interval_seconds)

    async def run(self, interval_seconds: float = 1.0) -> None:
        """Poll and deliver until cancelled."""
        while True:
            await self.poll_once()
            await asyncio.sleep(interval_seconds)

    async def poll_once(self) -> int:
        """Deliver an event for each new or changed blob; return how many were delivered."""
        try:
            blobs = [b async for b in self.container.list_blobs(name_starts_with=self.prefix)]
        except AzureError as error:
            # Once, not every second, while the storage stays unreachable.
            if not self._storage_failing:
                logger.warning("Cannot list %s: %s", self.container.url, error.message)
            self._storage_failing = True
            return 0
        if self._storage_failing:
            logger.info("Listing %s again", self.container.url)
        self._storage_failing = False
        changed = [b for b in blobs if self._delivered.get(b.name) != b.etag]
        delivered = 0
        for blob in changed:
            if await self._deliver(blob):
                delivered += 1
            # Given up or not, this version of the blob is done: Event Grid would dead-letter it.
            self._delivered[blob.name] = blob.etag
        # Forget deleted blobs, so that one uploaded again under the same name is new.
        present = {blob.name for blob in blobs}
        self._delivered = {name: etag for name, etag in self._delivered.items() if name in present}
        return delivered

    async def _deliver(self, blob: BlobProperties) -> bool:
        location = BlobLocation(self.container.container_name, blob.name)
        event = blob_created_event(
            location,
            blob,
            self.container.get_blob_client(blob.name).url,
            account_name=self.container.account_name,
            sequencer=f"{next(self._sequence):032d}",
        )
        for attempt in range(1, self.attempts + 1):
            outcome = await self._post(event, attempt)
            if outcome is None:
                logger.info("Delivered BlobCreated for %s (attempt %d)", location.path, attempt)
                return True
            if attempt < self.attempts:
                backoff = self.first_backoff_seconds * 2 ** (attempt - 1)
                logger.warning(
                    "Delivery for %s failed (%s); retrying in %.2f s",
                    location.path,
                    outcome,
                    backoff,
                )
                await asyncio.sleep(backoff)
        logger.error(
            "Gave up on BlobCreated for %s after %d attempts (%s)",
            location.path,
            self.attempts,
            outcome,
        )
        return False

    async def _post(self, event: dict[str, object], attempt: int) -> str | None:
        """One delivery attempt: None on success, else what went wrong."""
        headers = {
            EVENT_TYPE_HEADER: NOTIFICATION_DELIVERY,
            DELIVERY_COUNT_HEADER: str(attempt - 1),
        }
        try:
            async with self.session.post(
                self.webhook_url, json=[event], headers=headers, timeout=DELIVERY_TIMEOUT
            ) as response:
                return None if response.ok else f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"{type(error).__name__}: {error}"


def _validation_response(body: str) -> object:
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        return None
    return answer.get("validationResponse") if isinstance(answer, dict) else None


@asynccontextmanager
async def open_relay(
    connection_string: str, container: str, webhook_url: str, prefix: str = ""
) -> AsyncIterator[BlobEventRelay]:
    """A relay with its storage client and HTTP session, closed on exit."""
    # No SDK retries (storage's first one waits 15 s): the next poll, a second later, retries.
    async with (
        BlobServiceClient.from_connection_string(connection_string, retry_total=0) as service,
        aiohttp.ClientSession() as session,
    ):
        yield BlobEventRelay(service.get_container_client(container), webhook_url, session, prefix)


async def relay_until_stopped(
    connection_string: str,
    container: str,
    webhook_url: str,
    *,
    prefix: str = "",
    interval_seconds: float = 1.0,
) -> None:
    """Validate the subscription, then relay until SIGINT or SIGTERM."""
    async with open_relay(connection_string, container, webhook_url, prefix) as relay:
        logger.info("Watching %s for blobs under %r", relay.container.url, prefix)
        relaying = asyncio.create_task(relay.validate_and_run(interval_seconds))
        stopping = asyncio.create_task(wait_for_stop_signal())
        done, _ = await asyncio.wait({relaying, stopping}, return_when=asyncio.FIRST_COMPLETED)
        for task in (relaying, stopping):
            task.cancel()
        await asyncio.gather(relaying, stopping, return_exceptions=True)
        if relaying in done:
            relaying.result()  # raises what stopped the relay, e.g. SubscriptionRefused
        logger.info("Stopping")


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m local_host.blob_events",
        description="Post Event Grid BlobCreated events for new or changed blobs in Azurite "
        "to a blob trigger's webhook (Azurite emits no events of its own). By default the "
        "storage, container, prefix and webhook are those the app's Event Grid blob trigger "
        "declares.",
    )
    parser.add_argument("--app", default="function_app", help="module that defines `app`")
    parser.add_argument("--function", help="the blob trigger (default: the app's only one)")
    parser.add_argument(
        "--host-url", default=DEFAULT_HOST_URL, help=f"the host (default: {DEFAULT_HOST_URL})"
    )
    parser.add_argument("--connection-string", help="storage to watch instead")
    parser.add_argument("--container", help="container to watch instead")
    parser.add_argument("--prefix", help="only blobs under this prefix instead")
    parser.add_argument("--webhook", help="where to post the events instead")
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between polls (default: 1)"
    )
    return parser.parse_args(argv)


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
    names = [trigger.function.name for trigger in triggers]
    chosen = [t for t in triggers if function_name in (None, t.function.name)]
    if len(chosen) != 1:
        raise ValueError(
            f"choose one of the app's Event Grid blob triggers with --function: {names}"
        )
    location = chosen[0].path.location
    if location is None:
        raise ValueError(f"{names[0]}: its path {chosen[0].path.template!r} names no container")
    return WatchedBlobs(
        connection_string=chosen[0].connection_string,
        container=location.container,
        prefix=location.name,
        webhook_url=webhook_url(host_url.rstrip("/"), chosen[0].function.name),
    )


def main(argv: list[str] | None = None) -> None:
    arguments = parse_arguments(argv)
    configure_logging()
    load_local_settings(APP_ROOT)
    overrides = (arguments.connection_string, arguments.container, arguments.prefix)
    if None in (*overrides, arguments.webhook):
        try:
            app = load_function_app(arguments.app)
            watched = watched_blobs(app, arguments.function, arguments.host_url)
        except ValueError as error:
            raise SystemExit(f"Event Grid stand-in: {error}") from None
    else:
        watched = WatchedBlobs(*overrides, arguments.webhook)
    try:
        asyncio.run(
            relay_until_stopped(
                arguments.connection_string or watched.connection_string,
                arguments.container or watched.container,
                arguments.webhook or watched.webhook_url,
                prefix=watched.prefix if arguments.prefix is None else arguments.prefix,
                interval_seconds=arguments.interval,
            )
        )
    except (SubscriptionRefused, aiohttp.ClientConnectionError) as error:
        raise SystemExit(f"Event Grid stand-in stopped: {error}") from None


if __name__ == "__main__":
    main()
