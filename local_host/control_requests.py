"""The body of a control call (the blob webhook, ``/admin/functions/<name>``): JSON only.

A web page can POST ``text/plain`` (or a form) to any origin without asking first; a JSON
content type makes the browser ask (a CORS preflight), and the control routes never say yes.
So requiring JSON is what stops a page the developer visits from firing these calls.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from local_host.request_body import read_body

# Event Grid posts application/json; CloudEvents deliveries use application/cloudevents+json.
_JSON_TYPES = ("application/json", "application/cloudevents+json")
_JSON_SUFFIX = "+json"


def is_json_content_type(content_type: str) -> bool:
    return content_type in _JSON_TYPES or (
        content_type.startswith("application/") and content_type.endswith(_JSON_SUFFIX)
    )


async def read_control_json(request: web.Request, *, shape: str) -> Any:
    """The parsed JSON body (None when empty); 415 for another content type, 400 if not JSON.

    ``shape`` says in the error what the body should be.
    """
    if not is_json_content_type(request.content_type):
        raise web.HTTPUnsupportedMediaType(
            text=f"Control calls take Content-Type: application/json; the body is {shape}."
        )
    body = await read_body(request)
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise web.HTTPBadRequest(text=f"The body is not JSON; it must be {shape}.") from None
