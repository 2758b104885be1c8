"""A tiny function app for starting ``python -m local_host`` as a real process in tests."""

import os

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(f"pong {req.params.get('name', '')}".strip())


@app.route(route="pid", methods=["GET"])
def pid(req: func.HttpRequest) -> func.HttpResponse:
    """Which serving process answered."""
    return func.HttpResponse(str(os.getpid()))


@app.blob_trigger(arg_name="blob", path="models/{name}", connection="MODELS_STORAGE")
def on_model_blob(blob: func.InputStream) -> None:
    raise AssertionError("the local host must not call blob-triggered functions")
