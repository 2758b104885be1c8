"""The MNIST loader: npz files, IDX folders (plain and gzipped), and the errors it names."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from conversion.data import IDX_FILES, DatasetError, load_mnist

RNG = np.random.default_rng(0)


def small_arrays(train: int = 12, test: int = 5) -> dict[str, np.ndarray]:
    return {
        "x_train": RNG.integers(0, 256, (train, 28, 28), dtype=np.uint8),
        "y_train": RNG.integers(0, 10, train, dtype=np.uint8),
        "x_test": RNG.integers(0, 256, (test, 28, 28), dtype=np.uint8),
        "y_test": RNG.integers(0, 10, test, dtype=np.uint8),
    }


def idx_bytes(array: np.ndarray) -> bytes:
    if array.ndim == 3:
        header = struct.pack(">IIII", 0x00000803, *array.shape)
    else:
        header = struct.pack(">II", 0x00000801, array.shape[0])
    return header + array.tobytes()


def write_idx_folder(folder: Path, arrays: dict[str, np.ndarray], *, gzipped: bool) -> None:
    folder.mkdir(exist_ok=True)
    for key, stem in IDX_FILES.items():
        data = idx_bytes(arrays[key])
        if gzipped:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / stem).write_bytes(data)


def assert_same(loaded, arrays: dict[str, np.ndarray]) -> None:
    for key, expected in arrays.items():
        np.testing.assert_array_equal(getattr(loaded, key), expected)
        assert getattr(loaded, key).dtype == np.uint8


def test_loads_a_keras_format_npz(tmp_path):
    arrays = small_arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    loaded = load_mnist(tmp_path / "mnist.npz")
    assert_same(loaded, arrays)
    assert len(loaded.sha256) == 64


def test_reads_the_path_from_the_environment(tmp_path, monkeypatch):
    arrays = small_arrays()
    np.savez(tmp_path / "env.npz", **arrays)
    monkeypatch.setenv("MNIST_PATH", str(tmp_path / "env.npz"))
    assert_same(load_mnist(), arrays)


@pytest.mark.parametrize("gzipped", [False, True], ids=["plain", "gzip"])
def test_loads_an_idx_folder(tmp_path, gzipped):
    arrays = small_arrays()
    write_idx_folder(tmp_path / "idx", arrays, gzipped=gzipped)
    assert_same(load_mnist(tmp_path / "idx"), arrays)


def test_npz_and_idx_of_the_same_data_agree(tmp_path):
    arrays = small_arrays()
    np.savez(tmp_path / "mnist.npz", **arrays)
    write_idx_folder(tmp_path / "idx", arrays, gzipped=True)
    from_npz, from_idx = load_mnist(tmp_path / "mnist.npz"), load_mnist(tmp_path / "idx")
    for key in arrays:
        np.testing.assert_array_equal(getattr(from_npz, key), getattr(from_idx, key))


def test_missing_path_is_named(tmp_path):
    with pytest.raises(DatasetError, match=r"nowhere\.npz: no such file"):
        load_mnist(tmp_path / "nowhere.npz")


def test_corrupt_npz_is_named(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(DatasetError, match=r"broken\.npz: not a readable \.npz"):
        load_mnist(path)


def test_npz_missing_an_array_is_named(tmp_path):
    arrays = small_arrays()
    del arrays["y_test"]
    np.savez(tmp_path / "partial.npz", **arrays)
    with pytest.raises(DatasetError, match="missing arrays y_test"):
        load_mnist(tmp_path / "partial.npz")


def test_wrong_image_shape_is_named(tmp_path):
    arrays = small_arrays()
    arrays["x_train"] = np.zeros((12, 32, 32), dtype=np.uint8)
    np.savez(tmp_path / "shape.npz", **arrays)
    with pytest.raises(DatasetError, match=r"x_train has shape \(12, 32, 32\)"):
        load_mnist(tmp_path / "shape.npz")


def test_labels_outside_the_digits_are_refused(tmp_path):
    arrays = small_arrays()
    arrays["y_test"] = np.full(5, 11, dtype=np.uint8)
    np.savez(tmp_path / "labels.npz", **arrays)
    with pytest.raises(DatasetError, match=r"outside 0\.\.9"):
        load_mnist(tmp_path / "labels.npz")


def test_idx_folder_missing_a_file_is_named(tmp_path):
    write_idx_folder(tmp_path / "idx", small_arrays(), gzipped=False)
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte"):
        load_mnist(tmp_path / "idx")


def test_truncated_idx_file_is_named(tmp_path):
    write_idx_folder(tmp_path / "idx", small_arrays(), gzipped=False)
    images = tmp_path / "idx" / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-100])
    with pytest.raises(DatasetError, match="header promises"):
        load_mnist(tmp_path / "idx")


def test_idx_with_a_wrong_magic_number_is_named(tmp_path):
    arrays = small_arrays()
    write_idx_folder(tmp_path / "idx", arrays, gzipped=False)
    # Labels where images belong: the magic number says so.
    (tmp_path / "idx" / "train-images-idx3-ubyte").write_bytes(idx_bytes(arrays["y_train"]))
    with pytest.raises(DatasetError, match="bad IDX magic number"):
        load_mnist(tmp_path / "idx")


def test_corrupt_gzip_is_named(tmp_path):
    write_idx_folder(tmp_path / "idx", small_arrays(), gzipped=True)
    (tmp_path / "idx" / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz: cannot read"):
        load_mnist(tmp_path / "idx")
