"""The OpenAPI 3.1 document of the HTTP API (contracts.md section 4)."""

from __future__ import annotations

from functools import cache

from functions.api import API_TITLE, API_VERSION
from functions.feedback.item import ITEM_ID_PATTERN
from functions.feedback.request import MAX_FEEDBACK_BYTES
from functions.serving.inputs import MAX_BATCH
from functions.serving.v2_model import MODEL_NAME
from functions.storage.registry import VERSION_PATTERN

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


# --- the Open Inference Protocol (KServe V2) -----------------------------------------------

V2_PARAMETERS = {
    "type": "object",
    "maxProperties": 64,
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
V2_TENSOR_METADATA = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer"}},
    },
}
V2_SCHEMAS = {
    "V2Error": {
        "type": "object",
        "required": ["error"],
        "additionalProperties": False,
        "properties": {"error": {"type": "string"}},
    },
    "V2ServerMetadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "V2ModelMetadata": {
        "type": "object",
        "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"const": MODEL_NAME},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"const": "onnxruntime_onnx"},
            "inputs": {"type": "array", "items": V2_TENSOR_METADATA},
            "outputs": {"type": "array", "items": V2_TENSOR_METADATA},
        },
    },
    "V2InferRequest": {
        "type": "object",
        "required": ["inputs"],
        "additionalProperties": False,
        "description": "With the binary tensor data extension, the input's bytes (row-major, "
        "little-endian) follow this JSON, whose length Inference-Header-Content-Length gives, "
        "and the input says how many in parameters.binary_data_size instead of sending data",
        "properties": {
            "id": {"type": "string", "maxLength": 256},
            "parameters": {
                **V2_PARAMETERS,
                "description": "Echoed in the response; binary_data_output (boolean) is the "
                "default binary_data of every output",
            },
            "inputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["name", "shape", "datatype"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"const": "pixels"},
                        "shape": {
                            "type": "array",
                            "description": "[N, 28, 28, 1], [N, 28, 28] or [N, 784], N from 1 "
                            f"to {MAX_BATCH}",
                            "items": {"type": "integer", "minimum": 1},
                            "minItems": 2,
                            "maxItems": 4,
                        },
                        "datatype": {"enum": ["FP32", "UINT8"]},
                        "parameters": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                        },
                        "data": {
                            "type": "array",
                            "description": "N x 784 values 0..255 (integers for UINT8), flat or "
                            "nested row-major",
                        },
                    },
                },
            },
            "outputs": {
                "type": "array",
                "minItems": 1,
                "maxItems": 2,
                "items": {
                    "type": "object",
                    "required": ["name"],
                    "additionalProperties": False,
                    "properties": {
                        "name": {"enum": ["probabilities", "digit"]},
                        "parameters": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": {"binary_data": {"type": "boolean"}},
                        },
                    },
                },
            },
        },
    },
    "V2InferResponse": {
        "type": "object",
        "required": ["model_name", "model_version", "outputs"],
        "properties": {
            "model_name": {"const": MODEL_NAME},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": V2_PARAMETERS,
            "outputs": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "datatype", "shape"],
                    "properties": {
                        "name": {"enum": ["probabilities", "digit"]},
                        "datatype": {"enum": ["FP32", "INT64"]},
                        "shape": {"type": "array", "items": {"type": "integer"}},
                        "data": {"type": "array", "items": {"type": "number"}},
                        "parameters": {
                            "type": "object",
                            "properties": {"binary_data_size": {"type": "integer"}},
                        },
                    },
                },
            },
        },
    },
}
V2_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "The model's name: the family of every version served",
    "schema": {"const": MODEL_NAME},
}
V2_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "description": "The served version (see the model's metadata); any other is a 404",
    "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
}


def _v2_error(description: str) -> dict[str, object]:
    return _json(description, _ref("V2Error"))


V2_WRONG_METHOD = _v2_error("Wrong method; the Allow header names the right one")
V2_UNAVAILABLE = _v2_error("No model can be served")
V2_NOT_SERVED = _v2_error("No such model, or not the served version (the error names it)")


def _v2_get(operation: str, summary: str, ok: dict, *, model: bool = True) -> dict:
    responses = {"200": ok, "405": V2_WRONG_METHOD, "503": V2_UNAVAILABLE}
    if model:
        responses["404"] = V2_NOT_SERVED
    return {"get": {"operationId": operation, "summary": summary, "responses": responses}}


def _v2_infer(operation: str) -> dict[str, object]:
    return {
        "post": {
            "operationId": operation,
            "summary": "Classify N images (JSON, or the binary tensor data extension)",
            "parameters": [
                {
                    "name": "Inference-Header-Content-Length",
                    "in": "header",
                    "required": False,
                    "description": "With binary tensor data: the length of the JSON header",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,10}$"},
                }
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": _ref("V2InferRequest")},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                },
            },
            "responses": {
                "200": {
                    "description": "The outputs asked for (probabilities by default); binary "
                    "outputs follow the JSON header, whose length the header gives",
                    "headers": {
                        "X-Model-Version": {"schema": {"type": "string"}},
                        "Inference-Header-Content-Length": {"schema": {"type": "string"}},
                    },
                    "content": {
                        "application/json": {"schema": _ref("V2InferResponse")},
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        },
                    },
                },
                "400": _v2_error("Invalid request, shape, datatype, values or binary sizes"),
                "404": V2_NOT_SERVED,
                "405": V2_WRONG_METHOD,
                "413": _v2_error("The body is over the size limit"),
                "415": _v2_error("A compressed body (Content-Encoding)"),
                "503": _v2_error("No model can be served, or its answer was unusable"),
            },
        }
    }


def v2_paths() -> dict[str, object]:
    no_body = {"description": "Yes (a no is any other status)"}
    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    metadata = _json("The served model's metadata", _ref("V2ModelMetadata"))
    paths = {
        "/v2": _v2_get(
            "v2ServerMetadata",
            "Server metadata",
            _json("Server metadata", _ref("V2ServerMetadata")),
            model=False,
        ),
        "/v2/health/live": _v2_get("v2Live", "Is the server live?", no_body, model=False),
        "/v2/health/ready": _v2_get("v2Ready", "Can it serve a model?", no_body, model=False),
        model: _v2_get("v2ModelMetadata", "Model metadata", metadata),
        f"{model}/ready": _v2_get("v2ModelReady", "Is the model ready?", no_body),
        f"{model}/infer": _v2_infer("v2Infer"),
        version: _v2_get("v2VersionMetadata", "Model metadata", metadata),
        f"{version}/ready": _v2_get("v2VersionReady", "Is this version ready?", no_body),
        f"{version}/infer": _v2_infer("v2VersionInfer"),
    }
    for path, operations in paths.items():
        parameters = [V2_NAME, V2_VERSION] if "{version}" in path else [V2_NAME]
        if "{name}" in path:
            operations["parameters"] = parameters
    return paths


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
    "Correction": {
        "type": "object",
        "description": "A wrong answer and the right digit (label differs from predicted)",
        "required": ["pixels", "predicted", "label", "model_version"],
        "additionalProperties": False,
        "properties": {
            "pixels": _ref("Image"),
            "predicted": {"type": "integer", "minimum": 0, "maximum": 9},
            "label": {"type": "integer", "minimum": 0, "maximum": 9},
            "model_version": {"type": "string", "pattern": f"^{VERSION_PATTERN.pattern}$"},
        },
    },
    "CorrectionReceipt": {
        "type": "object",
        "required": ["item"],
        "properties": {
            "item": {
                "type": "string",
                "pattern": f"^{ITEM_ID_PATTERN}$",
                "description": "The item's id: the SHA-256 of its pixels and label",
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
            "inference_bound": {
                "type": "object",
                "description": "The CPU one run may spend before it is ended (503): the gate's "
                "and the measured single-image latency, and the bound for 1 and 256 images",
            },
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
            "pointer_error": {
                "type": ["string", "null"],
                "description": "current.json is damaged: ignored until a promotion replaces it",
            },
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
            "pointer_error": {
                "type": ["string", "null"],
                "description": "current.json is damaged (pointer is then null)",
            },
            "rollbacks": {
                "type": "array",
                "description": "Versions this instance took out of service and rolled back",
                "items": {"type": "object"},
            },
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
    **V2_SCHEMAS,
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
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
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
            "/feedback": {
                "post": {
                    "operationId": "feedback",
                    "summary": "Correct a wrong answer: the item is kept to train the next model",
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("Correction")}},
                    },
                    "responses": {
                        "202": _json(
                            "Stored (now or before: the same correction is one item)",
                            _ref("CorrectionReceipt"),
                        ),
                        "400": _problem("Invalid JSON, fields, pixels or digits"),
                        "403": _problem("No client address to count the request against"),
                        "405": WRONG_METHOD,
                        "413": _problem(f"The body is over {MAX_FEEDBACK_BYTES} bytes"),
                        "415": _problem("Not JSON, or a compressed body (Content-Encoding)"),
                        "429": _problem(
                            "Too many corrections from this client; retry after Retry-After seconds"
                        ),
                        "503": _problem(
                            "Storage did not take the item, or this instance takes no more "
                            "corrections this minute or today; retry after Retry-After seconds"
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
    document["paths"].update(v2_paths())
    return document
