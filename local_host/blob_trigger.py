"""Serve ``blobTrigger`` functions whose source is Event Grid, at the host's blob webhook.

Event Grid (locally, ``python -m local_host.event_grid``) posts storage events to
``POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>``, after a validation
handshake. For each ``BlobCreated`` event whose blob matches the binding's path, the blob is
read through the binding's ``connection`` setting (a connection string, Azurite's form) and
the function gets an ``azure.functions.InputStream``. Polling blob triggers are not served.
"""

from __future__ import annotations

import base64
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from aiohttp import web
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.blob import InputStream
from azure.storage.blob.aio import BlobServiceClient

from functions.settings import MissingSetting, storage_connection
from local_host.app_functions import AppFunction, resolve_setting_references
from local_host.guards import read_control_json

logger = logging.getLogger(__name__)

BLOB_TRIGGER = "blobTrigger"
WEBHOOK_PATH = "/runtime/webhooks/blobs"
FUNCTION_NAME_PREFIX = "Host.Functions."
# The Event Grid schema, as the webhook reads it and the stand-in writes it.
EVENT_TYPE_HEADER = "aeg-event-type"
VALIDATION_DELIVERY = "SubscriptionValidation"
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
SUBJECT_PREFIX = "/blobServices/default/containers/"  # then <container>/blobs/<name>


def webhook_url(base_url: str, function_name: str) -> str:
    """Where Event Grid delivers the events for one function."""
    return f"{base_url}{WEBHOOK_PATH}?functionName={FUNCTION_NAME_PREFIX}{function_name}"


def blob_subject(path: str) -> str:
    """A storage event's subject for ``container/name``."""
    container, _, name = path.partition("/")
    return f"{SUBJECT_PREFIX}{container}/blobs/{name}"


def blob_path(event: dict) -> str | None:
    """``container/name`` of the blob a storage event is about, from its subject."""
    subject = event.get("subject")
    match = re.fullmatch(
        re.escape(SUBJECT_PREFIX) + r"([^/]+)/blobs/(.+)", subject or "", re.DOTALL
    )
    return f"{match[1]}/{match[2]}" if isinstance(subject, str) and match else None


def path_matches(template: str, path: str) -> bool:
    """Whether ``container/name`` matches a binding path; each ``{...}`` matches 1+ characters."""
    literals = re.split(r"\{[^{}]+\}", template)
    return re.fullmatch("(?:.+)".join(map(re.escape, literals)), path, re.DOTALL) is not None


@dataclass(frozen=True)
class EventGridBlobFunction:
    """A ``blobTrigger`` with ``source=EventGrid``: its path (``models/incoming/{name}``) with
    settings resolved, and its storage."""

    function: AppFunction
    path_template: str
    connection_string: str

    @classmethod
    def from_app_function(cls, function: AppFunction) -> EventGridBlobFunction:
        function.check_takes_only_the_trigger()
        setting = function.trigger.connection
        try:
            path, connection = (
                resolve_setting_references(function.trigger.path),
                storage_connection(setting),
            )
        except (ValueError, MissingSetting) as error:
            raise ValueError(f"{function.name}: {error}") from None
        if connection.connection_string is None:
            raise ValueError(
                f"{function.name}: the local host connects with a connection string only; "
                f"set {setting} (e.g. UseDevelopmentStorage=true)"
            )
        return cls(function, path, connection.connection_string)

    def matches(self, path: str) -> bool:
        return path_matches(self.path_template, path)

    @property
    def watched(self) -> tuple[str, str]:
        """The container and the literal start of names (``incoming/``): what to watch."""
        container, _, start = re.split(r"\{[^{}]+\}", self.path_template)[0].partition("/")
        return container, start

    async def run_for_blob(self, path: str, reason: str) -> bool:
        """Read the blob and call the function; False when the blob is gone. Failures are logged
        with their traceback, then raised."""
        try:
            async with BlobServiceClient.from_connection_string(self.connection_string) as service:
                stream = await read_input_stream(service, path)
        except Exception:
            logger.exception("%s: could not read %s", self.function.name, path)
            raise
        if stream is not None:
            await self.function.invoke_logged(reason, stream)
        return stream is not None


def event_grid_blob_functions(
    functions: Sequence[AppFunction],
) -> list[EventGridBlobFunction]:
    """The app's Event Grid blob triggers, with their settings resolved."""
    return [
        EventGridBlobFunction.from_app_function(function)
        for function in functions
        if function.trigger_type == BLOB_TRIGGER
        and getattr(function.trigger, "source", None) == "EventGrid"
    ]


def attach_blob_triggers(
    web_app: web.Application, functions: Sequence[AppFunction]
) -> tuple[list[str], dict[str, EventGridBlobFunction]]:
    """Route the webhook to the Event Grid blob triggers; return the start-up listing."""
    served = {blob.function.name: blob for blob in event_grid_blob_functions(functions)}
    # Always routed, so that an unknown function name is a clear 404 from here.
    web_app.router.add_route("*", WEBHOOK_PATH, _Webhook(served).handle)
    listing = [
        f"{name}: blobTrigger (EventGrid) POST {webhook_url('{base}', name)}" for name in served
    ]
    for function in functions:
        if function.name not in served:
            source = getattr(function.trigger, "source", None) or "LogsAndContainerScan"
            listing.append(
                f"{function.name}: blobTrigger ({source}) is not served locally; "
                "only source=func.BlobSource.EVENT_GRID is"
            )
            logger.warning("%s", listing[-1])
    return listing


@dataclass(frozen=True)
class _Webhook:
    functions: dict[str, EventGridBlobFunction]

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(
                request.method, ["POST"], text="Event Grid delivers events with POST."
            )
        qualified = request.query.get("functionName", "")
        blob = self.functions.get(qualified.removeprefix(FUNCTION_NAME_PREFIX))
        if blob is None or not qualified.startswith(FUNCTION_NAME_PREFIX):
            raise web.HTTPNotFound(
                text="No Event Grid blob trigger has that functionName; "
                f"use functionName={FUNCTION_NAME_PREFIX}<function name>."
            )
        events = await read_control_json(request, shape="a JSON array of Event Grid events")
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise web.HTTPBadRequest(text="The body must be a JSON array of Event Grid events.")
        codes = [
            e["data"].get("validationCode")
            for e in events
            if e.get("eventType") == SUBSCRIPTION_VALIDATION and isinstance(e.get("data"), dict)
        ]
        if request.headers.get(EVENT_TYPE_HEADER) == VALIDATION_DELIVERY or codes:
            if not codes or not isinstance(codes[0], str):
                raise web.HTTPBadRequest(
                    text="A subscription validation needs data.validationCode."
                )
            logger.info("Event Grid subscription validated")
            return web.json_response({"validationResponse": codes[0]})
        for event in events:
            await _deliver(blob, event)
        return web.Response(status=202)


async def _deliver(blob: EventGridBlobFunction, event: dict) -> None:
    kind, path = event.get("eventType"), blob_path(event)
    if kind != BLOB_CREATED or path is None or not blob.matches(path):
        logger.info(
            "%s: ignored %s for %s (the trigger is BlobCreated on %s)",
            blob.function.name,
            kind,
            path or "no blob",
            blob.path_template,
        )
        return
    try:
        ran = await blob.run_for_blob(path, f"EventGrid blob trigger: {path}")
    except Exception:
        # Logged with its traceback already; a 500 makes Event Grid deliver again.
        raise web.HTTPInternalServerError(
            text=f"Function {blob.function.name!r} failed; see the local host's log."
        ) from None
    if not ran:
        logger.warning("%s: %s no longer exists; event skipped", blob.function.name, path)


async def read_input_stream(service: BlobServiceClient, path: str) -> InputStream | None:
    """The blob as the worker hands it to a blob trigger (its concrete ``InputStream``, with the
    host's property names), or None if it is gone."""
    container, _, name = path.partition("/")
    client = service.get_blob_client(container, name)
    try:
        downloader = await client.download_blob()
        data = await downloader.readall()
    except ResourceNotFoundError:
        return None
    properties = downloader.properties
    md5 = properties.content_settings.content_md5
    return InputStream(
        data=data,
        name=path,
        uri=client.url,
        length=len(data),
        blob_properties={
            "BlobType": getattr(properties.blob_type, "value", properties.blob_type),
            "ContentLength": properties.size,
            "ContentType": properties.content_settings.content_type,
            # .NET writes byte arrays as base64, so the host's ContentMD5 is base64 too.
            "ContentMD5": base64.b64encode(bytes(md5)).decode() if md5 else None,
            "ETag": properties.etag,
            "LastModified": properties.last_modified.isoformat(),
            "CreatedOn": properties.creation_time.isoformat() if properties.creation_time else None,
        },
        metadata=dict(properties.metadata or {}),
    )
