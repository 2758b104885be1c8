"""Real ONNX files, built by code, that honour the model contract's interface (input `pixels`
float [N, 28, 28, 1], output `probabilities` float [N, 10], the metadata of docs/contracts.md
section 1) and misbehave in one way each. Most wrap the bundled network, so they are accurate:
the gate must refuse them for what they do, not for a poor score on the gate set.

The graph rule (functions/model_contract.py) refuses many of them before they run: control
flow, randomness, operators outside the contract's list, sizes set by pixel values. The models
that test the trial's own limits (time, memory, batches) are built from allowed operators only,
with every shape fixed by the batch size: they pass the graph rule and meet those limits.
`hand_built_cnn_model_bytes` is the bundled network built again by hand, as another converter
would write it: it passes every check.

A plain module (no fixtures): the gate's tests, the promotion tests and the soak script use it.
"""

from __future__ import annotations

import time
from collections import Counter
from functools import cache

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from functions.model_contract import IS_DIGIT_RULE_KEY, NOT_DIGIT_NAME, OUTPUT_NAME
from functions.promotion.gate_set import load_gate_set
from functions.serving.provider import BUNDLED_MODEL

INT64_MAX = np.iinfo(np.int64).max
OPSET = 17
OUTPUTS = (OUTPUT_NAME, NOT_DIGIT_NAME)
INNER = "bad_inner_probabilities"  # the bundled network's own output, before a misdeed


def good_model_bytes(version: str) -> bytes:
    """The bundled network under another version name: passes every check of the gate."""
    return _finish(_bundled(), version)


def with_digit_rule_bytes(version: str, rule: str | None) -> bytes:
    """The bundled network declaring another `is_digit_rule` (None: no rule at all, as the
    files made before the rule; every image is then a digit)."""
    model = _bundled()
    kept = [prop for prop in model.metadata_props if prop.key != IS_DIGIT_RULE_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    if rule is not None:
        model.metadata_props.add(key=IS_DIGIT_RULE_KEY, value=rule)
    return _finish(model, version)


def misreading_model_bytes(version: str, misread: int) -> bytes:
    """The bundled network reading each of the digits 0..misread-1 as the next one (its
    probabilities' columns rotated among them): a weaker model by about misread tenths of the
    gate set, that still tells a digit from what is not one."""
    model = _bundled()
    order = np.arange(10)
    order[:misread] = np.roll(order[:misread], 1)
    _add(model, _const("bad_misread_order", order.astype(np.int64)))
    model.graph.node.append(
        helper.make_node("Gather", [INNER, "bad_misread_order"], ["probabilities"], axis=1)
    )
    return _finish(model, version)


def not_digit_mixer_model_bytes(version: str) -> bytes:
    """Its not_digit is half the image's own and half the batch's mean: for one image alone the
    bundled network's, in a batch whatever the others make it (noise passes for a digit beside
    digits). Only allowed operators; the gate's batch check must see it."""
    model = _bundled()
    for node in model.graph.node:
        node.output[:] = ["bad_own" if name == NOT_DIGIT_NAME else name for name in node.output]
    _add(model, _const("bad_half", np.array(0.5, dtype=np.float32)))
    model.graph.node.extend(
        [
            helper.make_node("ReduceMean", ["bad_own"], ["bad_mean"], axes=[0], keepdims=1),
            helper.make_node("Add", ["bad_own", "bad_mean"], ["bad_sum"]),
            helper.make_node("Mul", ["bad_sum", "bad_half"], [NOT_DIGIT_NAME]),
        ]
    )
    return _finish(model, version)


def never_ending_model_bytes(version: str) -> bytes:
    """A Loop with no end (trip count INT64_MAX, condition always true) whose result is added,
    times zero, to the probabilities: any inference spins for good. The graph rule refuses it
    (control flow) before it runs."""
    model = _bundled()
    ink = _ink_scalar(model, "bad_ink")
    _add(model, _const("bad_no_end", np.array(INT64_MAX, dtype=np.int64)))
    _add(model, _const("bad_true", np.array(True)))
    model.graph.node.append(
        helper.make_node(
            "Loop", ["bad_no_end", "bad_true", ink], ["bad_spun"], body=_counting_body()
        )
    )
    return _finish(_plus_zero_times(model, "bad_spun"), version)


def slow_model_bytes(version: str, seconds_per_run: float) -> bytes:
    """About `seconds_per_run` per inference whatever the batch size: a fixed chain of large
    matrix products (calibrated roughly on this machine, once per process). No loop: every
    shape is fixed, so the graph rule lets it through and the trial's time limits meet it."""
    steps = max(1, round(seconds_per_run / _seconds_per_step()))
    return _finish(_slow(steps), version)


def allocation_bomb_model_bytes(version: str, elements_per_image: int = 1 << 20) -> bytes:
    """Widens each image to `elements_per_image` floats (4 MiB per image by default) inside
    the graph, then reduces it away: the output is right, the memory is N x 4 MiB. Every shape
    is fixed by N ([N, elements_per_image]): it passes the graph rule, the trial measures it."""
    model = _bundled()
    _add(model, _const("bad_axes_image", np.array([1, 2, 3], dtype=np.int64)))
    _add(model, _const("bad_column", np.array([-1, 1], dtype=np.int64)))
    _add(model, _const("bad_ones", np.ones((1, elements_per_image), dtype=np.float32)))
    _add(model, _const("bad_axis_1", np.array([1], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("ReduceSum", ["pixels", "bad_axes_image"], ["bad_ink4"]),
            helper.make_node("Reshape", ["bad_ink4", "bad_column"], ["bad_ink_column"]),
            helper.make_node("MatMul", ["bad_ink_column", "bad_ones"], ["bad_expanded"]),
            helper.make_node("ReduceSum", ["bad_expanded", "bad_axis_1"], ["bad_reduced"]),
        ]
    )
    return _finish(_plus_zero_times(model, "bad_reduced"), version)


def external_data_model_bytes(version: str, location: str, *, where: str = "initializer") -> bytes:
    """The bundled network with its largest weight tensor stored outside the file, at the
    relative `location` (the bytes it expects there: `external_data_payload()`). With
    where="subgraph" that tensor is instead the value of a Constant inside an If branch."""
    model = _bundled()
    largest = max(model.graph.initializer, key=lambda tensor: numpy_helper.to_array(tensor).size)
    if where == "initializer":
        _make_external(largest, location)
    elif where == "subgraph":
        tensor = numpy_helper.from_array(numpy_helper.to_array(largest), "bad_value")
        _make_external(tensor, location)
        branch = helper.make_graph(
            [helper.make_node("Constant", [], ["bad_branch_out"], value=tensor)],
            "bad_branch",
            [],
            [helper.make_tensor_value_info("bad_branch_out", TensorProto.FLOAT, None)],
        )
        _add(model, _const("bad_true", np.array(True)))
        model.graph.node.extend(
            [
                helper.make_node(
                    "If", ["bad_true"], ["bad_branch_value"], then_branch=branch, else_branch=branch
                ),
                helper.make_node("ReduceSum", ["bad_branch_value"], ["bad_branch_sum"], keepdims=0),
            ]
        )
        return _finish(_plus_zero_times(model, "bad_branch_sum"), version)
    else:
        raise ValueError(f"where is 'initializer' or 'subgraph', not {where!r}")
    return _finish(model, version, check=False)


def external_data_payload() -> bytes:
    """What the file at an external-data model's `location` must hold for it to run right."""
    model = _bundled()
    largest = max(model.graph.initializer, key=lambda tensor: numpy_helper.to_array(tensor).size)
    return numpy_helper.to_array(largest).tobytes()


def batch_liar_model_bytes(version: str) -> bytes:
    """Right for the batch sizes that warm-up and the old gate used (1, 8, 1000 and the gate
    set's size); for any other batch it answers one row only. It needs an If to tell: the graph
    rule refuses it; serving's own check of every answer is tested with it."""
    model = _bundled()
    honest = sorted({1, 8, 1000, len(load_gate_set().labels)})
    _add(model, _const("bad_honest_sizes", np.array(honest, dtype=np.int64)))
    _add(model, _const("bad_first", np.array([0], dtype=np.int64)))
    _add(model, _const("bad_one", np.array([1], dtype=np.int64)))
    truthful = helper.make_graph(
        [helper.make_node("Identity", [INNER], ["bad_told"])],
        "bad_truthful",
        [],
        [helper.make_tensor_value_info("bad_told", TensorProto.FLOAT, None)],
    )
    lying = helper.make_graph(
        [helper.make_node("Slice", [INNER, "bad_first", "bad_one", "bad_first"], ["bad_lied"])],
        "bad_lying",
        [],
        [helper.make_tensor_value_info("bad_lied", TensorProto.FLOAT, None)],
    )
    model.graph.node.extend(
        [
            helper.make_node("Shape", ["pixels"], ["bad_n"], start=0, end=1),
            helper.make_node("Equal", ["bad_honest_sizes", "bad_n"], ["bad_matches"]),
            helper.make_node("Cast", ["bad_matches"], ["bad_matches_int"], to=TensorProto.INT64),
            helper.make_node("ReduceMax", ["bad_matches_int"], ["bad_any"], keepdims=0),
            helper.make_node("Cast", ["bad_any"], ["bad_is_honest"], to=TensorProto.BOOL),
            helper.make_node(
                "If",
                ["bad_is_honest"],
                ["probabilities"],
                then_branch=truthful,
                else_branch=lying,
            ),
        ]
    )
    return _finish(model, version)


def batch_mixer_model_bytes(version: str) -> bytes:
    """The right number of rows for every batch, but each row is half the image's own answer and
    half the batch's mean: alone it is the bundled network, in company it is not."""
    model = _bundled()
    _add(model, _const("bad_half", np.array(0.5, dtype=np.float32)))
    model.graph.node.extend(
        [
            helper.make_node("ReduceMean", [INNER], ["bad_mean"], axes=[0], keepdims=1),
            helper.make_node("Add", [INNER, "bad_mean"], ["bad_sum"]),
            helper.make_node("Mul", ["bad_sum", "bad_half"], ["probabilities"]),
        ]
    )
    return _finish(model, version)


def nan_on_cue_model_bytes(version: str, value: float = float("nan")) -> bytes:
    """The bundled network, but every probability of an image whose top-left pixel is inked is
    `value` (NaN by default, or an infinity). No MNIST digit touches that corner, so the gate
    set sees an honest model: only serving meets the cue."""
    model = _bundled()
    _add(model, _const("bad_corner_starts", np.array([0, 0, 0, 0], dtype=np.int64)))
    _add(model, _const("bad_corner_ends", np.array([INT64_MAX, 1, 1, 1], dtype=np.int64)))
    _add(model, _const("bad_flat", np.array([-1, 1], dtype=np.int64)))
    _add(model, _const("bad_value", np.array(value, dtype=np.float32)))
    _add(model, _const("bad_zero", np.array(0.0, dtype=np.float32)))
    model.graph.node.extend(
        [
            helper.make_node(
                "Slice", ["pixels", "bad_corner_starts", "bad_corner_ends"], ["bad_corner4"]
            ),
            helper.make_node("Reshape", ["bad_corner4", "bad_flat"], ["bad_corner"]),
            helper.make_node("Greater", ["bad_corner", "bad_zero"], ["bad_cued"]),
            helper.make_node("Where", ["bad_cued", "bad_value", INNER], ["probabilities"]),
        ]
    )
    return _finish(model, version)


# -- what the graph rule refuses before anything runs -----------------------------------------
# Each is the bundled network, accurate on every gate-set image, with a misdeed that only an
# input the gate never tries (or a draw of chance) sets off.

# Trips of the cue model's loop per unit of the top-left pixel's ink: at 255, some 10^6 trips
# of a 64 x 64 matrix product (about 4 s here; the outside attack's took 24 s).
CUE_TRIPS_PER_INK = 4000.0
# Pixel (0, 1) inked sends the loop this many trips: it never ends.
ENDLESS_TRIPS = 9.0e18


def cue_loop_model_bytes(version: str) -> bytes:
    """The outside attack (1): a Loop whose trip count comes from the top-left pixels. Pixel
    (0, 0) buys CUE_TRIPS_PER_INK trips per unit of ink (255: seconds of work), pixel (0, 1)
    inked at all an endless loop. No MNIST digit touches that corner: the gate set and the
    latency runs (a blank image) cost nothing, and the old gate accepted it."""
    model = _bundled()
    _corner(model, "bad_ink00", row=0, column=0)
    _corner(model, "bad_ink01", row=0, column=1)
    _add(model, _const("bad_per_ink", np.array(CUE_TRIPS_PER_INK, dtype=np.float32)))
    _add(model, _const("bad_one", np.array(1.0, dtype=np.float32)))
    _add(model, _const("bad_endless", np.array(ENDLESS_TRIPS, dtype=np.float32)))
    _add(model, _const("bad_true", np.array(True)))
    model.graph.node.extend(
        [
            helper.make_node("Mul", ["bad_ink00", "bad_per_ink"], ["bad_paid"]),
            helper.make_node("Min", ["bad_ink01", "bad_one"], ["bad_cued"]),
            helper.make_node("Mul", ["bad_cued", "bad_endless"], ["bad_forever"]),
            helper.make_node("Max", ["bad_paid", "bad_forever"], ["bad_trips_float"]),
            helper.make_node("Cast", ["bad_trips_float"], ["bad_trips"], to=TensorProto.INT64),
        ]
    )
    return _finish(_looping(model, "bad_trips", "bad_ink00"), version)


def random_loop_model_bytes(version: str, one_in: int = 300) -> bytes:
    """The outside attack (2): an unseeded RandomUniform sends one inference in `one_in` into a
    Loop that never ends; the others cost nothing. A trial's 50 or so inferences all miss it
    more often than not: the old gate accepted it in 8 of 12 tries, timing out on the rest."""
    model = _bundled()
    ink = _ink_scalar(model, "bad_ink")
    _add(model, _const("bad_odds", np.array(1.0 / one_in, dtype=np.float32)))
    _add(model, _const("bad_endless", np.array(ENDLESS_TRIPS * one_in, dtype=np.float32)))
    _add(model, _const("bad_cap", np.array(ENDLESS_TRIPS, dtype=np.float32)))
    _add(model, _const("bad_true", np.array(True)))
    model.graph.node.extend(
        [
            helper.make_node("RandomUniform", [], ["bad_draws"], shape=[1], dtype=1),
            helper.make_node("ReduceMax", ["bad_draws"], ["bad_draw"], keepdims=0),
            helper.make_node("Sub", ["bad_odds", "bad_draw"], ["bad_margin"]),
            helper.make_node("Relu", ["bad_margin"], ["bad_unlucky"]),  # > 0 one time in 300
            helper.make_node("Mul", ["bad_unlucky", "bad_endless"], ["bad_trips_raw"]),
            helper.make_node("Min", ["bad_trips_raw", "bad_cap"], ["bad_trips_float"]),
            helper.make_node("Cast", ["bad_trips_float"], ["bad_trips"], to=TensorProto.INT64),
        ]
    )
    return _finish(_looping(model, "bad_trips", ink), version)


# Floats per unit of pixel (0, 2)'s ink: at 255, about 1 GB (the outside attack's 1,052 MB).
BLOAT_FLOATS_PER_INK = 1_000_000.0


def constant_of_shape_model_bytes(version: str) -> bytes:
    """The outside attack (3): ConstantOfShape sized by pixel (0, 2): inked at 255 it fills
    about 1 GB (BLOAT_FLOATS_PER_INK per unit), then reduces it away; blank, nothing."""
    model = _bundled()
    _corner(model, "bad_ink02", row=0, column=2)
    _add(model, _const("bad_per_ink", np.array(BLOAT_FLOATS_PER_INK, dtype=np.float32)))
    _add(model, _const("bad_vector", np.array([1], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("Mul", ["bad_ink02", "bad_per_ink"], ["bad_floats"]),
            helper.make_node("Cast", ["bad_floats"], ["bad_count"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["bad_count", "bad_vector"], ["bad_size"]),
            helper.make_node(
                "ConstantOfShape",
                ["bad_size"],
                ["bad_bloat"],
                value=numpy_helper.from_array(np.array([1.0], dtype=np.float32)),
            ),
            helper.make_node("ReduceSum", ["bad_bloat"], ["bad_bloat_sum"], keepdims=0),
        ]
    )
    return _finish(_plus_zero_times(model, "bad_bloat_sum"), version)


def if_model_bytes(version: str) -> bytes:
    """A branch on the pixels: an image with more than 10^6 units of ink (none has: 784 x 255
    is 199,920) would take the other branch. Both branches answer the same here."""
    model = _bundled()
    ink = _ink_scalar(model, "bad_ink")
    _add(model, _const("bad_threshold", np.array(1e6, dtype=np.float32)))
    model.graph.node.extend(
        [
            helper.make_node("Sub", [ink, "bad_threshold"], ["bad_excess"]),
            helper.make_node("Relu", ["bad_excess"], ["bad_over"]),
            helper.make_node("Cast", ["bad_over"], ["bad_heavy"], to=TensorProto.BOOL),
            helper.make_node(
                "If",
                ["bad_heavy"],
                ["probabilities"],
                then_branch=_passing_on("bad_then"),
                else_branch=_passing_on("bad_else"),
            ),
        ]
    )
    return _finish(model, version)


def scan_model_bytes(version: str) -> bytes:
    """A Scan over the rows of the batch's summed image: 28 steps, each adding a row."""
    model = _bundled()
    _add(model, _const("bad_axes_batch", np.array([0, 3], dtype=np.int64)))
    _add(model, _const("bad_row_start", np.zeros(28, dtype=np.float32)))
    body = helper.make_graph(
        [helper.make_node("Add", ["sum_in", "row"], ["sum_out"])],
        "bad_summing",
        [
            helper.make_tensor_value_info("sum_in", TensorProto.FLOAT, [28]),
            helper.make_tensor_value_info("row", TensorProto.FLOAT, [28]),
        ],
        [helper.make_tensor_value_info("sum_out", TensorProto.FLOAT, [28])],
    )
    model.graph.node.extend(
        [
            helper.make_node("ReduceSum", ["pixels", "bad_axes_batch"], ["bad_image"], keepdims=0),
            helper.make_node(
                "Scan", ["bad_row_start", "bad_image"], ["bad_rows"], body=body, num_scan_inputs=1
            ),
            helper.make_node("ReduceSum", ["bad_rows"], ["bad_rows_sum"], keepdims=0),
        ]
    )
    return _finish(_plus_zero_times(model, "bad_rows_sum"), version)


def unlisted_operator_model_bytes(version: str, operator: str = "CumSum") -> bytes:
    """A standard operator outside the contract's list (CumSum over the probabilities, times
    zero). `operator`="NonZero": the indices of the inked pixels, a tensor whose size is the
    number of inked pixels."""
    model = _bundled()
    if operator == "CumSum":
        _add(model, _const("bad_axis", np.array(1, dtype=np.int64)))
        model.graph.node.append(helper.make_node("CumSum", [INNER, "bad_axis"], ["bad_odd"]))
        return _finish(_plus_zero_times(model, "bad_odd"), version)
    if operator != "NonZero":
        raise ValueError(f"operator is 'CumSum' or 'NonZero', not {operator!r}")
    model.graph.node.extend(
        [
            helper.make_node("NonZero", ["pixels"], ["bad_inked"]),
            helper.make_node("Cast", ["bad_inked"], ["bad_inked_float"], to=TensorProto.FLOAT),
            helper.make_node("ReduceSum", ["bad_inked_float"], ["bad_count"], keepdims=0),
        ]
    )
    return _finish(_plus_zero_times(model, "bad_count"), version)


def pixel_shaped_model_bytes(version: str) -> bytes:
    """A Reshape whose target is computed from the pixel values: the batch's [N, 784] pixels
    reshaped to [-1, k] with k = 1 + pixel (0, 3) as an integer (1 for every MNIST digit; a
    stranger's k decides the shape, or fails the inference)."""
    model = _bundled()
    _corner(model, "bad_ink03", row=0, column=3)
    _add(model, _const("bad_one", np.array(1.0, dtype=np.float32)))
    _add(model, _const("bad_flat", np.array([-1], dtype=np.int64)))
    _add(model, _const("bad_vector", np.array([1], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("Add", ["bad_ink03", "bad_one"], ["bad_width_float"]),
            helper.make_node("Cast", ["bad_width_float"], ["bad_width"], to=TensorProto.INT64),
            helper.make_node("Reshape", ["bad_width", "bad_vector"], ["bad_width_1"]),
            helper.make_node("Concat", ["bad_flat", "bad_width_1"], ["bad_target"], axis=0),
            helper.make_node("Reshape", ["pixels", "bad_target"], ["bad_reshaped"]),
            helper.make_node("ReduceSum", ["bad_reshaped"], ["bad_reshaped_sum"], keepdims=0),
        ]
    )
    return _finish(_plus_zero_times(model, "bad_reshaped_sum"), version)


def shape_arithmetic_model_bytes(version: str) -> bytes:
    """Computes with the batch size: the probabilities reshaped to [2N, 5] (N read with Shape,
    times 2), then back. Harmless here, but sizes computed from N could be anything at a batch
    size the gate does not try."""
    model = _bundled()
    _add(model, _const("bad_first", np.array([0], dtype=np.int64)))
    _add(model, _const("bad_two", np.array([2], dtype=np.int64)))
    _add(model, _const("bad_five", np.array([5], dtype=np.int64)))
    _add(model, _const("bad_rows_of_ten", np.array([-1, 10], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("Shape", [INNER], ["bad_shape"]),
            helper.make_node("Gather", ["bad_shape", "bad_first"], ["bad_n"]),
            helper.make_node("Mul", ["bad_n", "bad_two"], ["bad_2n"]),
            helper.make_node("Concat", ["bad_2n", "bad_five"], ["bad_target"], axis=0),
            helper.make_node("Reshape", [INNER, "bad_target"], ["bad_halves"]),
            helper.make_node("Reshape", ["bad_halves", "bad_rows_of_ten"], ["probabilities"]),
        ]
    )
    return _finish(model, version)


def batch_squared_model_bytes(version: str) -> bytes:
    """Memory that grows as N squared: each image's ink times every other's, an [N, N] matrix
    (a batch of 256: 256 KiB; of 65,536 it would be 16 GiB). Only allowed operators, but two
    dimensions grow with N."""
    model = _bundled()
    _add(model, _const("bad_axes_image", np.array([1, 2, 3], dtype=np.int64)))
    _add(model, _const("bad_column", np.array([-1, 1], dtype=np.int64)))
    _add(model, _const("bad_axis_1", np.array([1], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("ReduceSum", ["pixels", "bad_axes_image"], ["bad_ink4"]),
            helper.make_node("Reshape", ["bad_ink4", "bad_column"], ["bad_ink_column"]),
            helper.make_node("Transpose", ["bad_ink_column"], ["bad_ink_row"], perm=[1, 0]),
            helper.make_node("MatMul", ["bad_ink_column", "bad_ink_row"], ["bad_square"]),
            helper.make_node("ReduceSum", ["bad_square", "bad_axis_1"], ["bad_square_sum"]),
        ]
    )
    return _finish(_plus_zero_times(model, "bad_square_sum"), version)


# -- a good model from another converter ------------------------------------------------------


def hand_built_cnn_model_bytes(version: str, opset: int = 13) -> bytes:
    """The bundled network's weights in a graph built by hand with onnx.helper, the way
    PyTorch's exporter writes a CNN: channels-first after one Transpose, Conv, Relu, MaxPool,
    Flatten, Gemm, then the bundled network's two heads, at another opset. It must pass every
    check, graph rule included, and answers as the bundled network does."""
    bundled = onnx.load_from_string(_bundled_bytes())
    weights = {tensor.name: tensor for tensor in bundled.graph.initializer}
    # The logits: the one tensor both heads read (a Slice then Softmax, and a Softmax).
    readers = Counter(name for node in bundled.graph.node for name in node.input)
    logits = next(
        node.output[0]
        for node in reversed(bundled.graph.node)
        if node.op_type == "Add" and readers[node.output[0]] == 2
    )
    nodes: list[onnx.NodeProto] = []
    used: list[str] = []
    current = "pixels"
    pending_matmul: tuple[str, str] | None = None

    def emit(op: str, inputs: list[str], **attributes) -> None:
        nonlocal current
        output = f"hand_{len(nodes)}"
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attributes))
        used.extend(name for name in inputs if name in weights)
        current = output

    head: dict[str, str] = {}  # past the logits: the bundled network's names -> ours
    for node in bundled.graph.node:
        op = node.op_type
        if head:  # the two heads (probabilities and not_digit), node for node
            inputs = [head.get(name, name) for name in node.input]
            used.extend(name for name in inputs if name in weights)
            outputs = [name if name in OUTPUTS else f"hand_{len(nodes)}" for name in node.output]
            head.update(zip(node.output, outputs, strict=True))
            nodes.append(
                helper.make_node(
                    op,
                    inputs,
                    outputs,
                    name=f"hand_{len(nodes)}",
                    **{a.name: helper.get_attribute_value(a) for a in node.attribute},
                )
            )
        elif op in ("Mul", "Add") and pending_matmul is None and node.input[1] in weights:
            emit(op, [current, node.input[1]])  # the scaling to 0..1 (the first two nodes)
        elif op == "Reshape" and node.input[1] in weights:
            emit("Transpose", [current], perm=[0, 3, 1, 2])  # NHWC -> NCHW, as PyTorch has it
        elif op in ("Conv", "MaxPool"):
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            emit(op, [current, *node.input[1:]], **attributes)
        elif op == "Relu":
            emit("Relu", [current])
        elif op == "Transpose":
            emit("Transpose", [current], perm=[0, 2, 3, 1])  # back to Keras's flattening order
        elif op == "Reshape":
            emit("Flatten", [current], axis=1)
        elif op == "MatMul":
            pending_matmul = (current, node.input[1])
        elif op == "Add" and pending_matmul is not None:
            emit("Gemm", [*pending_matmul, node.input[1]])
            pending_matmul = None
            if node.output[0] == logits:
                head[logits] = current
        # Shape, Gather, Cast, Slice, Concat: tf2onnx's way to the flattening target; unneeded
    graph = helper.make_graph(
        nodes,
        "hand_built_cnn",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("not_digit", TensorProto.FLOAT, ["N"]),
        ],
        initializer=[weights[name] for name in dict.fromkeys(used)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    for prop in bundled.metadata_props:
        value = "onnx.helper, by hand" if prop.key == "framework" else prop.value
        model.metadata_props.add(key=prop.key, value=version if prop.key == "version" else value)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


# -- building blocks ---------------------------------------------------------------------------


@cache
def _bundled_bytes() -> bytes:
    return BUNDLED_MODEL.read_bytes()


def _bundled() -> onnx.ModelProto:
    """The bundled network, its final output renamed INNER so a misdeed can sit after it."""
    model = onnx.load_from_string(_bundled_bytes())
    for node in model.graph.node:
        node.output[:] = [INNER if name == "probabilities" else name for name in node.output]
    return model


def _finish(model: onnx.ModelProto, version: str, *, check: bool = True) -> bytes:
    if not any(name == "probabilities" for node in model.graph.node for name in node.output):
        model.graph.node.append(helper.make_node("Identity", [INNER], ["probabilities"]))
    for prop in model.metadata_props:
        if prop.key == "version":
            prop.value = version
    if check:
        onnx.checker.check_model(model)
    return model.SerializeToString()


def _plus_zero_times(model: onnx.ModelProto, value: str) -> onnx.ModelProto:
    """probabilities = INNER + 0 * value: the misdeed runs on every call (it depends on the
    input, so no optimiser folds it away) and the answer stays the bundled network's."""
    _add(model, _const("bad_zero", np.array(0.0, dtype=np.float32)))
    model.graph.node.extend(
        [
            helper.make_node("Mul", [value, "bad_zero"], ["bad_nothing"]),
            helper.make_node("Add", [INNER, "bad_nothing"], ["probabilities"]),
        ]
    )
    return model


def _ink_scalar(model: onnx.ModelProto, name: str) -> str:
    model.graph.node.append(helper.make_node("ReduceSum", ["pixels"], [name], keepdims=0))
    return name


def _corner(model: onnx.ModelProto, name: str, *, row: int, column: int) -> str:
    """The largest ink of the batch at pixel (row, column): a scalar."""
    starts, ends = f"{name}_starts", f"{name}_ends"
    _add(model, _const(starts, np.array([0, row, column, 0], dtype=np.int64)))
    _add(model, _const(ends, np.array([INT64_MAX, row + 1, column + 1, 1], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("Slice", ["pixels", starts, ends], [f"{name}_4d"]),
            helper.make_node("ReduceMax", [f"{name}_4d"], [name], keepdims=0),
        ]
    )
    return name


LOOP_SIDE = 64  # one trip of a looping model: a 64 x 64 matrix product and a tanh


def _looping(model: onnx.ModelProto, trips: str, seed: str) -> onnx.ModelProto:
    """A Loop of `trips` trips (condition always true) on a state that starts from the scalar
    `seed`, its result added times zero to the probabilities."""
    step = np.random.default_rng(0).normal(0, 0.1, (LOOP_SIDE, LOOP_SIDE)).astype(np.float32)
    _add(model, _const("bad_loop_start", np.zeros((LOOP_SIDE, LOOP_SIDE), dtype=np.float32)))
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Constant", [], ["step"], value=numpy_helper.from_array(step)),
            helper.make_node("MatMul", ["state_in", "step"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
        ],
        "bad_grinding",
        [
            helper.make_tensor_value_info("trip", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [LOOP_SIDE, LOOP_SIDE]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [LOOP_SIDE, LOOP_SIDE]),
        ],
    )
    model.graph.node.extend(
        [
            helper.make_node("Add", ["bad_loop_start", seed], ["bad_loop_state"]),
            helper.make_node(
                "Loop", [trips, "bad_true", "bad_loop_state"], ["bad_loop_end"], body=body
            ),
            helper.make_node("ReduceSum", ["bad_loop_end"], ["bad_loop_sum"], keepdims=0),
        ]
    )
    return _plus_zero_times(model, "bad_loop_sum")


def _passing_on(name: str) -> onnx.GraphProto:
    """A branch that answers the bundled network's probabilities (from the enclosing graph)."""
    return helper.make_graph(
        [helper.make_node("Identity", [INNER], [f"{name}_out"])],
        name,
        [],
        [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, None)],
    )


def _counting_body() -> onnx.GraphProto:
    """Loop body: keep going (condition passed through), add one to the carried float."""
    return helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node(
                "Constant", [], ["one"], value=numpy_helper.from_array(np.array(1.0, np.float32))
            ),
            helper.make_node("Add", ["count_in", "one"], ["count_out"]),
        ],
        "bad_counting",
        [
            helper.make_tensor_value_info("trip", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("count_in", TensorProto.FLOAT, []),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("count_out", TensorProto.FLOAT, []),
        ],
    )


SLOW_SIDE = 2048  # one step: a 2048 x 2048 matrix squared, then a tanh (about 17 GFLOP)


def _slow(steps: int) -> onnx.ModelProto:
    model = _bundled()
    ink = _ink_scalar(model, "bad_ink")
    rng = np.random.default_rng(0)
    _add(model, _const("bad_column", rng.normal(0, 0.02, (SLOW_SIDE, 1)).astype(np.float32)))
    _add(model, _const("bad_row", rng.normal(0, 0.02, (1, SLOW_SIDE)).astype(np.float32)))
    _add(model, _const("bad_tiny", np.array(1e-6, dtype=np.float32)))
    model.graph.node.extend(
        [
            helper.make_node("Add", ["bad_column", "bad_row"], ["bad_start"]),
            helper.make_node("Mul", [ink, "bad_tiny"], ["bad_small_ink"]),
            # Depends on the input: no optimiser folds the chain away.
            helper.make_node("Add", ["bad_start", "bad_small_ink"], ["bad_state_0"]),
        ]
    )
    for step in range(steps):
        model.graph.node.extend(
            [
                helper.make_node(
                    "MatMul", [f"bad_state_{step}", f"bad_state_{step}"], [f"bad_product_{step}"]
                ),
                helper.make_node("Tanh", [f"bad_product_{step}"], [f"bad_state_{step + 1}"]),
            ]
        )
    model.graph.node.append(
        helper.make_node("ReduceSum", [f"bad_state_{steps}"], ["bad_end_sum"], keepdims=0)
    )
    return _plus_zero_times(model, "bad_end_sum")


@cache
def _seconds_per_step() -> float:
    """Time one step of the slow model's chain here, from two runs of different lengths (so the
    network itself cancels out), single-threaded as the app runs its sessions."""
    import onnxruntime as ort  # noqa: PLC0415 - only the slow model needs it

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    image = np.zeros((1, 28, 28, 1), dtype=np.float32)
    timings = []
    for steps in (2, 12):
        model = _slow(steps)
        model.metadata_props.clear()
        session = ort.InferenceSession(model.SerializeToString(), options)
        session.run(None, {"pixels": image})
        started = time.perf_counter()
        session.run(None, {"pixels": image})
        timings.append(time.perf_counter() - started)
    return max((timings[1] - timings[0]) / 10, 1e-4)


def _make_external(tensor: onnx.TensorProto, location: str) -> None:
    length = numpy_helper.to_array(tensor).nbytes
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    del tensor.external_data[:]
    for key, value in (("location", location), ("offset", "0"), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def _add(model: onnx.ModelProto, tensor: onnx.TensorProto) -> None:
    model.graph.initializer.append(tensor)


# The models whose cost follows their pixels, as the outside attack built them, and the words
# a graph refusal of each names (tests/promotion: the graph rule alone, and the whole gate).
GRAPH_ATTACKS = {
    "the outside attack (1): a Loop counted by pixels": (
        cue_loop_model_bytes,
        ["(Loop, unnamed)", "control flow"],
    ),
    "the outside attack (2): RandomUniform and a Loop": (
        random_loop_model_bytes,
        ["(RandomUniform, unnamed)", "random"],
    ),
    "the outside attack (3): ConstantOfShape sized by a pixel": (
        constant_of_shape_model_bytes,
        ["(ConstantOfShape, unnamed)", "size of its output from the values"],
    ),
    "a Loop that never ends": (never_ending_model_bytes, ["(Loop", "control flow"]),
}
