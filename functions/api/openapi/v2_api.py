"""The Open Inference Protocol (KServe V2) in the OpenAPI document: /v2, its health, and the
model's metadata, readiness and inference, by name and by version (contracts.md section 4).
Names, datatypes, shapes and limits come from the code that reads and answers these requests."""

from __future__ import annotations

from functions.api.openapi.parts import (
    BINARY,
    JSON,
    array,
    json_response,
    operation,
    record,
    ref,
    response,
)
from functions.api.pixels import PIXELS
from functions.api.v2_model import MODEL_NAME, OUTPUT_DATATYPES, PLATFORM
from functions.api.v2_request import (
    DATATYPES,
    HEADER_LENGTH,
    IMAGE_SHAPES,
    LENGTH_HEADER,
    MAX_ID_CHARS,
    MAX_PARAMETERS,
    OUTPUTS,
)
from functions.model_contract import INPUT_NAME, MAX_BATCH
from functions.storage.names import VERSION_PATTERN

STRING = {"type": "string"}
STRINGS = array(STRING)
INTEGERS = array({"type": "integer"})
PARAMETERS = {
    "type": "object",
    "maxProperties": MAX_PARAMETERS,
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
TENSOR_METADATA = record({"name": STRING, "datatype": STRING, "shape": INTEGERS})
SHAPES = [f"[N, {', '.join(map(str, shape))}]" for shape in IMAGE_SHAPES]


INPUT = record(
    {
        "name": {"const": INPUT_NAME},
        "shape": array(
            {"type": "integer", "minimum": 1},
            1 + min(map(len, IMAGE_SHAPES)),
            1 + max(map(len, IMAGE_SHAPES)),
            description=f"{', '.join(SHAPES[:-1])} or {SHAPES[-1]}, N from 1 to {MAX_BATCH}",
        ),
        "datatype": {"enum": list(DATATYPES)},
        "parameters": record(
            {"binary_data_size": {"type": "integer", "minimum": 0}}, [], closed=True
        ),
        "data": {
            "type": "array",
            "description": f"N x {PIXELS} values 0..255 (integers for UINT8), flat or nested "
            "row-major",
        },
    },
    ["name", "shape", "datatype"],
    closed=True,
)
REQUESTED_OUTPUT = record(
    {
        "name": {"enum": list(OUTPUTS)},
        "parameters": record({"binary_data": {"type": "boolean"}}, [], closed=True),
    },
    ["name"],
    closed=True,
)
OUTPUT = record(
    {
        "name": {"enum": list(OUTPUTS)},
        "datatype": {"enum": sorted(set(OUTPUT_DATATYPES.values()))},
        "shape": INTEGERS,
        "data": array({"type": ["number", "boolean"]}),  # BOOL: true or false
        "parameters": record({"binary_data_size": {"type": "integer"}}, []),
    },
    ["name", "datatype", "shape"],
)
SCHEMAS = {
    "V2Error": record({"error": STRING}, closed=True),
    "V2ServerMetadata": record({"name": STRING, "version": STRING, "extensions": STRINGS}),
    "V2ModelMetadata": record(
        {
            "name": {"const": MODEL_NAME},
            "versions": STRINGS,
            "platform": {"const": PLATFORM},
            "inputs": array(TENSOR_METADATA),
            "outputs": array(TENSOR_METADATA),
        }
    ),
    "V2InferRequest": record(
        {
            "id": {"type": "string", "maxLength": MAX_ID_CHARS},
            "parameters": {
                **PARAMETERS,
                "description": "Echoed in the response; binary_data_output (boolean) is the "
                "default binary_data of every output",
            },
            "inputs": array(INPUT, 1, 1),
            "outputs": array(REQUESTED_OUTPUT, 1, len(OUTPUTS)),
        },
        ["inputs"],
        closed=True,
        description="With the binary tensor data extension, the input's bytes (row-major, "
        f"little-endian) follow this JSON, whose length {LENGTH_HEADER} gives, and the input says "
        "how many in parameters.binary_data_size instead of sending data",
    ),
    "V2InferResponse": record(
        {
            "model_name": {"const": MODEL_NAME},
            "model_version": STRING,
            "id": STRING,
            "parameters": PARAMETERS,
            "outputs": array(OUTPUT),
        },
        ["model_name", "model_version", "outputs"],
    ),
}


def _path_parameter(name: str, description: str, schema: dict) -> dict:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


NAME = _path_parameter(
    "name", "The model's name: the family of every version served", {"const": MODEL_NAME}
)
VERSION = _path_parameter(
    "version",
    "The served version (see the model's metadata); any other is a 404",
    {"type": "string", "pattern": f"^{VERSION_PATTERN.pattern}$"},
)


def _error(description: str) -> dict:
    return json_response(description, ref("V2Error"))


WRONG_METHOD = _error("Wrong method; the Allow header names the right one")
UNAVAILABLE = _error("No model can be served")
NOT_SERVED = _error("No such model, or not the served version (the error names it)")
YES = response("Yes (a no is any other status)")


def _get(operation_id: str, summary: str, ok: dict, *, model: bool = True) -> dict:
    responses = {"200": ok, "405": WRONG_METHOD, "503": UNAVAILABLE}
    if model:
        responses["404"] = NOT_SERVED
    return operation("get", operation_id, summary, responses)


def _infer(operation_id: str) -> dict:
    binary_or = {JSON: ref("V2InferResponse"), "application/octet-stream": BINARY}
    return operation(
        "post",
        operation_id,
        "Classify N images (JSON, or the binary tensor data extension)",
        {
            "200": response(
                "The outputs asked for (probabilities by default); binary outputs follow the "
                "JSON header, whose length the header gives",
                binary_or,
                headers={"X-Model-Version": {"schema": STRING}, LENGTH_HEADER: {"schema": STRING}},
            ),
            "400": _error("Invalid request, shape, datatype, values or binary sizes"),
            "404": NOT_SERVED,
            "405": WRONG_METHOD,
            "413": _error("The body is over the size limit"),
            "415": _error("A compressed body (Content-Encoding)"),
            "503": _error("No model can be served, or its answer was unusable"),
        },
        body={JSON: ref("V2InferRequest"), "application/octet-stream": BINARY},
        parameters=[
            {
                "name": LENGTH_HEADER,
                "in": "header",
                "required": False,
                "description": "With binary tensor data: the length of the JSON header",
                "schema": {"type": "string", "pattern": f"^{HEADER_LENGTH.pattern}$"},
            }
        ],
    )


def paths() -> dict[str, dict]:
    model = "/v2/models/{name}"
    version = f"{model}/versions/{{version}}"
    metadata = json_response("The served model's metadata", ref("V2ModelMetadata"))
    server = json_response("Server metadata", ref("V2ServerMetadata"))
    by_name = {
        model: _get("v2ModelMetadata", "Model metadata", metadata),
        f"{model}/ready": _get("v2ModelReady", "Is the model ready?", YES),
        f"{model}/infer": _infer("v2Infer"),
    }
    by_version = {
        version: _get("v2VersionMetadata", "Model metadata", metadata),
        f"{version}/ready": _get("v2VersionReady", "Is this version ready?", YES),
        f"{version}/infer": _infer("v2VersionInfer"),
    }
    return {
        "/v2": _get("v2ServerMetadata", "Server metadata", server, model=False),
        "/v2/health/live": _get("v2Live", "Is the server live?", YES, model=False),
        "/v2/health/ready": _get("v2Ready", "Can it serve a model?", YES, model=False),
        **{path: {**item, "parameters": [NAME]} for path, item in by_name.items()},
        **{path: {**item, "parameters": [NAME, VERSION]} for path, item in by_version.items()},
    }
