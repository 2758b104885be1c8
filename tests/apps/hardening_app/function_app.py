"""The app behind the local host's hardening tests: a GET/HEAD function, an upload, and an
Event Grid trigger for the host's control route (its webhook)."""

import json

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="status", methods=["GET", "HEAD"])
def status(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps({"method": req.method}), mimetype="application/json")


@app.route(route="upload", methods=["POST"])
def upload(req: func.HttpRequest) -> func.HttpResponse:
    body = req.get_body()
    described = {"length": len(body), "encoding": req.headers.get("content-encoding")}
    return func.HttpResponse(json.dumps(described), mimetype="application/json")


@app.event_grid_trigger(arg_name="event")
def on_event(event: func.EventGridEvent) -> None:
    """Only here so that the app has a control route: the Event Grid webhook."""
