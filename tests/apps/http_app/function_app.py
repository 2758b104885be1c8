"""The local host's HTTP test app: routing, request and response translation, async and plain
functions, failures, ``context``, and a trigger the local host does not serve.

Tests reach this module's state (``RELEASE_BLOCKED``) through ``sys.modules["function_app"]``
once the host has indexed the app, as the runtime imports it by that name.
"""

import asyncio
import json
import os
import threading
import time

import azure.functions as func

SLOW_HANDLER_SECONDS = 0.2
# Set by a test to let `blocked` answer; it holds a thread of the pool until then.
RELEASE_BLOCKED = threading.Event()

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
items = func.Blueprint()


@app.route(route="echo", methods=["POST"])
def echo(req: func.HttpRequest) -> func.HttpResponse:
    payload = {
        "method": req.method,
        "url": req.url,
        "is_http_request": isinstance(req, func.HttpRequest),
        "body": req.get_body().decode(),
        "params": dict(req.params),
        "x_trace": req.headers.get("X-Trace"),
    }
    return func.HttpResponse(json.dumps(payload), mimetype="application/json")


@items.route(route="items/{id}", methods=[func.HttpMethod.GET], trigger_arg_name="request")
def get_item(request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"item {request.route_params['id']}")


@items.route(route="items/{id}", methods=["DELETE"], trigger_arg_name="request")
def delete_item(request: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(status_code=204)


@app.route(route="pages/{number}", methods=["GET"])
def page(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(dict(req.route_params)), mimetype="application/json")


# Declared before the literal route it would match too: the literal one still wins.
@app.route(route="models/{name}", methods=["GET"])
def any_model(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("any")


@app.route(route="models/latest", methods=["GET"])
def latest_model(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse("latest")


@app.route(route="created", methods=["PUT"])
def created(req: func.HttpRequest) -> func.HttpResponse:
    response = func.HttpResponse(
        b"\x00\x01",
        status_code=201,
        headers={"X-Custom": "kept"},
        mimetype="application/octet-stream",
    )
    response.headers.add_header("Set-Cookie", "a=1")
    response.headers.add_header(
        "Set-Cookie", "session=abc; Path=/api; Max-Age=60; Secure; HttpOnly; SameSite=Strict"
    )
    return response


@app.route(route="plain", methods=["GET"])
def plain(req: func.HttpRequest) -> str:
    return "just a string"


@app.route(route="anything")
def anything(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(req.method)


@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    time.sleep(SLOW_HANDLER_SECONDS)
    return func.HttpResponse("done")


@app.route(route="blocked", methods=["GET"])
def blocked(req: func.HttpRequest) -> func.HttpResponse:
    released = RELEASE_BLOCKED.wait(timeout=30)
    return func.HttpResponse("released" if released else "timed out")


@app.route(route="async", methods=["GET"])
async def async_hello(req: func.HttpRequest) -> func.HttpResponse:
    await asyncio.sleep(0)
    return func.HttpResponse(f"async {req.params['who']}")


@app.route(route="thread/async", methods=["GET"])
async def thread_of_async(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(threading.get_ident()))


@app.route(route="thread/plain", methods=["GET"])
def thread_of_plain(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(threading.get_ident()))


@app.route(route="boom", methods=["GET"])
def boom(req: func.HttpRequest) -> func.HttpResponse:
    raise RuntimeError("secret-internal-detail")


@app.route(route="wrong-type", methods=["GET"])
def wrong_type(req: func.HttpRequest) -> func.HttpResponse:
    return {"not": "a response"}  # the runtime cannot encode this as an HTTP response


@app.route(route="whoami", methods=["GET"])
def whoami(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    return func.HttpResponse(
        f"{context.function_name} {context.invocation_id} {context.invocation_id}"
    )


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"pong {req.params.get('name', '')}".strip())


@app.route(route="settings/{name}", methods=["GET"])
def setting(req: func.HttpRequest) -> func.HttpResponse:
    """An app setting's value, as the app sees it in its environment."""
    return func.HttpResponse(os.environ.get(req.route_params["name"], "(not set)"))


@app.queue_trigger(arg_name="message", queue_name="work", connection="MODELS_STORAGE")
def on_message(message: func.QueueMessage) -> None:
    raise AssertionError("the local host must not call queue-triggered functions")


app.register_functions(items)
