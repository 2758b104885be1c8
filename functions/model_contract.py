"""The model contract (contracts.md section 1) in one place: the input and output names, shapes,
dtype and metadata keys every model file carries, and opening a file and checking its interface.
Training writes to it, the gate's trial and serving check against it."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (28, 28, 1)  # after the batch dimension
NUM_CLASSES = 10
BATCH_DIM = "N"  # the name of the dynamic batch dimension in the file
TENSOR_TYPE = "tensor(float)"  # float32, as onnxruntime names it
VERSION_KEY = "version"
REQUIRED_METADATA = (
    VERSION_KEY,
    "created_at",
    "test_accuracy",
    "training_data_sha256",
    "framework",
    "source_commit",
)


class UnusableModel(Exception):
    """A model file that cannot serve; the message names what is wrong."""


class ModelLoadError(UnusableModel):
    """onnxruntime cannot load the file at all (not ONNX, truncated, unknown operators)."""


class ModelContractError(UnusableModel):
    """The file loads but breaks the model contract (names, dtypes, shapes)."""


class ModelOutputError(UnusableModel):
    """A loaded model answered a batch with another shape than one row of 10 per image, or
    with a probability that is NaN or infinite: its answer is not used, whatever the gate saw."""


def session_options() -> ort.SessionOptions:
    # One intra-op thread: measured here, single-image p99 drops from about 8 ms to under 1 ms,
    # and concurrent requests already spread over the worker's threads.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return options


def open_session(content: bytes) -> ort.InferenceSession:
    """A session with the app's options on the bytes of an ONNX file, its interface checked.
    ModelLoadError (caused by onnxruntime's own error) or ModelContractError."""
    try:
        session = ort.InferenceSession(
            content, session_options(), providers=["CPUExecutionProvider"]
        )
    except Exception as error:  # onnxruntime raises several unrelated types for bad files
        raise ModelLoadError(f"onnxruntime cannot load the file: {error}") from error
    check_interface(session)
    return session


def check_interface(session: ort.InferenceSession) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [item.name for item in inputs] != [INPUT_NAME]:
        raise ModelContractError(
            f"inputs are {[item.name for item in inputs]}; expected {[INPUT_NAME]}"
        )
    if [item.name for item in outputs] != [OUTPUT_NAME]:
        raise ModelContractError(
            f"outputs are {[item.name for item in outputs]}; expected {[OUTPUT_NAME]}"
        )
    for item, expected_tail in ((inputs[0], list(INPUT_SHAPE)), (outputs[0], [NUM_CLASSES])):
        if item.type != TENSOR_TYPE:
            raise ModelContractError(f"{item.name} is {item.type}; expected {TENSOR_TYPE}")
        if len(item.shape) != 1 + len(expected_tail) or list(item.shape[1:]) != expected_tail:
            expected = [BATCH_DIM, *expected_tail]
            raise ModelContractError(f"{item.name} has shape {item.shape}; expected {expected}")


def missing_metadata(metadata: dict[str, str]) -> list[str]:
    """The required metadata keys that `metadata` lacks, in the contract's order."""
    return [key for key in REQUIRED_METADATA if key not in metadata]


def run_inference(session: ort.InferenceSession, images: np.ndarray) -> np.ndarray:
    """The contract's one inference: (n, 28, 28, 1) float32 in, the (n, 10) output out."""
    return session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
