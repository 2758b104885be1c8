"""Serve ``blobTrigger`` functions whose source is Event Grid, through the host's webhook.

Event Grid (or, locally, ``python -m local_host.blob_events``) posts storage events to
``POST /runtime/webhooks/blobs?functionName=Host.Functions.<name>``, the same endpoint the
Functions host exposes. For each ``BlobCreated`` event whose blob matches the binding's path,
the blob is downloaded through the binding's ``connection`` and the function is called with
an ``azure.functions.InputStream``. Blob triggers that poll the container (the default
source, ``LogsAndContainerScan``) are listed but not served.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from local_host.admin import AdminInputError, AdminInvoker, admin_invokers
from local_host.blob_storage import blob_service, check_connection, read_input_stream
from local_host.control_requests import read_control_json
from local_host.discovery import DiscoveredFunction, check_takes_only_the_trigger
from local_host.event_grid import (
    BLOB_CREATED,
    EVENT_TYPE_HEADER,
    VALIDATION_DELIVERY,
    BlobLocation,
    blob_location,
    event_type,
    validation_code,
)
from local_host.invocation import invoke_logged
from local_host.settings import resolve_setting_references

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
        regex = "(?:.+)".join(re.escape(literal) for literal in literals)
        return cls(template, re.compile(regex, re.DOTALL))

    def matches(self, location: BlobLocation) -> bool:
        return self.regex.fullmatch(location.path) is not None


@dataclass(frozen=True)
class EventGridBlobFunction:
    """What a ``blobTrigger`` binding with ``source=EventGrid`` declares about one function."""

    name: str
    path: BlobPathPattern
    connection: str
    parameter: str
    user_function: Callable[..., Any]
    environ: Mapping[str, str]  # where the connection's settings are

    @classmethod
    def from_discovered(
        cls, function: DiscoveredFunction, environ: Mapping[str, str]
    ) -> EventGridBlobFunction:
        check_takes_only_the_trigger(function)
        trigger = function.trigger
        try:
            path = resolve_setting_references(trigger.path, environ)
            check_connection(trigger.connection, environ)
        except ValueError as error:
            raise ValueError(f"{function.name}: {error}") from None
        return cls(
            name=function.name,
            path=BlobPathPattern.from_template(path),
            connection=trigger.connection,
            parameter=trigger.name,
            user_function=function.user_function,
            environ=environ,
        )

    async def run_for_blob(self, location: BlobLocation, reason: str) -> bool:
        """Download the blob and call the function; False when the blob no longer exists.

        Either failure (storage, function) is logged with its traceback here, then raised.
        """
        try:
            async with blob_service(self.connection, self.environ) as service:
                input_stream = await read_input_stream(service, location)
        except Exception:
            logger.exception("%s: could not read %s", self.name, location.path)
            raise
        if input_stream is None:
            return False
        await invoke_logged(self.name, reason, self.user_function, **{self.parameter: input_stream})
        return True


def is_event_grid_sourced(function: DiscoveredFunction) -> bool:
    return getattr(function.trigger, "source", None) == EVENT_GRID_SOURCE


class BlobTriggerAdapter:
    """Serves Event Grid-sourced blob triggers at the host's blob webhook."""

    trigger_type = BLOB_TRIGGER

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        self.environ = environ

    def attach(self, web_app: web.Application, functions: Sequence[DiscoveredFunction]) -> None:
        served: dict[str, EventGridBlobFunction] = {}
        for function in functions:
            if not is_event_grid_sourced(function):
                logger.warning("%s", self.describe(function, ""))
                continue
            served[function.name] = EventGridBlobFunction.from_discovered(function, self.environ)
            admin_invokers(web_app)[function.name] = _admin_invoker(served[function.name])
        # Always routed, so that an unknown function name is a clear 404 from here.
        web_app.router.add_route("*", WEBHOOK_PATH, _WebhookHandler(served).handle)

    def describe(self, function: DiscoveredFunction, base_url: str) -> str:
        if is_event_grid_sourced(function):
            return (
                f"{function.name}: blobTrigger (EventGrid) POST "
                f"{webhook_url(base_url, function.name)}"
            )
        source = getattr(function.trigger, "source", None) or "LogsAndContainerScan"
        return (
            f"{function.name}: blobTrigger ({source}) is not served locally; "
            "only source=func.BlobSource.EVENT_GRID is"
        )


@dataclass(frozen=True)
class _WebhookHandler:
    functions: Mapping[str, EventGridBlobFunction]

    async def handle(self, request: web.Request) -> web.Response:
        if request.method != "POST":
            raise web.HTTPMethodNotAllowed(
                request.method, ["POST"], text="Event Grid delivers events with POST."
            )
        function = self._function_named(request.query.get("functionName", ""))
        events = await _events_of(request)
        code = validation_code(events)
        if request.headers.get(EVENT_TYPE_HEADER) == VALIDATION_DELIVERY or code is not None:
            return _validation_response(code)
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


async def _events_of(request: web.Request) -> list[dict[str, Any]]:
    """An Event Grid batch (a JSON array), or one CloudEvents 1.0 event (a JSON object)."""
    document = await read_control_json(request, shape="a JSON array of Event Grid events")
    events = document if isinstance(document, list) else [document]
    if not all(isinstance(event, dict) for event in events):
        raise web.HTTPBadRequest(text="Each event must be a JSON object.")
    return events


def _validation_response(code: str | None) -> web.Response:
    if code is None:
        raise web.HTTPBadRequest(text="A subscription validation needs data.validationCode.")
    logger.info("Event Grid subscription validated")
    return web.json_response({"validationResponse": code})


async def _handle_event(function: EventGridBlobFunction, event: dict[str, Any]) -> None:
    kind = event_type(event)
    location = blob_location(event)
    if kind != BLOB_CREATED or location is None or not function.path.matches(location):
        logger.info(
            "%s: ignored %s for %s (the trigger is BlobCreated on %s)",
            function.name,
            kind,
            location.path if location else "no blob",
            function.path.template,
        )
        return
    try:
        ran = await function.run_for_blob(location, f"EventGrid blob trigger: {location.path}")
    except Exception:
        # run_for_blob has logged the traceback; a 500 makes Event Grid deliver again.
        raise web.HTTPInternalServerError(
            text=f"Function {function.name!r} failed; see the local host's log."
        ) from None
    if not ran:
        logger.warning("%s: %s no longer exists; event skipped", function.name, location.path)


def _admin_invoker(function: EventGridBlobFunction) -> AdminInvoker:
    async def run_once(blob_path: str) -> None:
        location = BlobLocation.from_path(blob_path)
        if location is None or not function.path.matches(location):
            raise AdminInputError(
                f"input must be the path of a blob matching {function.path.template}"
            )
        if not await function.run_for_blob(location, f"Admin request: {location.path}"):
            raise AdminInputError(f"there is no blob at {location.path}")

    return run_once
