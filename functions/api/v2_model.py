"""The served model as the Open Inference Protocol (KServe V2) names and describes it: one model
name for the family, whatever version is served, and metadata read from the loaded session."""

from __future__ import annotations

from functions.model_contract import OUTPUT_NAME, TENSOR_TYPE
from functions.serving.errors import UnknownModel
from functions.serving.loaded_model import LoadedModel

# The family of every version this app serves (versions are named mnist-cnn-<semver>). Fixed
# rather than derived from the served version's name: a client's URL must survive a promotion.
MODEL_NAME = "mnist-cnn"
PLATFORM = "onnxruntime_onnx"
# Ours, not the network's: the argmax of each row of probabilities, and the model's own rule.
DIGIT_OUTPUT = "digit"
IS_DIGIT_OUTPUT = "is_digit"
V2_DATATYPES = {TENSOR_TYPE: "FP32", "tensor(int64)": "INT64", "tensor(uint8)": "UINT8"}
# What infer can answer: the network's probabilities, and ours, one value per image.
OUTPUT_DATATYPES = {OUTPUT_NAME: "FP32", DIGIT_OUTPUT: "INT64", IS_DIGIT_OUTPUT: "BOOL"}


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
    (a dynamic dimension is -1) of its input and of the probabilities, plus the outputs this
    server derives: what infer can answer."""
    return {
        "name": MODEL_NAME,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [_tensor(item) for item in model.session.get_inputs()],
        "outputs": [
            *(_tensor(item) for item in model.session.get_outputs() if item.name == OUTPUT_NAME),
            *(
                {"name": name, "datatype": datatype, "shape": [-1]}
                for name, datatype in OUTPUT_DATATYPES.items()
                if name != OUTPUT_NAME
            ),
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
