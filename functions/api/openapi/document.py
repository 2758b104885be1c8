"""The whole OpenAPI 3.1 document: our own API and the V2 protocol, each described in its own
module, with the schemas both refer to."""

from __future__ import annotations

from functools import cache

from functions.api import API_TITLE, API_VERSION
from functions.api.openapi import digit_api, v2_api


@cache
def openapi_document() -> dict[str, object]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": API_TITLE,
            "version": API_VERSION,
            "description": "Classifies handwritten digits (MNIST, 0-9) with an ONNX model.",
        },
        "servers": [{"url": "/api"}],
        "paths": digit_api.paths() | v2_api.paths(),
        "components": {"schemas": digit_api.SCHEMAS | v2_api.SCHEMAS},
    }
