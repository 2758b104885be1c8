"""The Open Inference Protocol (KServe V2) infer response: the outputs asked for, each in JSON
"data" or, with the binary tensor data extension, as raw little-endian bytes after the JSON
header. Pure: no Functions host needed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from functions.api.v2_model import DIGIT_OUTPUT, MODEL_NAME
from functions.api.v2_request import InferRequest
from functions.json_codec import to_json
from functions.model_contract import OUTPUT_NAME
from functions.serving.inference import Predictions

OUTPUT_DATATYPES = {
    OUTPUT_NAME: ("FP32", np.dtype("<f4")),
    DIGIT_OUTPUT: ("INT64", np.dtype("<i8")),
}


@dataclass(frozen=True)
class InferResponse:
    body: bytes
    header_length: int | None  # the JSON header's length when binary outputs follow it

    @property
    def binary(self) -> bool:
        return self.header_length is not None


def infer_response(request: InferRequest, predictions: Predictions) -> InferResponse:
    tensors = {OUTPUT_NAME: predictions.probabilities, DIGIT_OUTPUT: predictions.digits}
    outputs, chunks = [], []
    for requested in request.outputs:
        datatype, dtype = OUTPUT_DATATYPES[requested.name]
        values = np.ascontiguousarray(tensors[requested.name], dtype=dtype)
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
