"""The host's webhook for Event Grid triggers, ``POST /runtime/webhooks/eventgrid?functionName=
<name>``: it answers a subscription's validation handshake and hands each delivered event to the
function as the host does (the event's JSON). Event Grid itself is Azure's (locally,
local_stack/event_grid.py stands in for the storage account's subscription).
"""

from __future__ import annotations

import json
import logging

from aiohttp import web

from local_host.guards import read_body
from local_host.worker import InvocationFailed, Worker, typed_json

logger = logging.getLogger(__name__)

EVENT_GRID_TRIGGER = "eventGridTrigger"
WEBHOOK_PATH = "/runtime/webhooks/eventgrid"
# What a delivery is, as Event Grid says in this header.
EVENT_TYPE_HEADER = "aeg-event-type"
VALIDATION_DELIVERY = "SubscriptionValidation"
NOTIFICATION_DELIVERY = "Notification"
UNSUBSCRIBE_DELIVERY = "Unsubscribe"


def webhook_url(base_url: str, function_name: str) -> str:
    return f"{base_url}{WEBHOOK_PATH}?functionName={function_name}"


def attach_event_grid_webhook(web_app: web.Application, worker: Worker) -> list[str]:
    """Serve the webhook for the worker's Event Grid triggers; return their listing lines."""
    functions = {f.name: f for f in worker.of_type(EVENT_GRID_TRIGGER)}

    async def deliver(request: web.Request) -> web.Response:
        function = functions.get(request.query.get("functionName", ""))
        if function is None:
            raise web.HTTPNotFound(text="No Event Grid trigger of that name is served here.")
        # JSON only: a page can POST text or a form anywhere unasked, but JSON makes the browser
        # ask first (a preflight), which this route never allows.
        if request.content_type != "application/json":
            raise web.HTTPUnsupportedMediaType(text="Deliveries are application/json.")
        try:
            events = json.loads(await read_body(request))
        except (json.JSONDecodeError, UnicodeDecodeError):
            events = None
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise web.HTTPBadRequest(text="The body must be a JSON array of Event Grid events.")
        # What the delivery is comes from its header, as in the host (compared ignoring case).
        delivery = request.headers.get(EVENT_TYPE_HEADER, "").lower()
        code = next(iter(events), {}).get("data", {}).get("validationCode")
        if delivery == VALIDATION_DELIVERY.lower() and isinstance(code, str):
            logger.info("Event Grid subscription to %s validated", function.name)
            return web.json_response({"validationResponse": code})
        if delivery == UNSUBSCRIBE_DELIVERY.lower():
            return web.Response(status=202)
        if delivery != NOTIFICATION_DELIVERY.lower():
            raise web.HTTPBadRequest(text=f"Not a delivery {EVENT_TYPE_HEADER} names, or no code.")
        for event in events:
            reason = f"EventGrid trigger fired at {event.get('eventTime')}"
            try:
                await worker.invoke(function, typed_json(event), reason)
            except InvocationFailed:  # logged; a 500 makes Event Grid deliver again
                raise web.HTTPInternalServerError(
                    text=f"Function {function.name!r} failed; see the local host's log."
                ) from None
        return web.Response(status=202)

    if functions:
        web_app.router.add_post(WEBHOOK_PATH, deliver)
    return [
        f"{name}: eventGridTrigger {{base}}{WEBHOOK_PATH}?functionName={name}" for name in functions
    ]
