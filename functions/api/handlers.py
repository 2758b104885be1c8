"""Our API's handlers: predict, feedback, health, models and the OpenAPI document. Each is a
module-level function of the request and the app's `Services`, wrapped by `endpoint`; the
blueprint (functions/api/blueprint.py) declares them, and tests call them with real
`func.HttpRequest` objects and services of their own."""

from __future__ import annotations

from typing import TYPE_CHECKING

import azure.functions as func

from functions.api.endpoint import endpoint
from functions.api.predict_codec import parse_predict_request, predict_answer
from functions.api.rate_limit import client_address
from functions.api.responses import json_response
from functions.serving.errors import NoModelAvailable
from functions.serving.inference import infer

if TYPE_CHECKING:
    from functions.composition import Services


@endpoint("POST")
def predict(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """Bytes to images (the codec), images to predictions (serving), predictions to JSON."""
    request = parse_predict_request(
        req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
    )
    predictions = infer(services.provider.current(), request.images)
    return json_response(
        predict_answer(predictions, request.batch),
        headers={"X-Model-Version": predictions.version},
    )


@endpoint("POST")
async def feedback(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """A correction, stored once (contracts.md section 2a). The checks run on the event loop
    (a body of at most 64 KiB); the storage calls in the storage pool, so that slow storage
    holds its few threads only, and a write it has no room for is refused at once (503)."""
    # Corrections only: a prediction never loads them.
    from functions.api.feedback_codec import parse_feedback  # noqa: PLC0415

    # Unconfigured storage: 503 before anything else.
    store = await services.feedback_store_async()
    services.feedback_limit().take(client_address(req.headers))
    item = parse_feedback(
        req.headers.get("Content-Type"), req.get_body(), req.headers.get("Content-Encoding")
    )
    return json_response({"item": await services.pools.storage.run(store.save, item)}, status=202)


@endpoint("GET")
async def health(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """From memory only: what the follower last saw of storage, and how long ago. On the
    event loop, so it never queues behind predictions, which run in the inference pool."""
    provider = services.provider
    try:
        model = await services.served_model()
    except NoModelAvailable as error:
        return json_response(
            {"status": "unavailable", "detail": provider.last_error or error.detail},
            status=503,
        )
    return json_response(
        {"status": "ok", "model": model.describe(), "storage": provider.storage_status()},
        headers={"X-Model-Version": model.version},
    )


@endpoint("GET")
async def models(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    """From memory only, on the event loop: the listing a background thread keeps fresh,
    with its age. Storage being down shows in `listing.last_error`; the only 503 is for no
    model. Paced: a flood waits its turn instead of taking the CPU that predictions need."""
    await services.models_pace.wait_turn()
    model = await services.served_model()
    return json_response({"current": model.describe(), **services.provider.registry_listing(model)})


@endpoint("GET")
async def openapi(req: func.HttpRequest, services: Services) -> func.HttpResponse:
    from functions.api.openapi.document import openapi_document  # noqa: PLC0415 - on request

    return json_response(openapi_document(), headers={"Cache-Control": "public, max-age=300"})
