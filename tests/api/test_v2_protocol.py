"""The Open Inference Protocol (KServe V2) surface, driven by Triton's own HTTP client against the
app served by the local host: health, metadata and inference in JSON and binary modes, on real
MNIST test digits whose labels are checked."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from functions.api.v2_model import MODEL_NAME

BATCH = 64


@pytest.fixture(scope="module")
def client(base_url):
    client = triton.InferenceServerClient(
        url=base_url.removeprefix("http://"), connection_timeout=30, network_timeout=60
    )
    yield client
    client.close()


@pytest.fixture(scope="module")
def served_version(client) -> str:
    return client.get_model_metadata(MODEL_NAME)["versions"][0]


@pytest.fixture(scope="module")
def digits(mnist):
    """The first BATCH test digits and their labels."""
    return mnist["x_test"][:BATCH], mnist["y_test"][:BATCH].astype(np.int64)


def pixels_input(images: np.ndarray, datatype: str, *, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput("pixels", list(images.shape), datatype)
    return tensor.set_data_from_numpy(images, binary_data=binary)


def infer(client, images, datatype, *, binary_in, binary_out, version=""):
    outputs = [
        triton.InferRequestedOutput("probabilities", binary_data=binary_out),
        triton.InferRequestedOutput("digit", binary_data=binary_out),
        triton.InferRequestedOutput("is_digit", binary_data=binary_out),
    ]
    return client.infer(
        MODEL_NAME,
        [pixels_input(images, datatype, binary=binary_in)],
        model_version=version,
        outputs=outputs,
        request_id="request-7",
    )


def test_server_is_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()


def test_server_metadata_names_the_binary_extension(client):
    metadata = client.get_server_metadata()
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_is_ready_under_its_name_and_served_version(client, served_version):
    assert client.is_model_ready(MODEL_NAME)
    assert client.is_model_ready(MODEL_NAME, served_version)
    assert not client.is_model_ready(MODEL_NAME, "0.0.0-not-served")
    assert not client.is_model_ready("resnet50")


def test_model_metadata_tells_the_truth(client, bundled, served_version):
    metadata = client.get_model_metadata(MODEL_NAME)
    assert served_version == bundled.version
    assert metadata == {
        "name": MODEL_NAME,
        "versions": [bundled.version],
        "platform": "onnxruntime_onnx",
        "inputs": [{"name": "pixels", "datatype": "FP32", "shape": [-1, 28, 28, 1]}],
        "outputs": [
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]},
            {"name": "digit", "datatype": "INT64", "shape": [-1]},
            {"name": "is_digit", "datatype": "BOOL", "shape": [-1]},
        ],
    }
    assert client.get_model_metadata(MODEL_NAME, served_version) == metadata


def test_metadata_of_another_version_is_a_404_naming_the_served_one(client, served_version):
    with pytest.raises(InferenceServerException) as raised:
        client.get_model_metadata(MODEL_NAME, "9.9.9")
    assert raised.value.status() == "404"
    assert served_version in raised.value.message()


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
@pytest.mark.parametrize("datatype", ["FP32", "UINT8"])
def test_batch_inference_classifies_real_digits(client, digits, datatype, binary_in, binary_out):
    images, labels = digits
    tensor = images.astype(np.float32 if datatype == "FP32" else np.uint8)[..., np.newaxis]
    result = infer(client, tensor, datatype, binary_in=binary_in, binary_out=binary_out)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32
    assert probabilities.shape == (BATCH, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    predicted = result.as_numpy("digit")
    assert predicted.dtype == np.int64
    np.testing.assert_array_equal(predicted, probabilities.argmax(axis=1))
    assert (predicted == labels).mean() >= 0.95  # the model's 99.5% on 64 digits
    is_digit = result.as_numpy("is_digit")
    assert (is_digit.dtype, is_digit.shape) == (np.bool_, (BATCH,))
    assert is_digit.mean() >= 0.95  # real digits: at most 1% are flagged
    response = result.get_response()
    assert response["model_name"] == MODEL_NAME
    assert response["id"] == "request-7"


@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 784), (1, 28, 28, 1)])
def test_single_image_in_every_accepted_shape(client, digits, served_version, shape):
    images, labels = digits
    tensor = images[:1].astype(np.float32).reshape(shape)
    result = infer(client, tensor, "FP32", binary_in=True, binary_out=True, version=served_version)
    assert result.as_numpy("digit").tolist() == [labels[0]]
    assert result.get_response()["model_version"] == served_version


def test_without_outputs_the_probabilities_come_back_in_binary(client, digits):
    images, labels = digits
    inputs = [pixels_input(images[:8].astype(np.uint8), "UINT8", binary=True)]
    result = client.infer(MODEL_NAME, inputs)
    assert [output["name"] for output in result.get_response()["outputs"]] == ["probabilities"]
    assert result.as_numpy("probabilities").argmax(axis=1).tolist() == labels[:8].tolist()


def test_json_and_binary_agree(client, digits):
    images, _ = digits
    tensor = images[:16].astype(np.float32)[..., np.newaxis]
    as_json = infer(client, tensor, "FP32", binary_in=False, binary_out=False)
    as_binary = infer(client, tensor, "FP32", binary_in=True, binary_out=True)
    np.testing.assert_allclose(
        as_json.as_numpy("probabilities"), as_binary.as_numpy("probabilities"), atol=1e-6
    )


@pytest.mark.parametrize(
    ("images", "datatype", "says"),
    [
        (np.zeros((1, 10), dtype=np.float32), "FP32", "must have shape"),
        (np.zeros((1, 28, 28, 1), dtype=np.float64), "FP64", "datatype FP32 or UINT8"),
        (np.zeros((1, 28, 28, 1), dtype=np.int32), "INT32", "datatype FP32 or UINT8"),
        (np.full((1, 784), 300, dtype=np.float32), "FP32", "outside 0..255"),
        (np.zeros((257, 784), dtype=np.uint8), "UINT8", "N from 1 to 256"),
    ],
    ids=["wrong shape", "FP64", "INT32", "out of range", "too many images"],
)
@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_wrong_shape_or_datatype_is_a_400_the_client_reports(
    client, images, datatype, says, binary
):
    with pytest.raises(InferenceServerException) as raised:
        client.infer(MODEL_NAME, [pixels_input(images, datatype, binary=binary)])
    assert raised.value.status() == "400"
    assert says in raised.value.message()


def test_an_unknown_model_is_a_404_naming_the_served_one(client, digits):
    images, _ = digits
    with pytest.raises(InferenceServerException) as raised:
        client.infer("resnet50", [pixels_input(images[:1], "UINT8", binary=True)])
    assert raised.value.status() == "404"
    assert MODEL_NAME in raised.value.message()
