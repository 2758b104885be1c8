"""The served model as the Open Inference Protocol (KServe V2) names and describes it: one model
name for the family, whatever version is served, and metadata read from the loaded session."""

from __future__ import annotations

from functions.model_contract import TENSOR_TYPE
from functions.serving.errors import UnknownModel
from functions.serving.loaded_model import LoadedModel

# The family of every version this app serves (versions are named mnist-cnn-<semver>). Fixed
# rather than derived from the served version's name: a client's URL must survive a promotion.
MODEL_NAME = "mnist-cnn"
PLATFORM = "onnxruntime_onnx"
DIGIT_OUTPUT = "digit"  # ours, not the network's: the argmax of each row of probabilities
V2_DATATYPES = {TENSOR_TYPE: "FP32", "tensor(int64)": "INT64", "tensor(uint8)": "UINT8"}


def check_served(model: LoadedModel, name: str, version: str | None = None) -> None:
    """UnknownModel, naming what is served, unless `name` (and `version`, when given) is it."""
    if name != MODEL_NAME:
        raise UnknownModel(f"no model is named {_quoted(name)}; this server serves {MODEL_NAME!r}")
    if version is not None and version != model.version:
        raise UnknownModel(
            f"{MODEL_NAME} has no version {_quoted(version)} here; the served version is "
            f"{model.version!r}"
        )


def model_metadata(model: LoadedModel) -> dict[str, object]:
    """The protocol's model metadata, from the session itself: names, datatypes and shapes
    (a dynamic dimension is -1), plus the digit output this server derives."""
    return {
        "name": MODEL_NAME,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [_tensor(item) for item in model.session.get_inputs()],
        "outputs": [
            *(_tensor(item) for item in model.session.get_outputs()),
            {"name": DIGIT_OUTPUT, "datatype": "INT64", "shape": [-1]},
        ],
    }


def _tensor(item) -> dict[str, object]:
    return {
        "name": item.name,
        "datatype": V2_DATATYPES.get(item.type, item.type),
        "shape": [size if isinstance(size, int) and size >= 0 else -1 for size in item.shape],
    }


def _quoted(text: str) -> str:
    """A name from the URL, shortened: an error names it without echoing a long path back."""
    return repr(text if len(text) <= 64 else text[:64] + "...")
