"""The OpenAPI 3.1 document of the HTTP API (contracts.md section 4)."""

from __future__ import annotations

from functools import cache

from functions.serving.inputs import MAX_BATCH

PIXEL = {"type": "number", "minimum": 0, "maximum": 255}
FLAT = {
    "type": "array",
    "items": PIXEL,
    "minItems": 784,
    "maxItems": 784,
    "description": "784 pixel values, row by row",
}
ROWS = {
    "type": "array",
    "minItems": 28,
    "maxItems": 28,
    "description": "28 rows of 28 pixels",
    "items": {"type": "array", "items": PIXEL, "minItems": 28, "maxItems": 28},
}
IMAGE = {"oneOf": [FLAT, ROWS]}
PROBABILITIES = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "maximum": 1},
    "minItems": 10,
    "maxItems": 10,
}
# The bytes of a picture; the server refuses what it cannot decode with a 400.
PICTURE = {"type": "string", "minLength": 1}
ANSWER_FIELDS = {
    "prediction": {"type": "integer", "minimum": 0, "maximum": 9},
    "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    "probabilities": PROBABILITIES,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _problem(description: str) -> dict[str, object]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": _ref("Problem")}},
    }


def _json(description: str, schema: dict) -> dict[str, object]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


SCHEMAS = {
    "Image": {**IMAGE, "description": "Raw ink values 0..255, MNIST polarity (background 0)"},
    "SingleImage": {
        "type": "object",
        "required": ["pixels"],
        "additionalProperties": False,
        "properties": {"pixels": _ref("Image")},
    },
    "Batch": {
        "type": "object",
        "required": ["images"],
        "additionalProperties": False,
        "properties": {
            "images": {
                "type": "array",
                "items": _ref("Image"),
                "minItems": 1,
                "maxItems": MAX_BATCH,
            }
        },
    },
    "Answer": {"type": "object", "required": list(ANSWER_FIELDS), "properties": ANSWER_FIELDS},
    "Prediction": {
        "type": "object",
        "required": [*ANSWER_FIELDS, "model_version"],
        "properties": {**ANSWER_FIELDS, "model_version": {"type": "string"}},
    },
    "BatchPrediction": {
        "type": "object",
        "required": ["predictions", "model_version"],
        "properties": {
            "predictions": {"type": "array", "items": _ref("Answer")},
            "model_version": {"type": "string"},
        },
    },
    "Model": {
        "type": "object",
        "required": ["version", "sha256", "source", "loaded_at"],
        "properties": {
            "version": {"type": "string"},
            "sha256": {"type": "string"},
            "source": {"enum": ["bundled", "storage"]},
            "loaded_at": {"type": "string", "format": "date-time"},
            "created_at": {"type": ["string", "null"]},
            "test_accuracy": {"type": ["number", "null"]},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "model": _ref("Model"),
            "storage": _ref("StorageStatus"),
            "detail": {"type": "string"},
        },
    },
    "StorageStatus": {
        "type": "object",
        "description": "What this instance last saw of model storage, from memory: a timeout "
        "or any other transport failure counts as unreachable",
        "required": ["following"],
        "properties": {
            "following": {"type": "boolean"},
            "reachable": {"type": ["boolean", "null"]},
            "last_check_at": {"type": ["string", "null"]},
            "last_reached_at": {"type": ["string", "null"]},
            "seconds_since_reached": {"type": ["number", "null"], "minimum": 0},
            "refresh_seconds": {"type": "number"},
            "pointer_version": {"type": ["string", "null"]},
            "last_error": {"type": ["string", "null"]},
        },
    },
    "Models": {
        "type": "object",
        "required": ["current", "pointer", "versions", "decisions", "listing"],
        "properties": {
            "current": _ref("Model"),
            "pointer": {"type": ["object", "null"]},
            "versions": {"type": "array", "items": {"type": "object"}},
            "decisions": {"type": "array", "items": {"type": "object"}},
            "listing": _ref("Listing"),
        },
    },
    "Listing": {
        "type": "object",
        "description": "When pointer, versions and decisions were read from storage (they are "
        "kept in memory and refreshed in the background); while `loaded` is false they are "
        "not known yet and shown empty",
        "required": ["loaded", "as_of", "age_seconds", "last_error"],
        "properties": {
            "loaded": {"type": "boolean"},
            "as_of": {"type": ["string", "null"]},
            "age_seconds": {"type": ["number", "null"], "minimum": 0},
            "refresh_seconds": {"type": ["number", "null"]},
            "last_error": {
                "type": ["string", "null"],
                "description": "Why the latest refresh failed; the listing shown is older",
            },
        },
    },
    "Problem": {
        "type": "object",
        "required": ["type", "title", "status", "detail"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
        },
    },
}

WRONG_METHOD = _problem("Wrong method; the Allow header names the right one")


@cache
def openapi_document() -> dict[str, object]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Digit recognition API",
            "version": "1.0.0",
            "description": "Classifies handwritten digits (MNIST, 0-9) with an ONNX model.",
        },
        "servers": [{"url": "/api"}],
        "paths": {
            "/predict": {
                "post": {
                    "operationId": "predict",
                    "summary": "Classify one image, a batch, or a picture",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        _ref("SingleImage"),
                                        _ref("Batch"),
                                        {**FLAT, "description": "a bare array (earlier clients)"},
                                    ]
                                }
                            },
                            "image/png": {"schema": PICTURE | {"contentMediaType": "image/png"}},
                            "image/jpeg": {"schema": PICTURE | {"contentMediaType": "image/jpeg"}},
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The digit, its confidence and all ten probabilities",
                            "headers": {"X-Model-Version": {"schema": {"type": "string"}}},
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [_ref("Prediction"), _ref("BatchPrediction")]
                                    }
                                }
                            },
                        },
                        "400": _problem("Invalid JSON, shape, values, batch size or picture"),
                        "405": WRONG_METHOD,
                        "413": _problem("The body is over the size limit"),
                        "415": _problem(
                            "Unsupported content type, or a compressed body (Content-Encoding)"
                        ),
                        "503": _problem(
                            "No model can be served, the served model gave a malformed answer, "
                            "or every picture decoder stayed busy (see Retry-After)"
                        ),
                    },
                }
            },
            "/health": {
                "get": {
                    "operationId": "health",
                    "summary": "The served model, or why none can be served",
                    "responses": {
                        "200": _json("A model is served", _ref("Health")),
                        "405": WRONG_METHOD,
                        "503": _json("No model can be served", _ref("Health")),
                    },
                }
            },
            "/models": {
                "get": {
                    "operationId": "models",
                    "summary": "The current version, the accepted versions and recent decisions",
                    "responses": {
                        "200": _json("The model registry, as last read", _ref("Models")),
                        "405": WRONG_METHOD,
                        "429": _problem("Asked too often; retry after Retry-After seconds"),
                        "503": _problem("No model can be served"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "responses": {
                        "200": _json("OpenAPI 3.1", {"type": "object"}),
                        "405": WRONG_METHOD,
                    },
                }
            },
        },
        "components": {"schemas": SCHEMAS},
    }
