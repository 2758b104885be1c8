"""The Open Inference Protocol (KServe V2) infer response: the outputs asked for, each in JSON
"data" or, with the binary tensor data extension, as raw little-endian bytes after the JSON
header. Pure: no Functions host needed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functions.api.v2_model import DIGIT_OUTPUT, IS_DIGIT_OUTPUT, MODEL_NAME, OUTPUT_DATATYPES
from functions.api.v2_request import InferRequest
from functions.json_codec import to_json
from functions.model_contract import OUTPUT_NAME
from functions.serving.inference import Predictions

# The protocol's little-endian bytes of each output's datatype (a BOOL is one byte).
OUTPUT_DTYPES = {"FP32": np.dtype("<f4"), "INT64": np.dtype("<i8"), "BOOL": np.dtype("?")}


@dataclass(frozen=True)
class InferResponse:
    body: bytes
    header_length: int | None  # the JSON header's length when binary outputs follow it

    @property
    def binary(self) -> bool:
        return self.header_length is not None


def infer_response(request: InferRequest, predictions: Predictions) -> InferResponse:
    tensors = {
        OUTPUT_NAME: predictions.probabilities,
        DIGIT_OUTPUT: predictions.digits,
        IS_DIGIT_OUTPUT: predictions.is_digit,
    }
    outputs, chunks = [], []
    for requested in request.outputs:
        datatype = OUTPUT_DATATYPES[requested.name]
        values = np.ascontiguousarray(tensors[requested.name], dtype=OUTPUT_DTYPES[datatype])
        output: dict[str, object] = {
            "name": requested.name,
            "datatype": datatype,
            "shape": list(values.shape),
        }
        if requested.binary:
            chunks.append(values.tobytes())
            output["parameters"] = {"binary_data_size": values.nbytes}
        else:
            output["data"] = values.ravel()
        outputs.append(output)
    header: dict[str, object] = {"model_name": MODEL_NAME, "model_version": predictions.version}
    if request.id is not None:
        header["id"] = request.id
    if request.parameters is not None:
        header["parameters"] = request.parameters
    header["outputs"] = outputs
    encoded = to_json(header)
    if not chunks:
        return InferResponse(encoded, None)
    return InferResponse(b"".join([encoded, *chunks]), len(encoded))
