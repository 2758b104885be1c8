"""Keras -> ONNX, with the names, shapes and metadata of the model contract."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import onnx
import tensorflow as tf
import tf2onnx

from functions.model_contract import (
    BATCH_DIM,
    INPUT_NAME,
    INPUT_SHAPE,
    OUTPUT_NAME,
    missing_metadata,
)

OPSET = 17


def convert_to_onnx(model: keras.Model, path: str | os.PathLike) -> onnx.ModelProto:
    """Convert through a tf.function with an input signature (tf2onnx's `from_keras` fails on
    Keras 3), then give the graph the contract's input and output names and a named batch dim."""
    signature = [tf.TensorSpec([None, *INPUT_SHAPE], tf.float32, name=INPUT_NAME)]

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
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ValueError("expected a graph with exactly one input and one output")
    _rename_value(graph, graph.input[0].name, INPUT_NAME)
    _rename_value(graph, graph.output[0].name, OUTPUT_NAME)
    for value in (graph.input[0], graph.output[0]):
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
