"""Keras -> ONNX, with the names, shapes and metadata of the model contract."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import onnx
import tensorflow as tf
import tf2onnx

from conversion.network import LOGITS_LAYER, NOT_DIGIT_CLASS, is_not_digit_model
from functions.model_contract import (
    BATCH_DIM,
    INPUT_NAME,
    INPUT_SHAPE,
    NOT_DIGIT_NAME,
    OUTPUT_NAME,
    missing_metadata,
)

OPSET = 17


def convert_to_onnx(model: keras.Model, path: str | os.PathLike) -> onnx.ModelProto:
    """Convert through a tf.function with an input signature (tf2onnx's `from_keras` fails on
    Keras 3), then give the graph the contract's input and output names and a named batch dim.

    A model with the eleventh class gets the contract's two outputs, both made of its logits
    with the contract's operators (Slice, Softmax, Gather): `probabilities`, the softmax of the
    ten digits' logits (the eleven-way softmax's first ten renormalised, without dividing by a
    sum that can underflow), and `not_digit`, the eleventh probability of the eleven-way
    softmax."""
    signature = [tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)]

    if is_not_digit_model(model):
        logits_model = keras.Model(model.inputs, model.get_layer(LOGITS_LAYER).output)

        @tf.function(input_signature=signature)
        def serve(pixels):
            logits = logits_model(pixels, training=False)
            probabilities = tf.nn.softmax(logits[:, :NOT_DIGIT_CLASS], axis=-1)
            not_digit = tf.nn.softmax(logits, axis=-1)[:, NOT_DIGIT_CLASS]
            return probabilities, not_digit

    else:

        @tf.function(input_signature=signature)
        def serve(pixels):
            return model(pixels, training=False)

    onnx_model, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET)
    _name_interface(onnx_model)
    onnx.checker.check_model(onnx_model)
    save(onnx_model, path)
    return onnx_model


def set_metadata(onnx_model: onnx.ModelProto, metadata: dict[str, str]) -> None:
    missing = missing_metadata(metadata)
    if missing:
        raise ValueError(f"model metadata lacks {', '.join(missing)}")
    del onnx_model.metadata_props[:]
    for key, value in metadata.items():
        onnx_model.metadata_props.add(key=key, value=str(value))


def save(onnx_model: onnx.ModelProto, path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, str(path))


def _name_interface(onnx_model: onnx.ModelProto) -> None:
    graph = onnx_model.graph
    if len(graph.input) != 1 or len(graph.output) not in (1, 2):
        raise ValueError("expected a graph with exactly one input and one or two outputs")
    _rename_value(graph, graph.input[0].name, INPUT_NAME)
    for value, name in zip(graph.output, (OUTPUT_NAME, NOT_DIGIT_NAME), strict=False):
        _rename_value(graph, value.name, name)
    for value in (graph.input[0], *graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_DIM


def _rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    if old == new:
        return
    for node in graph.node:
        node.input[:] = [new if name == old else name for name in node.input]
        node.output[:] = [new if name == old else name for name in node.output]
    for value in (*graph.input, *graph.output):
        if value.name == old:
            value.name = new
