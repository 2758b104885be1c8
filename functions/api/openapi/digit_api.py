"""Our own API in the OpenAPI document: /predict, /feedback, /health, /models, /openapi.json
(contracts.md section 4). Every limit comes from the code that enforces it."""

from __future__ import annotations

from functions.api.feedback_codec import MAX_FEEDBACK_BYTES
from functions.api.openapi.parts import (
    JSON,
    array,
    between,
    exactly,
    json_response,
    operation,
    or_null,
    record,
    ref,
    response,
)
from functions.api.pixels import PIXELS
from functions.feedback.item import ITEM_ID_PATTERN, NOT_DIGIT
from functions.model_contract import INPUT_SHAPE, MAX_BATCH, NUM_CLASSES
from functions.storage.names import VERSION_PATTERN

SIDE = INPUT_SHAPE[0]
STRING = {"type": "string"}
OBJECT = {"type": "object"}
PIXEL = between("number", 0, 255)
DIGIT = between("integer", 0, NUM_CLASSES - 1)
# A correction's answers: a digit, or "not a digit".
DIGIT_OR_NOT = {"oneOf": [DIGIT, {"const": NOT_DIGIT}]}
FLAT = exactly(PIXELS, PIXEL, description=f"{PIXELS} pixel values, row by row")
ROWS = exactly(SIDE, exactly(SIDE, PIXEL), description=f"{SIDE} rows of {SIDE} pixels")
# The bytes of a picture; the server refuses what it cannot decode with a 400.
PICTURE = {"type": "string", "minLength": 1}
# The fields of each image's answer, in a single answer and in a batch's.
ANSWER_FIELDS = {
    "prediction": DIGIT,
    "confidence": between("number", 0, 1),
    "probabilities": exactly(NUM_CLASSES, between("number", 0, 1)),
    "is_digit": {
        "type": "boolean",
        "description": "false: the image does not look like a digit (the served model's own "
        "rule); prediction, confidence and probabilities are then those of the closest digit",
    },
}
DAMAGED_POINTER = "current.json is damaged"


def problem(description: str) -> dict:
    """An error answered as RFC 9457 problem+json."""
    return response(description, {"application/problem+json": ref("Problem")})


WRONG_METHOD = problem("Wrong method; the Allow header names the right one")
RETRY = "retry after Retry-After seconds"

SCHEMAS = {
    "Image": {
        "oneOf": [FLAT, ROWS],
        "description": "Raw ink values 0..255, MNIST polarity (background 0)",
    },
    "SingleImage": record({"pixels": ref("Image")}, closed=True),
    "Batch": record({"images": array(ref("Image"), 1, MAX_BATCH)}, closed=True),
    "Correction": record(
        {
            "pixels": ref("Image"),
            "predicted": DIGIT_OR_NOT,
            "label": DIGIT_OR_NOT,
            "model_version": {"type": "string", "pattern": f"^{VERSION_PATTERN.pattern}$"},
        },
        closed=True,
        description=f"A wrong answer and the right one, each a digit or {NOT_DIGIT!r} "
        "(label differs from predicted)",
    ),
    "CorrectionReceipt": record(
        {
            "item": {
                "type": "string",
                "pattern": f"^{ITEM_ID_PATTERN}$",
                "description": "The item's id: the SHA-256 of its pixels and its label (the "
                "digit, or n for not_digit)",
            }
        }
    ),
    "Answer": record(ANSWER_FIELDS),
    "Prediction": record({**ANSWER_FIELDS, "model_version": STRING}),
    "BatchPrediction": record({"predictions": array(ref("Answer")), "model_version": STRING}),
    "Model": record(
        {
            "version": STRING,
            "sha256": STRING,
            "source": {"enum": ["bundled", "storage"]},
            "loaded_at": {"type": "string", "format": "date-time"},
            "created_at": or_null("string"),
            "test_accuracy": or_null("number"),
            "inference_bound": {
                "type": "object",
                "description": "The CPU one run may spend before it is ended (503): the gate's "
                f"and the measured single-image latency, and the bound for 1 and {MAX_BATCH} "
                "images",
            },
        },
        ["version", "sha256", "source", "loaded_at"],
    ),
    "Health": record(
        {
            "status": {"enum": ["ok", "unavailable"]},
            "model": ref("Model"),
            "storage": ref("StorageStatus"),
            "detail": STRING,
        },
        ["status"],
    ),
    "StorageStatus": record(
        {
            "following": {"type": "boolean"},
            "reachable": or_null("boolean"),
            "last_check_at": or_null("string"),
            "last_reached_at": or_null("string"),
            "seconds_since_reached": or_null("number", minimum=0),
            "refresh_seconds": {"type": "number"},
            "pointer_version": or_null("string"),
            "last_error": or_null("string"),
            "pointer_error": or_null(
                "string", description=f"{DAMAGED_POINTER}: ignored until a promotion replaces it"
            ),
        },
        ["following"],
        description="What this instance last saw of model storage, from memory: a timeout or "
        "any other transport failure counts as unreachable",
    ),
    "Models": record(
        {
            "current": ref("Model"),
            "pointer": or_null("object"),
            "versions": array(OBJECT),
            "decisions": array(OBJECT),
            "listing": ref("Listing"),
            "pointer_error": or_null(
                "string", description=f"{DAMAGED_POINTER} (pointer is then null)"
            ),
            "rollbacks": array(
                OBJECT,
                description="Versions this instance took out of service and rolled back",
            ),
        },
        ["current", "pointer", "versions", "decisions", "listing"],
    ),
    "Listing": record(
        {
            "loaded": {"type": "boolean"},
            "as_of": or_null("string"),
            "age_seconds": or_null("number", minimum=0),
            "refresh_seconds": or_null("number"),
            "last_error": or_null(
                "string", description="Why the latest refresh failed; the listing shown is older"
            ),
        },
        ["loaded", "as_of", "age_seconds", "last_error"],
        description="When pointer, versions and decisions were read from storage (they are kept "
        "in memory and refreshed in the background); while `loaded` is false they are not known "
        "yet and shown empty",
    ),
    "Problem": record(
        {"type": STRING, "title": STRING, "status": {"type": "integer"}, "detail": STRING}
    ),
}


def paths() -> dict[str, dict]:
    return {
        "/predict": operation(
            "post",
            "predict",
            "Classify one image, a batch, or a picture",
            {
                "200": response(
                    "The digit, its confidence and all ten probabilities",
                    {JSON: {"oneOf": [ref("Prediction"), ref("BatchPrediction")]}},
                    headers={"X-Model-Version": {"schema": STRING}},
                ),
                "400": problem("Invalid JSON, shape, values, batch size or picture"),
                "405": WRONG_METHOD,
                "413": problem("The body is over the size limit"),
                "415": problem("Unsupported content type, or a compressed body (Content-Encoding)"),
                "503": problem(
                    "No model can be served, the served model gave a malformed answer, or every "
                    "picture decoder stayed busy (see Retry-After)"
                ),
            },
            body={
                JSON: {
                    "oneOf": [
                        ref("SingleImage"),
                        ref("Batch"),
                        FLAT | {"description": "a bare array (earlier clients)"},
                    ]
                },
                "image/png": PICTURE | {"contentMediaType": "image/png"},
                "image/jpeg": PICTURE | {"contentMediaType": "image/jpeg"},
            },
        ),
        "/feedback": operation(
            "post",
            "feedback",
            "Correct a wrong answer: the item is kept to train the next model",
            {
                "202": json_response(
                    "Stored (now or before: the same correction is one item)",
                    ref("CorrectionReceipt"),
                ),
                "400": problem("Invalid JSON, fields, pixels or digits"),
                "403": problem("No client address to count the request against"),
                "405": WRONG_METHOD,
                "413": problem(f"The body is over {MAX_FEEDBACK_BYTES} bytes"),
                "415": problem("Not JSON, or a compressed body (Content-Encoding)"),
                "429": problem(f"Too many corrections from this client; {RETRY}"),
                "503": problem(
                    "Storage did not take the item, or this instance takes no more corrections "
                    f"this minute or today; {RETRY}"
                ),
            },
            body={JSON: ref("Correction")},
        ),
        "/health": operation(
            "get",
            "health",
            "The served model, or why none can be served",
            {
                "200": json_response("A model is served", ref("Health")),
                "405": WRONG_METHOD,
                "503": json_response("No model can be served", ref("Health")),
            },
        ),
        "/models": operation(
            "get",
            "models",
            "The current version, the accepted versions and recent decisions",
            {
                "200": json_response("The model registry, as last read", ref("Models")),
                "405": WRONG_METHOD,
                "429": problem(f"Asked too often; {RETRY}"),
                "503": problem("No model can be served"),
            },
        ),
        "/openapi.json": operation(
            "get",
            "openapi",
            "This document",
            {"200": json_response("OpenAPI 3.1", OBJECT), "405": WRONG_METHOD},
        ),
    }
