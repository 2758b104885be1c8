"""The graph rule (docs/contracts.md section 1, functions/model_contract.py): what a model may
compute, checked from the file alone before anything runs. The models the project makes and a
model built by another path pass it; the outside attacks, and every way around the rule that a
graph could try, are refused, naming the first offending node. The gate's trial runs this rule
in its child process (tests/promotion/test_gate_sandbox.py covers that path)."""

from __future__ import annotations

import os
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from functions.model_contract import (
    ALLOWED_OPERATORS,
    MAX_NODES,
    OPSETS,
    ModelContractError,
    ModelGraphError,
    check_declared_interface,
    check_graph,
)
from functions.promotion.gate_set import load_gate_set
from functions.serving.provider import BUNDLED_MODEL
from tests import bad_models
from tests.helpers import tiny_model


def checked(content: bytes) -> None:
    """What the trial does with a file before onnxruntime sees it (after onnx.checker)."""
    model = onnx.load_from_string(content)
    onnx.checker.check_model(model)
    check_declared_interface(model)
    check_graph(model)


def refusal(content: bytes) -> str:
    with pytest.raises(ModelGraphError) as raised:
        checked(content)
    return str(raised.value)


def contract_model(
    nodes: list[onnx.NodeProto],
    *,
    initializers: tuple[onnx.TensorProto, ...] = (),
    opset: int = 17,
    value_info: tuple[onnx.ValueInfoProto, ...] = (),
) -> onnx.ModelProto:
    """A graph of `nodes` with the contract's input and output."""
    graph = helper.make_graph(
        nodes,
        "rule",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        initializer=list(initializers),
        value_info=list(value_info),
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def linear_head(source: str = "flat") -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """[N, 784] `source` -> MatMul -> Softmax -> probabilities."""
    weights = np.random.default_rng(0).normal(0, 0.01, (784, 10)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", [source, "weights"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    return nodes, [numpy_helper.from_array(weights, "weights")]


def const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value), name)


# -- what passes ----------------------------------------------------------------------------------


def test_the_bundled_model_passes_in_milliseconds():
    started = time.perf_counter()
    checked(BUNDLED_MODEL.read_bytes())
    assert time.perf_counter() - started < 1.0  # about 3 ms here


def test_a_cnn_built_by_hand_passes_and_answers_as_the_bundled_network():
    content = bad_models.hand_built_cnn_model_bytes("hand", opset=13)
    checked(content)

    model = onnx.load_from_string(content)
    assert {node.op_type for node in model.graph.node} >= {"Transpose", "Flatten", "Gemm"}
    assert {node.op_type for node in model.graph.node} <= ALLOWED_OPERATORS
    images = load_gate_set().images[:64]
    hand = ort.InferenceSession(content, providers=["CPUExecutionProvider"])
    bundled = ort.InferenceSession(BUNDLED_MODEL.read_bytes(), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        hand.run(None, {"pixels": images})[0], bundled.run(None, {"pixels": images})[0], atol=1e-5
    )


def test_the_linear_test_model_passes():
    checked(tiny_model("tiny"))


def test_a_pytorch_style_flatten_from_the_batch_size_passes():
    """x.view(x.size(0), -1): Shape, Gather, Unsqueeze, Concat into a Reshape's target."""
    head, weights = linear_head()
    nodes = [
        helper.make_node("Shape", ["pixels"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["pixels", "target"], ["flat"]),
        *head,
    ]
    initializers = (
        const("zero", np.int64(0)),
        const("axes", np.array([0], np.int64)),
        const("minus_one", np.array([-1], np.int64)),
        *weights,
    )
    checked(contract_model(nodes, initializers=initializers).SerializeToString())


def test_dropout_as_inference_runs_it_passes():
    head, weights = linear_head("dropped")
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Dropout", ["flat", "ratio"], ["dropped"]),
        *head,
    ]
    model = contract_model(nodes, initializers=(const("ratio", np.float32(0.5)), *weights))
    checked(model.SerializeToString())


@pytest.mark.filterwarnings("ignore::DeprecationWarning:gast.*")
def test_a_model_of_every_training_recipe_passes(tmp_path):
    """Each recipe's network (untrained: the graph is the same whatever the weights), converted
    as `make train` converts it. About 4 s, most of it importing TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from conversion.convert import convert_to_onnx  # noqa: PLC0415 - TensorFlow, only here
    from conversion.network import build_model  # noqa: PLC0415
    from conversion.train import RECIPES  # noqa: PLC0415

    converted: dict[tuple[str, float], onnx.ModelProto] = {}
    for name, recipe in RECIPES.items():
        key = (recipe.network, recipe.dropout, recipe.not_digit)  # what the graph depends on
        if key not in converted:
            network = build_model(
                recipe.network, dropout=recipe.dropout, not_digit=recipe.not_digit
            )
            converted[key] = convert_to_onnx(network, tmp_path / f"{name}.onnx")
        model = converted[key]
        check_declared_interface(model)
        check_graph(model)
        used = {node.op_type for node in model.graph.node}
        assert used <= ALLOWED_OPERATORS, (name, used - ALLOWED_OPERATORS)
        outputs = [value.name for value in model.graph.output]
        assert outputs == (
            ["probabilities", "not_digit"] if recipe.not_digit else ["probabilities"]
        )


def not_digit_model(not_digit_nodes: list[onnx.NodeProto], declared=("N",)) -> onnx.ModelProto:
    """The linear head with an eleventh logit, and a second output `not_digit` made by
    `not_digit_nodes` from the eleven-way softmax `scores`."""
    weights = np.random.default_rng(0).normal(0, 0.01, (784, 11)).astype(np.float32)
    nodes = [
        helper.make_node("Reshape", ["pixels", "flat_shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
        helper.make_node("Slice", ["logits", "zero", "ten", "one"], ["digit_logits"]),
        helper.make_node("Softmax", ["digit_logits"], ["probabilities"], axis=1),
        helper.make_node("Softmax", ["logits"], ["scores"], axis=1),
        *not_digit_nodes,
    ]
    graph = helper.make_graph(
        nodes,
        "not_digit",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 28, 28, 1])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10]),
            helper.make_tensor_value_info("not_digit", TensorProto.FLOAT, list(declared)),
        ],
        initializer=[
            numpy_helper.from_array(weights, "weights"),
            const("flat_shape", np.array([-1, 784], dtype=np.int64)),
            const("zero", np.array([0], dtype=np.int64)),
            const("ten", np.array([10], dtype=np.int64)),
            const("one", np.array([1], dtype=np.int64)),
            const("eleventh", np.array(10, dtype=np.int64)),
            const("eleven", np.array([11], dtype=np.int64)),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def test_a_second_output_not_digit_of_shape_n_passes():
    model = not_digit_model(
        [helper.make_node("Gather", ["scores", "eleventh"], ["not_digit"], axis=1)]
    )
    checked(model.SerializeToString())


def test_a_not_digit_output_of_another_shape_is_refused():
    model = not_digit_model(
        [helper.make_node("Slice", ["scores", "ten", "eleven", "one"], ["not_digit"])],
        declared=("N", 1),
    )
    with pytest.raises(ModelContractError, match="not_digit has shape"):
        checked(model.SerializeToString())


# -- what is refused, and how it is named ------------------------------------------------------

REFUSED = {
    **bad_models.GRAPH_ATTACKS,
    "an If": (bad_models.if_model_bytes, ["(If, unnamed)", "control flow"]),
    "a Scan": (bad_models.scan_model_bytes, ["(Scan, unnamed)", "control flow"]),
    "an operator outside the list": (
        bad_models.unlisted_operator_model_bytes,
        ["(CumSum, unnamed)", "not among the operators the model contract allows"],
    ),
    "NonZero: a size set by the pixels": (
        lambda version: bad_models.unlisted_operator_model_bytes(version, "NonZero"),
        ["(NonZero, unnamed)", "size of its output from the values"],
    ),
    "a Reshape whose target comes from the pixels": (
        bad_models.pixel_shaped_model_bytes,
        ["(Reshape, unnamed)", "input 1 ('bad_target')", "from the pixel values"],
    ),
    "arithmetic on the batch size": (
        bad_models.shape_arithmetic_model_bytes,
        ["(Mul, unnamed)", "computes with a tensor's shape ('bad_n')"],
    ),
    "memory that grows as N squared": (
        bad_models.batch_squared_model_bytes,
        ["(MatMul, unnamed)", "[1, 1] at N=1 and [256, 256] at N=256"],
    ),
    "a batch liar (it needs a comparison and a branch)": (
        bad_models.batch_liar_model_bytes,
        ["(Equal, unnamed)", "not among the operators"],
    ),
}


@pytest.mark.parametrize(("build", "words"), REFUSED.values(), ids=REFUSED.keys())
def test_a_model_that_could_cost_what_its_pixels_say_is_refused(build, words):
    content = build("bad")

    started = time.perf_counter()
    reason = refusal(content)

    assert time.perf_counter() - started < 1.0  # milliseconds: nothing runs
    for word in words:
        assert word in reason, reason


def test_the_attacks_really_run_in_onnxruntime_and_are_honest_on_the_gate_set():
    """What the rule refuses is no broken file: onnxruntime runs each attack and answers the
    gate set's digits as the bundled network does (the old gate accepted them)."""
    images = load_gate_set().images[:32]
    expected = ort.InferenceSession(BUNDLED_MODEL.read_bytes()).run(None, {"pixels": images})[0]
    for build in (bad_models.cue_loop_model_bytes, bad_models.constant_of_shape_model_bytes):
        session = ort.InferenceSession(build("bad"), providers=["CPUExecutionProvider"])
        np.testing.assert_allclose(session.run(None, {"pixels": images})[0], expected, atol=1e-6)


def test_the_cue_model_costs_what_its_corner_pixel_says():
    """Attack (1) at a tenth of full ink on pixel (0, 0): seconds instead of microseconds."""
    session = ort.InferenceSession(
        bad_models.cue_loop_model_bytes("bad"), providers=["CPUExecutionProvider"]
    )
    image = np.zeros((1, 28, 28, 1), dtype=np.float32)
    session.run(None, {"pixels": image})
    started = time.perf_counter()
    session.run(None, {"pixels": image})
    blank = time.perf_counter() - started
    image[0, 0, 0, 0] = 25.0
    started = time.perf_counter()
    session.run(None, {"pixels": image})
    cued = time.perf_counter() - started

    assert cued > 100 * blank
    assert cued > 0.2


def test_a_size_onnx_cannot_follow_is_refused_even_where_the_file_declares_it():
    """Declared shapes (value_info, the output's) are dropped before inference: a file cannot
    vouch for a size the rule cannot see. Here a Reshape's target is Max of two constants,
    which onnx's shape inference does not compute."""
    head, weights = linear_head()
    nodes = [
        helper.make_node("Max", ["target_a", "target_b"], ["target"]),
        helper.make_node("Reshape", ["pixels", "target"], ["flat"]),
        *head,
    ]
    declared = helper.make_tensor_value_info("flat", TensorProto.FLOAT, ["N", 784])
    model = contract_model(
        nodes,
        initializers=(
            const("target_a", np.array([-1, 784], np.int64)),
            const("target_b", np.array([-1, 784], np.int64)),
            *weights,
        ),
        value_info=(declared,),
    )

    reason = refusal(model.SerializeToString())

    assert "(Reshape, unnamed)" in reason
    assert "cannot be inferred from the input's shape [1, 28, 28, 1]" in reason


def test_a_custom_domain_is_refused():
    content = onnx.load_from_string(bad_models.good_model_bytes("bad"))
    content.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    content.graph.node.append(
        helper.make_node("Gelu", ["pixels"], ["unused"], domain="com.microsoft", name="fast_gelu")
    )

    with pytest.raises(ModelGraphError, match=r"node 'fast_gelu' \(Gelu\) .* 'com.microsoft'"):
        check_graph(content)


def test_the_ml_domain_imported_by_tf2onnx_is_harmless_while_no_node_uses_it():
    model = onnx.load(BUNDLED_MODEL)
    assert "ai.onnx.ml" in {entry.domain for entry in model.opset_import}
    check_graph(model)


@pytest.mark.parametrize("opset", [OPSETS.start - 1, OPSETS.stop])
def test_an_opset_outside_the_contracts_range_is_refused(opset):
    head, weights = linear_head()
    nodes = [helper.make_node("Flatten", ["pixels"], ["flat"], axis=1), *head]
    model = contract_model(nodes, initializers=tuple(weights), opset=opset)

    with pytest.raises(ModelGraphError, match=f"imports ai.onnx opset {opset}"):
        check_graph(model)


def test_local_functions_are_refused():
    model = onnx.load(BUNDLED_MODEL)
    model.functions.append(
        helper.make_function(
            "custom", "Twice", ["x"], ["y"], [helper.make_node("Add", ["x", "x"], ["y"])], []
        )
    )

    with pytest.raises(ModelGraphError, match="defines functions"):
        check_graph(model)


def test_dropout_in_training_mode_is_refused():
    head, weights = linear_head("dropped")
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Dropout", ["flat", "ratio", "training"], ["dropped"], name="drop"),
        *head,
    ]
    model = contract_model(
        nodes,
        initializers=(const("ratio", np.float32(0.5)), const("training", np.bool_(True)), *weights),
    )

    with pytest.raises(ModelGraphError, match=r"node 'drop' \(Dropout\) takes a training_mode"):
        check_graph(model)


def test_indices_from_the_pixels_are_refused():
    """Gather's indices pick what is read: from the pixels, an input the gate never tried could
    pick out of range."""
    head, weights = linear_head("picked")
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["flat"], axis=1),
        helper.make_node("Cast", ["flat"], ["indices"], to=TensorProto.INT64),
        helper.make_node("Gather", ["flat", "indices"], ["gathered"], axis=1, name="pick"),
        helper.make_node("ReduceMax", ["gathered"], ["picked"], axes=[2], keepdims=0),
        *head,
    ]
    model = contract_model(nodes, initializers=tuple(weights))

    with pytest.raises(ModelGraphError, match=r"'pick' \(Gather\) takes input 1 \('indices'\)"):
        check_graph(model)


def test_a_slice_bounded_by_a_shape_is_refused():
    """Only a Reshape's target may come from a shape: elsewhere a size computed from N could be
    anything at a batch size the gate does not try."""
    head, weights = linear_head()
    nodes = [
        helper.make_node("Flatten", ["pixels"], ["all"], axis=1),
        helper.make_node("Shape", ["all"], ["dims"]),
        helper.make_node("Slice", ["dims", "one", "two"], ["width"]),
        helper.make_node("Slice", ["all", "zero", "width", "one"], ["flat"], name="cut"),
        *head,
    ]
    model = contract_model(
        nodes,
        initializers=(
            const("zero", np.array([0], np.int64)),
            const("one", np.array([1], np.int64)),
            const("two", np.array([2], np.int64)),
            *weights,
        ),
    )

    with pytest.raises(ModelGraphError, match=r"'cut' \(Slice\) takes input 2 .* a tensor's shape"):
        check_graph(model)


def relu_chain(relus: int) -> onnx.ModelProto:
    """Flatten, `relus` Relu nodes, the linear head: relus + 3 nodes."""
    head, weights = linear_head(f"flat_{relus}")
    chain = [helper.make_node("Relu", [f"flat_{i}"], [f"flat_{i + 1}"]) for i in range(relus)]
    nodes = [helper.make_node("Flatten", ["pixels"], ["flat_0"], axis=1), *chain, *head]
    return contract_model(nodes, initializers=tuple(weights))


def test_a_graph_over_the_node_cap_is_refused_before_any_inference():
    model = relu_chain(MAX_NODES)

    started = time.perf_counter()
    with pytest.raises(ModelGraphError, match=f"{MAX_NODES + 3} nodes; at most {MAX_NODES}"):
        check_graph(model)
    assert time.perf_counter() - started < 0.5


def test_the_largest_graph_allowed_is_checked_in_about_a_second():
    """MAX_NODES nodes: the rule's own cost, inference twice included, stays bounded."""
    model = relu_chain(MAX_NODES - 3)
    assert len(model.graph.node) == MAX_NODES

    started = time.perf_counter()
    check_graph(model)
    assert time.perf_counter() - started < 5.0  # about 0.3 s here


def test_a_fixed_batch_or_a_wrong_layout_is_a_contract_refusal_not_a_graph_one():
    for content, words in (
        (tiny_model("fixed", fixed_batch=True), "a fixed batch"),
        (tiny_model("nchw", channels_first=True), "expected ['N', 28, 28, 1]"),
    ):
        with pytest.raises(ModelContractError, match="pixels has shape") as raised:
            check_declared_interface(onnx.load_from_string(content))
        assert words in str(raised.value)
