"""``POST /admin/functions/<name>``: run a non-HTTP function once now, as Core Tools allows.

The body is ``{"input": "..."}``, sent as ``application/json`` (as Core Tools asks, and so that
no web page can fire it: see ``control_requests``); what the input means is up to the trigger
(a timer ignores it, a blob trigger reads it as the blob's path). Unlike Core Tools, which
answers 202 at once, the answer waits for the run: 202 when it succeeded, 500 when it raised.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from local_host.control_requests import read_control_json

ADMIN_PATH = "/admin/functions/{name}"

AdminInvoker = Callable[[str], Awaitable[None]]
"""Runs one function once with the request's ``input``; raises ``AdminInputError`` on bad input."""

ADMIN_INVOKERS_KEY = web.AppKey("local_host.admin_invokers", dict[str, AdminInvoker])


class AdminInputError(ValueError):
    """The ``input`` does not suit the function; the message says why."""


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
    function_input = await _input_of(request)
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


async def _input_of(request: web.Request) -> str:
    document = await read_control_json(request, shape='{"input": "<string>"}')
    if document is None:
        return ""
    value = document.get("input", "") if isinstance(document, dict) else None
    if not isinstance(value, str):
        raise web.HTTPBadRequest(text='The body must be a JSON object {"input": "<string>"}.')
    return value
