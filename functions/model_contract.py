"""The model contract (contracts.md section 1) in one place: the input and output names, shapes,
dtype and metadata keys every model file carries, and opening a file and checking its interface.
Training writes to it, the gate's trial and serving check against it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import onnxruntime as ort

from functions.errors import AppError

INPUT_NAME = "pixels"
OUTPUT_NAME = "probabilities"
INPUT_SHAPE = (28, 28, 1)  # after the batch dimension
MAX_BATCH = 256  # the largest batch a model answers, and the API's largest
NUM_CLASSES = 10
# The optional second output: float32 [N], the probability that an image is not a digit.
NOT_DIGIT_NAME = "not_digit"
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
# How the model decides that an image is a digit (optional; see DigitRule):
# "not_digit < T" or "confidence >= T", T a decimal in (0, 1].
IS_DIGIT_RULE_KEY = "is_digit_rule"


class UnusableModel(AppError):
    """A model file that cannot serve, or a served model that failed on a request; the message
    names what is wrong."""


class ModelLoadError(UnusableModel):
    """onnxruntime cannot load the file at all (not ONNX, truncated, unknown operators)."""


class ModelContractError(UnusableModel):
    """The file loads but breaks the model contract (names, dtypes, shapes)."""


class ModelOutputError(UnusableModel):
    """A loaded model answered a batch with another shape than one row of 10 per image, or
    with a row that is no probabilities (a value NaN, infinite or outside [0, 1], or a sum
    other than 1): its answer is not used, whatever the gate saw."""


class InferenceTimeout(UnusableModel):
    """A run went on past its bound, and onnxruntime ended it (functions/serving/watchdog.py).
    `starved`: it had not spent its CPU bound when its wall-clock limit came (the instance was
    busy): no fault of the model."""

    def __init__(self, message: str, *, starved: bool = False) -> None:
        super().__init__(message)
        self.starved = starved


class ModelRunError(UnusableModel):
    """onnxruntime failed while running the model on this input (it loaded and was warmed up)."""


def session_options() -> ort.SessionOptions:
    # One intra-op thread: measured here, single-image p99 drops from about 8 ms to under 1 ms,
    # and concurrent requests already spread over the worker's threads.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    # No memory arena: what a run allocates goes back to the system when it ends. With the arena,
    # a model that allocated 1 GiB for one crafted input kept the process 1052 MiB larger for
    # good; without, it was back within 1 MiB (tests/serving/test_serving_watchdog.py). Measured
    # here: single images as fast (0.074 ms), batches of 256 within 1%; the arena's shrinkage option
    # gave the memory back too, but cost batches of 256 a third of their throughput.
    options.enable_cpu_mem_arena = False
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
    names = [item.name for item in outputs]
    if names not in ([OUTPUT_NAME], [OUTPUT_NAME, NOT_DIGIT_NAME]):
        raise ModelContractError(
            f"outputs are {names}; expected {[OUTPUT_NAME]} or {[OUTPUT_NAME, NOT_DIGIT_NAME]}"
        )
    expected_tails = [list(INPUT_SHAPE), [NUM_CLASSES], []]
    for item, expected_tail in zip((inputs[0], *outputs), expected_tails, strict=False):
        if item.type != TENSOR_TYPE:
            raise ModelContractError(f"{item.name} is {item.type}; expected {TENSOR_TYPE}")
        if len(item.shape) != 1 + len(expected_tail) or list(item.shape[1:]) != expected_tail:
            expected = [BATCH_DIM, *expected_tail]
            raise ModelContractError(f"{item.name} has shape {item.shape}; expected {expected}")


def missing_metadata(metadata: dict[str, str]) -> list[str]:
    """The required metadata keys that `metadata` lacks, in the contract's order."""
    return [key for key in REQUIRED_METADATA if key not in metadata]


class ModelOutputs(NamedTuple):
    """A model's answer for a batch: `probabilities` (n, 10), and `not_digit` (n,), the
    probability that each image is not a digit, or None when the model has no such output."""

    probabilities: np.ndarray
    not_digit: np.ndarray | None


def output_names(session: ort.InferenceSession) -> tuple[str, ...]:
    """The contract's outputs that the (checked) session has, in the order ModelOutputs takes
    them: `probabilities`, then `not_digit` where the model has it."""
    names = {item.name for item in session.get_outputs()}
    return (OUTPUT_NAME, NOT_DIGIT_NAME) if NOT_DIGIT_NAME in names else (OUTPUT_NAME,)


def run_inference(
    session: ort.InferenceSession,
    images: np.ndarray,
    run_options: ort.RunOptions | None = None,
) -> ModelOutputs:
    """The contract's one inference: (n, 28, 28, 1) float32 in, the (n, 10) probabilities and,
    where the model has it, the (n,) not_digit out. `run_options` lets another thread end the
    run (serving's watchdog sets `terminate`)."""
    values = session.run(list(output_names(session)), {INPUT_NAME: images}, run_options)
    return ModelOutputs(values[0], values[1] if len(values) > 1 else None)


def check_not_digit(values: np.ndarray, count: int) -> None:
    """ModelOutputError unless `values` is the `not_digit` output for `count` images: shape
    (count,), every value finite and in [0, 1]."""
    if values.shape != (count,):
        raise ModelOutputError(
            f"answered {count} image(s) with a {NOT_DIGIT_NAME} output of shape "
            f"{list(values.shape)}; expected [{count}]"
        )
    # NaN fails both comparisons, and an infinity the one on its side.
    if count and not (values.min() >= 0.0 and values.max() <= 1.0):
        raise ModelOutputError(
            f"the model answered a {NOT_DIGIT_NAME} outside [0, 1] (from "
            f"{float(values.min()):.4g} to {float(values.max()):.4g}; NaN if not a number)"
        )


# -- Is it a digit? The rule a model declares in its metadata (IS_DIGIT_RULE_KEY) -------------

DIGIT_SCORES = (NOT_DIGIT_NAME, "confidence")
_RULE_PATTERN = re.compile(r"(not_digit) < ([0-9]*\.?[0-9]+)|(confidence) >= ([0-9]*\.?[0-9]+)")


@dataclass(frozen=True)
class DigitRule:
    """How a model tells a digit from what is not one, as its metadata declares it:
    score "not_digit": a digit when the `not_digit` output is under `threshold`;
    score "confidence": a digit when the largest of `probabilities` is at least `threshold`."""

    score: str
    threshold: float

    def __post_init__(self) -> None:
        if self.score not in DIGIT_SCORES:
            raise ModelContractError(f"a digit rule's score is one of {DIGIT_SCORES}")
        if not (math.isfinite(self.threshold) and 0.0 < self.threshold <= 1.0):
            raise ModelContractError(
                f"a digit rule's threshold is in (0, 1]; this one is {self.threshold!r}"
            )

    def is_digit(self, probabilities: np.ndarray, not_digit: np.ndarray | None) -> np.ndarray:
        """One bool per image: True where the image is taken for a digit."""
        if self.score == NOT_DIGIT_NAME:
            if not_digit is None:
                raise ModelContractError(
                    f"the rule {self} needs the model's {NOT_DIGIT_NAME!r} output"
                )
            return np.asarray(not_digit) < self.threshold
        return np.asarray(probabilities).max(axis=1) >= self.threshold

    def __str__(self) -> str:
        operator = "<" if self.score == NOT_DIGIT_NAME else ">="
        return f"{self.score} {operator} {self.threshold:g}"


def digit_rule(metadata: dict, output_names) -> DigitRule | None:
    """The rule a model's metadata declares (IS_DIGIT_RULE_KEY), checked against the model's
    output names; None when it declares none (every image is a digit, as models made before
    the rule). ModelContractError for a malformed rule or one naming an absent output."""
    text = metadata.get(IS_DIGIT_RULE_KEY)
    if text is None:
        return None
    found = _RULE_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if found is None:
        raise ModelContractError(
            f"{IS_DIGIT_RULE_KEY} is {text!r}; expected 'not_digit < T' or 'confidence >= T', "
            "T a decimal in (0, 1]"
        )
    score = found.group(1) or found.group(3)
    threshold = float(found.group(2) or found.group(4))
    rule = DigitRule(score, threshold)
    if score == NOT_DIGIT_NAME and NOT_DIGIT_NAME not in list(output_names):
        raise ModelContractError(
            f"{IS_DIGIT_RULE_KEY} {text!r} names the output {NOT_DIGIT_NAME!r}, which the model "
            "does not have"
        )
    return rule


# Each row of an answer sums to 1 within this (float32 softmax rows: within about 1e-6); the
# gate's trial holds a candidate to the same tolerance.
ROW_SUM_TOLERANCE = 1e-3


def check_probabilities(probabilities: np.ndarray, count: int) -> None:
    """ModelOutputError unless `probabilities` is the contract's answer for `count` images: one
    row of NUM_CLASSES per image, every value finite and in [0, 1], each row summing to 1
    within ROW_SUM_TOLERANCE. Serving checks every answer so: a model that passed the gate may
    still answer an input it was never tried on with values that are no probabilities."""
    if probabilities.shape != (count, NUM_CLASSES):
        raise ModelOutputError(
            f"answered {count} image(s) with an output of shape {list(probabilities.shape)}; "
            f"expected [{count}, {NUM_CLASSES}]"
        )
    # Sums in float64: 10 float32 values cannot overflow them, and NaN or infinity carry through
    # (NaN fails every comparison, and an infinity the one on its side).
    sums = probabilities.sum(axis=1, dtype=np.float64)
    if (
        np.abs(sums - 1.0).max() <= ROW_SUM_TOLERANCE
        and probabilities.min() >= 0.0
        and probabilities.max() <= 1.0
    ):
        return
    raise ModelOutputError(_not_probabilities(probabilities, sums))


def _not_probabilities(values: np.ndarray, sums: np.ndarray) -> str:
    if not (np.all(np.isfinite(values)) and np.all(np.isfinite(sums))):
        return "the model answered a probability that is NaN or infinite"
    return (
        "the model answered a row that is not probabilities: values from "
        f"{float(values.min()):.4g} to {float(values.max()):.4g}, rows summing to "
        f"{float(sums.min()):.4g} to {float(sums.max()):.4g} (each value must be in [0, 1] and "
        f"each row sum to 1 within {ROW_SUM_TOLERANCE})"
    )


# -- What a model may compute: the graph rule (contracts.md section 1, "Bounded cost") --------
#
# The gate's trial measures a model on the inputs it tries. That measure holds for every input
# only if nothing the model spends depends on the pixel values: no loop, branch or scan, no
# random draw, and no tensor whose size is set by what the pixels hold. So before anything runs,
# the file's graph must keep to the rule below; it is checked from the file alone (onnx, no
# onnxruntime), first thing in the trial's child process.

GRAPH_DOMAINS = ("", "ai.onnx")  # the standard operators; every other domain is refused
# The ai.onnx opsets a model may import: from 11 (the first in which every operator below takes
# its sizes and axes where the table SETTING_INPUTS says) to 21 (what the pinned onnx and
# onnxruntime were reviewed against). tf2onnx writes 13 to 18 (ours: 17), PyTorch's exporters
# 17 or 18.
OPSETS = range(11, 22)
# Everything our converter (tf2onnx from Keras) writes for every recipe, and what a CNN from
# another trainer (PyTorch's exporters, keras2onnx, a graph built by hand) reasonably uses. Each
# one's work and output size follow from the shapes and constants it is given, never from the
# values it reads.
ALLOWED_OPERATORS = frozenset(
    {
        # moving and reshaping tensors
        "Cast",
        "Concat",
        "Constant",
        "Flatten",
        "Gather",
        "Identity",
        "Pad",
        "Reshape",
        "Shape",
        "Slice",
        "Squeeze",
        "Transpose",
        "Unsqueeze",
        # convolutions, pooling, dense layers
        "AveragePool",
        "Conv",
        "Gemm",
        "GlobalAveragePool",
        "GlobalMaxPool",
        "MatMul",
        "MaxPool",
        # normalisation, and dropout as inference runs it (it passes its input on)
        "BatchNormalization",
        "Dropout",
        "GroupNormalization",
        "InstanceNormalization",
        "LayerNormalization",
        # arithmetic, element by element
        "Abs",
        "Add",
        "Clip",
        "Div",
        "Erf",
        "Exp",
        "Log",
        "Max",
        "Min",
        "Mul",
        "Neg",
        "Pow",
        "Reciprocal",
        "Sqrt",
        "Sub",
        # activations and the output
        "Elu",
        "Gelu",
        "HardSigmoid",
        "HardSwish",
        "LeakyRelu",
        "LogSoftmax",
        "PRelu",
        "Relu",
        "Selu",
        "Sigmoid",
        "Softmax",
        "Softplus",
        "Softsign",
        "Tanh",
        # reductions over constant axes
        "ReduceMax",
        "ReduceMean",
        "ReduceSum",
    }
)
CONTROL_FLOW_OPERATORS = frozenset({"If", "Loop", "Scan"})
RANDOM_OPERATORS = frozenset(
    {
        "Bernoulli",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
    }
)
# Standard operators whose output's size (or work) is set by the values of an input: out of the
# list, named in the refusal for what they do.
VALUE_SIZED_OPERATORS = frozenset(
    {
        "Compress",
        "ConstantOfShape",
        "Expand",
        "NonMaxSuppression",
        "NonZero",
        "OneHot",
        "Range",
        "Resize",
        "StringSplit",
        "Tile",
        "TopK",
        "Unique",
        "Upsample",
    }
)
# The inputs (by position) of allowed operators that set a size, an axis, an index or a ratio
# rather than carry data. Each must be a constant: an initializer, a Constant node, or computed
# from those alone. Reshape's target may also be made of the dimensions of tensors (Shape, then
# only moved by SHAPE_CARRIERS): that is how converters flatten [N, ...] to [N, k].
SETTING_INPUTS: dict[str, frozenset[int]] = {
    "Dropout": frozenset({1, 2}),
    "Gather": frozenset({1}),
    "Pad": frozenset({1, 3}),
    "ReduceMax": frozenset({1}),
    "ReduceMean": frozenset({1}),
    "ReduceSum": frozenset({1}),
    "Reshape": frozenset({1}),
    "Slice": frozenset({1, 2, 3, 4}),
    "Squeeze": frozenset({1}),
    "Unsqueeze": frozenset({1}),
}
# What a tensor's dimensions (Shape's output) may pass through on their way to a Reshape: they
# are moved, never computed with.
SHAPE_CARRIERS = frozenset(
    {"Cast", "Concat", "Gather", "Identity", "Slice", "Squeeze", "Unsqueeze"}
)
# A CNN needs tens to a few thousand nodes; the rule's own cost grows with the count.
MAX_NODES = 10_000
# The batch sizes the shapes are inferred at: the smallest and the API's largest. Each
# dimension must be a constant or a constant times N at both, and at most one dimension of a
# tensor may grow with N: memory and time then grow at most linearly with the batch.
SHAPE_BATCHES = (1, 256)


class ModelGraphError(UnusableModel):
    """The file's graph breaks the graph rule: the message names the first offending node."""


# The three kinds of value the graph rule tells apart, in rising order of what they may not do.
_CONSTANT, _SHAPE, _PIXELS = 0, 1, 2


def check_declared_interface(model) -> None:
    """The contract's input and output as the file declares them (an onnx.ModelProto), before
    anything runs: ModelContractError, with check_interface's wording."""
    graph = model.graph
    initialized = {tensor.name for tensor in graph.initializer}
    initialized |= {sparse.values.name for sparse in graph.sparse_initializer}
    inputs = [value for value in graph.input if value.name not in initialized]
    if [value.name for value in inputs] != [INPUT_NAME]:
        raise ModelContractError(
            f"inputs are {[value.name for value in inputs]}; expected {[INPUT_NAME]}"
        )
    names = [value.name for value in graph.output]
    if names not in ([OUTPUT_NAME], [OUTPUT_NAME, NOT_DIGIT_NAME]):
        raise ModelContractError(
            f"outputs are {names}; expected {[OUTPUT_NAME]} or {[OUTPUT_NAME, NOT_DIGIT_NAME]}"
        )
    expected_tails = (INPUT_SHAPE, (NUM_CLASSES,), ())
    for value, expected_tail in zip((inputs[0], *graph.output), expected_tails, strict=False):
        expected = [BATCH_DIM, *expected_tail]
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or tensor.elem_type != _FLOAT:
            raise ModelContractError(f"{value.name} is not a float32 tensor; expected {expected}")
        dims = [_declared_dim(dim) for dim in tensor.shape.dim]
        if not tensor.HasField("shape") or len(dims) != len(expected) or dims[1:] != expected[1:]:
            raise ModelContractError(f"{value.name} has shape {dims}; expected {expected}")
        if isinstance(dims[0], int):
            raise ModelContractError(
                f"{value.name} has shape {dims}: a fixed batch; expected {expected}"
            )


_FLOAT = 1  # onnx.TensorProto.FLOAT, without importing onnx here


def _declared_dim(dim) -> int | str:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param or "?"


def check_graph(model) -> None:
    """The graph rule on an onnx.ModelProto that passed onnx.checker and check_declared_interface:
    ModelGraphError naming the first node that breaks it, and why. Bounded: one pass over at
    most MAX_NODES nodes, then onnx's shape inference twice on a graph of allowed operators."""
    graph = model.graph
    opsets = {entry.domain: entry.version for entry in model.opset_import}
    opset = opsets.get("", opsets.get("ai.onnx"))
    if opset not in OPSETS:
        raise ModelGraphError(
            f"the file imports ai.onnx opset {opset}; the contract allows {OPSETS.start} to "
            f"{OPSETS.stop - 1}"
        )
    if model.functions:
        raise ModelGraphError(
            f"the file defines functions ({', '.join(f.name for f in model.functions)}); "
            "only the contract's standard operators may run"
        )
    if len(graph.node) > MAX_NODES:
        raise ModelGraphError(f"the graph has {len(graph.node)} nodes; at most {MAX_NODES}")
    kinds = dict.fromkeys((tensor.name for tensor in graph.initializer), _CONSTANT)
    kinds.update((sparse.values.name, _CONSTANT) for sparse in graph.sparse_initializer)
    kinds.update((value.name, _PIXELS) for value in graph.input if value.name not in kinds)
    for index, node in enumerate(graph.node):
        _check_operator(node, index)
        kind = _check_inputs(node, index, kinds)
        kinds.update((name, kind) for name in node.output if name)
    _check_shapes(model)


def _node_label(node, index: int) -> str:
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    return f"node #{index} ({node.op_type}, unnamed)"


def _check_operator(node, index: int) -> None:
    label = _node_label(node, index)
    if node.domain not in GRAPH_DOMAINS:
        raise ModelGraphError(
            f"{label} is from the operator domain {node.domain!r}; only the standard ai.onnx "
            "operators are allowed"
        )
    if node.op_type in CONTROL_FLOW_OPERATORS:
        raise ModelGraphError(
            f"{label} is control flow: a loop, branch or scan can spend what the pixel values "
            "say, and no trial can measure that (Loop, If and Scan are refused)"
        )
    if node.op_type in RANDOM_OPERATORS:
        raise ModelGraphError(
            f"{label} draws random numbers: a model must answer the same input the same way, "
            "at the same cost"
        )
    if node.op_type in VALUE_SIZED_OPERATORS:
        raise ModelGraphError(
            f"{label} sets the size of its output from the values of an input: what it costs "
            "would depend on what the input holds"
        )
    if node.op_type not in ALLOWED_OPERATORS:
        raise ModelGraphError(
            f"{label} is not among the operators the model contract allows "
            "(functions/model_contract.py ALLOWED_OPERATORS)"
        )
    if any(attribute.type in _GRAPH_ATTRIBUTES for attribute in node.attribute):
        raise ModelGraphError(f"{label} holds a subgraph; no node may")
    if node.op_type == "Dropout" and len(node.input) > 2 and node.input[2]:
        raise ModelGraphError(
            f"{label} takes a training_mode input: in training mode dropout is random"
        )


_GRAPH_ATTRIBUTES = (5, 10)  # onnx.AttributeProto.GRAPH and GRAPHS


def _check_inputs(node, index: int, kinds: dict[str, int]) -> int:
    """Where the node's inputs come from: sizes from constants, the input's shape moved only
    into a Reshape's target. Returns the kind of its outputs."""
    settings = SETTING_INPUTS.get(node.op_type, frozenset())
    present = [(position, name) for position, name in enumerate(node.input) if name]
    for position, name in present:
        kind = kinds.get(name, _PIXELS)
        reshape_target = node.op_type == "Reshape" and position == 1
        if position in settings and kind == _PIXELS:
            raise ModelGraphError(
                f"{_node_label(node, index)} takes input {position} ({name!r}), which sets a "
                "size, axis or index, from the pixel values: it must be a constant"
            )
        if position in settings and kind == _SHAPE and not reshape_target:
            raise ModelGraphError(
                f"{_node_label(node, index)} takes input {position} ({name!r}), which sets a "
                "size, axis or index, from a tensor's shape: only a Reshape's target may be one"
            )
        if kind == _SHAPE and not (reshape_target or node.op_type in SHAPE_CARRIERS):
            raise ModelGraphError(
                f"{_node_label(node, index)} computes with a tensor's shape ({name!r}): a shape "
                f"may only be moved ({', '.join(sorted(SHAPE_CARRIERS))}) into a Reshape's target"
            )
    if node.op_type == "Constant":
        return _CONSTANT
    if node.op_type == "Shape":
        return _CONSTANT if kinds.get(node.input[0], _PIXELS) == _CONSTANT else _SHAPE
    return max((kinds.get(name, _PIXELS) for _, name in present), default=_CONSTANT)


def _check_shapes(model) -> None:
    """Every node's outputs get a shape from onnx's shape inference at each of SHAPE_BATCHES,
    from the input's shape alone (declared shapes in the file are dropped first, so that none
    can stand in for one inference did not find)."""
    at = {batch: _inferred_shapes(model, batch) for batch in SHAPE_BATCHES}
    first, last = SHAPE_BATCHES[0], SHAPE_BATCHES[-1]
    for index, node in enumerate(model.graph.node):
        for name in (name for name in node.output if name):
            shapes = [at[batch].get(name) for batch in SHAPE_BATCHES]
            for batch, shape in zip(SHAPE_BATCHES, shapes, strict=True):
                if shape is None or None in shape:
                    raise ModelGraphError(
                        f"{_node_label(node, index)}: the shape of its output {name!r} cannot "
                        f"be inferred from the input's shape [{batch}, 28, 28, 1] alone (found "
                        f"{shape}): every size must follow from the shapes, never the values"
                    )
            small, large = shapes[0], shapes[-1]
            growing = [
                axis for axis, (a, b) in enumerate(zip(small, large, strict=False)) if a != b
            ]
            proportional = all(large[axis] == small[axis] * last // first for axis in growing)
            if len(small) != len(large) or len(growing) > 1 or not proportional:
                raise ModelGraphError(
                    f"{_node_label(node, index)}: its output {name!r} has shape {small} at "
                    f"N={first} and {large} at N={last}; each dimension must be a constant or "
                    "a constant times N, and at most one may grow with N"
                )
    has_not_digit = any(value.name == NOT_DIGIT_NAME for value in model.graph.output)
    for batch in SHAPE_BATCHES:
        shape = at[batch].get(OUTPUT_NAME)
        if shape != [batch, NUM_CLASSES]:
            raise ModelGraphError(
                f"the output {OUTPUT_NAME!r} has shape {shape} for a batch of {batch}; "
                f"expected [{batch}, {NUM_CLASSES}]"
            )
        if has_not_digit and at[batch].get(NOT_DIGIT_NAME) != [batch]:
            raise ModelGraphError(
                f"the output {NOT_DIGIT_NAME!r} has shape {at[batch].get(NOT_DIGIT_NAME)} for a "
                f"batch of {batch}; expected [{batch}]"
            )


def _inferred_shapes(model, batch: int) -> dict[str, list[int | None] | None]:
    """name -> its dimensions (None where unknown; None for no shape at all) by onnx's shape
    inference (strict, types checked, shapes computed through Shape and the like), with the
    input's shape [batch, 28, 28, 1]."""
    import onnx  # noqa: PLC0415 - the app itself never imports onnx; only the trial does this

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    graph = copy.graph
    del graph.value_info[:]
    for value in graph.output:
        value.type.tensor_type.ClearField("shape")
    for value in graph.input:
        if value.name == INPUT_NAME:
            value.type.tensor_type.ClearField("shape")
            for size in (batch, *INPUT_SHAPE):
                value.type.tensor_type.shape.dim.add().dim_value = size
    try:
        inferred = onnx.shape_inference.infer_shapes(
            copy, check_type=True, strict_mode=True, data_prop=True
        )
    except Exception as error:  # InferenceError, ValidationError and their C++ relatives
        raise ModelGraphError(
            f"onnx's shape inference fails for the input's shape [{batch}, 28, 28, 1]: {error}"
        ) from error
    shapes: dict[str, list[int | None] | None] = {}
    for value in (*inferred.graph.value_info, *inferred.graph.output):
        tensor = value.type.tensor_type
        if not value.type.HasField("tensor_type") or not tensor.HasField("shape"):
            shapes[value.name] = None
            continue
        shapes[value.name] = [
            dim.dim_value if dim.HasField("dim_value") else None for dim in tensor.shape.dim
        ]
    return shapes
