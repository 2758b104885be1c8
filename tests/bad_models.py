"""Real ONNX files, built by code, that honour the model contract's interface (input `pixels`
float [N, 28, 28, 1], output `probabilities` float [N, 10], the metadata of docs/contracts.md
section 1) and misbehave in one way each. Most wrap the bundled network, so they are accurate:
the gate must refuse them for what they do, not for a poor score on the gate set.

A plain module (no fixtures): the gate's tests, the promotion tests and the soak script use it.
"""

from __future__ import annotations

import time
from functools import cache

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from functions.promotion.gate_set import load_gate_set
from functions.serving.provider import BUNDLED_MODEL

INT64_MAX = np.iinfo(np.int64).max
OPSET = 17
INNER = "bad_inner_probabilities"  # the bundled network's own output, before a misdeed


def good_model_bytes(version: str) -> bytes:
    """The bundled network under another version name: passes every check of the gate."""
    return _finish(_bundled(), version)


def never_ending_model_bytes(version: str) -> bytes:
    """A Loop with no end (trip count INT64_MAX, condition always true) whose result is added,
    times zero, to the probabilities: any inference spins for good."""
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
    """A finite Loop of matrix products, about `seconds_per_run` per inference whatever the
    batch size (calibrated roughly on this machine, once per process)."""
    trips = max(1, round(seconds_per_run / _seconds_per_trip()))
    return _finish(_slow(trips), version)


def allocation_bomb_model_bytes(version: str, elements_per_image: int = 1 << 20) -> bytes:
    """Expands each image to `elements_per_image` floats (4 MiB per image by default) inside
    the graph, then reduces it away: the output is right, the memory is N x 4 MiB."""
    model = _bundled()
    _add(model, _const("bad_axes_image", np.array([1, 2, 3], dtype=np.int64)))
    _add(model, _const("bad_column", np.array([-1, 1], dtype=np.int64)))
    _add(model, _const("bad_wide", np.array([elements_per_image], dtype=np.int64)))
    _add(model, _const("bad_axis_1", np.array([1], dtype=np.int64)))
    model.graph.node.extend(
        [
            helper.make_node("ReduceSum", ["pixels", "bad_axes_image"], ["bad_ink4"]),
            helper.make_node("Reshape", ["bad_ink4", "bad_column"], ["bad_ink_column"]),
            helper.make_node("Shape", ["pixels"], ["bad_n"], start=0, end=1),
            helper.make_node("Concat", ["bad_n", "bad_wide"], ["bad_target"], axis=0),
            helper.make_node("Expand", ["bad_ink_column", "bad_target"], ["bad_expanded"]),
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
    set's size); for any other batch it answers one row only."""
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


SLOW_SIDE = 128  # one trip: a 128x128 matrix product and a tanh


def _slow(trips: int) -> onnx.ModelProto:
    model = _bundled()
    ink = _ink_scalar(model, "bad_ink")
    rng = np.random.default_rng(0)
    start = rng.normal(0, 0.1, (SLOW_SIDE, SLOW_SIDE)).astype(np.float32)
    step = rng.normal(0, 0.1, (SLOW_SIDE, SLOW_SIDE)).astype(np.float32)
    _add(model, _const("bad_start", start))
    _add(model, _const("bad_trips", np.array(trips, dtype=np.int64)))
    _add(model, _const("bad_true", np.array(True)))
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
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [SLOW_SIDE, SLOW_SIDE]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [SLOW_SIDE, SLOW_SIDE]),
        ],
    )
    model.graph.node.extend(
        [
            helper.make_node("Add", ["bad_start", ink], ["bad_state"]),  # depends on the input
            helper.make_node(
                "Loop", ["bad_trips", "bad_true", "bad_state"], ["bad_end"], body=body
            ),
            helper.make_node("ReduceSum", ["bad_end"], ["bad_end_sum"], keepdims=0),
        ]
    )
    return _plus_zero_times(model, "bad_end_sum")


@cache
def _seconds_per_trip() -> float:
    """Time one trip of the slow model's loop here, from two runs of different lengths (so the
    network itself cancels out), single-threaded as the app runs its sessions."""
    import onnxruntime as ort  # noqa: PLC0415 - only the slow model needs it

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    image = np.zeros((1, 28, 28, 1), dtype=np.float32)
    timings = []
    for trips in (50, 1050):
        model = _slow(trips)
        model.metadata_props.clear()
        session = ort.InferenceSession(model.SerializeToString(), options)
        session.run(None, {"pixels": image})
        started = time.perf_counter()
        session.run(None, {"pixels": image})
        timings.append(time.perf_counter() - started)
    return max((timings[1] - timings[0]) / 1000, 1e-5)


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
