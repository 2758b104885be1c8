"""Serve ``blobTrigger`` functions whose source is Event Grid, through the host's webhook.

Event Grid (or, locally, ``python -m local_host.blob_events``) posts storage events to
``POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>``, the endpoint the Functions
host exposes. For each ``BlobCreated`` event whose blob matches the binding's path, the blob is
downloaded through the binding's ``connection`` setting (a connection string: Azurite's form)
and the function is called with an ``azure.functions.InputStream``. Blob triggers that poll the
container (the default source) are listed but not served.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.blob import InputStream
from azure.storage.blob import BlobProperties
from azure.storage.blob.aio import BlobServiceClient

from functions.settings import MissingSetting, storage_connection
from local_host.app_functions import (
    AppFunction,
    check_takes_only_the_trigger,
    invoke_logged,
    resolve_setting_references,
)
from local_host.control_calls import (
    AdminInputError,
    AdminInvoker,
    admin_invokers,
    read_control_json,
)
from local_host.event_grid import (
    BLOB_CREATED,
    EVENT_TYPE_HEADER,
    VALIDATION_DELIVERY,
    BlobLocation,
    blob_location,
    validation_code,
)

logger = logging.getLogger(__name__)

BLOB_TRIGGER = "blobTrigger"
EVENT_GRID_SOURCE = "EventGrid"
WEBHOOK_PATH = "/runtime/webhooks/blobs"
FUNCTION_NAME_PREFIX = "Host.Functions."

_PLACEHOLDER = re.compile(r"\{[^{}]+\}")


def webhook_url(base_url: str, function_name: str) -> str:
    """Where Event Grid delivers the events for one function."""
    return f"{base_url}{WEBHOOK_PATH}?functionName={FUNCTION_NAME_PREFIX}{function_name}"


@dataclass(frozen=True)
class BlobPathPattern:
    """A binding path such as ``models/incoming/{name}``; each ``{...}`` matches 1+ characters."""

    template: str
    regex: re.Pattern[str]

    @classmethod
    def from_template(cls, template: str) -> BlobPathPattern:
        literals = _PLACEHOLDER.split(template)
        return cls(template, re.compile("(?:.+)".join(map(re.escape, literals)), re.DOTALL))

    def matches(self, location: BlobLocation) -> bool:
        return self.regex.fullmatch(location.path) is not None

    @property
    def location(self) -> BlobLocation | None:
        """The container and the name's literal start (``incoming/``): what to watch."""
        container, _, name_start = _PLACEHOLDER.split(self.template)[0].partition("/")
        return BlobLocation(container, name_start) if container else None


@dataclass(frozen=True)
class EventGridBlobFunction:
    """What a ``blobTrigger`` binding with ``source=EventGrid`` declares about one function."""

    function: AppFunction
    path: BlobPathPattern
    connection_string: str

    @classmethod
    def from_app_function(cls, function: AppFunction) -> EventGridBlobFunction:
        check_takes_only_the_trigger(function)
        setting = function.trigger.connection
        try:
            path = resolve_setting_references(function.trigger.path)
            connection = storage_connection(setting)
        except (ValueError, MissingSetting) as error:
            raise ValueError(f"{function.name}: {error}") from None
        if connection.connection_string is None:
            raise ValueError(
                f"{function.name}: the local host connects with a connection string only; "
                f"set {setting} (e.g. UseDevelopmentStorage=true)"
            )
        return cls(function, BlobPathPattern.from_template(path), connection.connection_string)

    async def run_for_blob(self, location: BlobLocation, reason: str) -> bool:
        """Download the blob and call the function; False when the blob no longer exists.

        Either failure (storage, function) is logged with its traceback here, then raised.
        """
        try:
            async with BlobServiceClient.from_connection_string(self.connection_string) as service:
                input_stream = await read_input_stream(service, location)
        except Exception:
            logger.exception("%s: could not read %s", self.function.name, location.path)
            raise
        if input_stream is None:
            return False
        arguments = {self.function.trigger.name: input_stream}
        await invoke_logged(self.function, reason, **arguments)
        return True


def is_event_grid_sourced(function: AppFunction) -> bool:
    return getattr(function.trigger, "source", None) == EVENT_GRID_SOURCE


def event_grid_blob_functions(functions: Sequence[AppFunction]) -> list[EventGridBlobFunction]:
    """The app's Event Grid blob triggers, with their settings resolved."""
    return [
        EventGridBlobFunction.from_app_function(function)
        for function in functions
        if function.trigger_type == BLOB_TRIGGER and is_event_grid_sourced(function)
    ]


def attach_blob_triggers(web_app: web.Application, functions: Sequence[AppFunction]) -> list[str]:
    """Route the webhook to the Event Grid blob triggers; return the startup listing lines."""
    served = {blob.function.name: blob for blob in event_grid_blob_functions(functions)}
    for blob in served.values():
        admin_invokers(web_app)[blob.function.name] = _admin_invoker(blob)
    # Always routed, so that an unknown function name is a clear 404 from here.
    web_app.router.add_route("*", WEBHOOK_PATH, _WebhookHandler(served).handle)
    listing = [
        f"{name}: blobTrigger (EventGrid) POST {webhook_url('{base}', name)}" for name in served
    ]
    for function in functions:
        if function.name not in served:
            source = getattr(function.trigger, "source", None) or "LogsAndContainerScan"
            line = (
                f"{function.name}: blobTrigger ({source}) is not served locally; "
                "only source=func.BlobSource.EVENT_GRID is"
            )
            logger.warning("%s", line)
            listing.append(line)
    return listing


@dataclass(frozen=True)
class _WebhookHandler:
    functions: Mapping[str, EventGridBlobFunction]

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(
                request.method, ["POST"], text="Event Grid delivers events with POST."
            )
        function = self._function_named(request.query.get("functionName", ""))
        events = await read_control_json(request, shape="a JSON array of Event Grid events")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise web.HTTPBadRequest(text="The body must be a JSON array of Event Grid events.")
        code = validation_code(events)
        if request.headers.get(EVENT_TYPE_HEADER) == VALIDATION_DELIVERY or code is not None:
            if code is None:
                raise web.HTTPBadRequest(
                    text="A subscription validation needs data.validationCode."
                )
            logger.info("Event Grid subscription validated")
            return web.json_response({"validationResponse": code})
        for event in events:
            await _handle_event(function, event)
        return web.Response(status=202)

    def _function_named(self, qualified_name: str) -> EventGridBlobFunction:
        name = qualified_name.removeprefix(FUNCTION_NAME_PREFIX)
        function = self.functions.get(name)
        if function is None or name == qualified_name:
            raise web.HTTPNotFound(
                text="No Event Grid blob trigger has that functionName; "
                f"use functionName={FUNCTION_NAME_PREFIX}<function name>."
            )
        return function


async def _handle_event(blob: EventGridBlobFunction, event: dict[str, Any]) -> None:
    kind = event.get("eventType")
    location = blob_location(event)
    if kind != BLOB_CREATED or location is None or not blob.path.matches(location):
        logger.info(
            "%s: ignored %s for %s (the trigger is BlobCreated on %s)",
            blob.function.name,
            kind,
            location.path if location else "no blob",
            blob.path.template,
        )
        return
    try:
        ran = await blob.run_for_blob(location, f"EventGrid blob trigger: {location.path}")
    except Exception:
        # run_for_blob has logged the traceback; a 500 makes Event Grid deliver again.
        raise web.HTTPInternalServerError(
            text=f"Function {blob.function.name!r} failed; see the local host's log."
        ) from None
    if not ran:
        logger.warning("%s: %s no longer exists; event skipped", blob.function.name, location.path)


def _admin_invoker(blob: EventGridBlobFunction) -> AdminInvoker:
    async def run_once(blob_path: str) -> None:
        location = BlobLocation.from_path(blob_path)
        if location is None or not blob.path.matches(location):
            raise AdminInputError(f"input must be the path of a blob matching {blob.path.template}")
        if not await blob.run_for_blob(location, f"Admin request: {location.path}"):
            raise AdminInputError(f"there is no blob at {location.path}")

    return run_once


async def read_input_stream(
    service: BlobServiceClient, location: BlobLocation
) -> InputStream | None:
    """The blob as the Python worker hands it to a blob trigger (its concrete ``InputStream``,
    with the host's property names), or None if it is gone."""
    blob = service.get_blob_client(location.container, location.name)
    try:
        downloader = await blob.download_blob()
        data = await downloader.readall()
    except ResourceNotFoundError:
        return None
    properties: BlobProperties = downloader.properties
    content = properties.content_settings
    md5 = content.content_md5
    return InputStream(
        data=data,
        name=location.path,
        uri=blob.url,
        length=len(data),
        blob_properties={
            "BlobType": getattr(properties.blob_type, "value", properties.blob_type),
            "ContentLength": properties.size,
            "ContentType": content.content_type,
            # .NET serialises byte arrays as base64, so the host's ContentMD5 is base64 too.
            "ContentMD5": base64.b64encode(bytes(md5)).decode() if md5 else None,
            "ETag": properties.etag,
            "LastModified": properties.last_modified.isoformat(),
            "CreatedOn": properties.creation_time.isoformat() if properties.creation_time else None,
        },
        metadata=dict(properties.metadata or {}),
    )
