"""Control calls: the blob webhook's body, and ``POST /admin/functions/<name>``.

Both take ``application/json`` only. A web page can POST ``text/plain`` or a form to any origin
without asking first; a JSON content type makes the browser ask (a CORS preflight), and these
routes never say yes, so a page the developer visits cannot fire them.

The admin call runs a non-HTTP function once now, as Core Tools allows, with the body
``{"input": "..."}`` (a timer ignores it, a blob trigger reads it as the blob's path). Unlike
Core Tools, which answers 202 at once, the answer waits for the run: 202 when it succeeded, 500
when it raised.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from local_host.http_guards import read_body

ADMIN_PATH = "/admin/functions/{name}"

AdminInvoker = Callable[[str], Awaitable[None]]
"""Runs one function once with the request's ``input``; raises ``AdminInputError`` on bad input."""

ADMIN_INVOKERS_KEY = web.AppKey("local_host.admin_invokers", dict[str, AdminInvoker])


class AdminInputError(ValueError):
    """The ``input`` does not suit the function; the message says why."""


async def read_control_json(request: web.Request, *, shape: str) -> Any:
    """The parsed JSON body (None when empty); 415 for another content type, 400 if not JSON.
    ``shape`` says in the error what the body should be."""
    if request.content_type != "application/json":
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


def admin_invokers(web_app: web.Application) -> dict[str, AdminInvoker]:
    """The web app's invokers by function name; the first call adds the admin route."""
    if ADMIN_INVOKERS_KEY not in web_app:
        web_app[ADMIN_INVOKERS_KEY] = {}
        web_app.router.add_post(ADMIN_PATH, _run_function)
    return web_app[ADMIN_INVOKERS_KEY]


async def _run_function(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    invoker = request.app[ADMIN_INVOKERS_KEY].get(name)
    if invoker is None:
        raise web.HTTPNotFound(text="No non-HTTP function has that name.")
    document = await read_control_json(request, shape='{"input": "<string>"}')
    function_input = (document or {}).get("input", "") if isinstance(document, dict | None) else 0
    if not isinstance(function_input, str):
        raise web.HTTPBadRequest(text='The body must be a JSON object {"input": "<string>"}.')
    try:
        await invoker(function_input)
    except AdminInputError as error:
        raise web.HTTPBadRequest(text=str(error)) from None
    except Exception:
        # The invoker logged the traceback.
        raise web.HTTPInternalServerError(
            text=f"Function {name!r} failed; see the local host's log."
        ) from None
    return web.Response(status=202)
