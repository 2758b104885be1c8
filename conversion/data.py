"""Loading MNIST from a keras-format .npz, the four original IDX files, or keras's download."""

from __future__ import annotations

import gzip
import hashlib
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MNIST_PATH_ENV = "MNIST_PATH"
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10

# The original file names; each may also be gzipped (".gz").
IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}
_IDX_IMAGES_MAGIC = 0x00000803
_IDX_LABELS_MAGIC = 0x00000801


class DatasetError(Exception):
    """The data set could not be loaded; the message names the path and what was expected."""


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray  # (n, 28, 28) uint8, 0 = background, 255 = ink
    y_train: np.ndarray  # (n,) uint8
    x_test: np.ndarray
    y_test: np.ndarray
    source: str
    sha256: str  # of the source file(s), recorded in the model's metadata


def load_mnist(path: str | os.PathLike | None = None) -> Mnist:
    """Load MNIST from `path`, else from $MNIST_PATH, else through keras's download.

    `path` is either a keras-format .npz file or a folder holding the four IDX files.
    """
    chosen = path if path is not None else os.environ.get(MNIST_PATH_ENV) or None
    if chosen is None:
        return _download_with_keras()
    location = Path(chosen)
    if location.is_dir():
        return _load_idx_folder(location)
    if location.is_file():
        return _load_npz(location)
    raise DatasetError(
        f"{location}: no such file or folder; expected a keras-format mnist.npz "
        f"or a folder with the four MNIST IDX files"
    )


def _load_npz(path: Path) -> Mnist:
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in IDX_FILES if key in archive.files}
    except Exception as error:
        raise DatasetError(
            f"{path}: not a readable .npz archive ({error}); expected a keras-format mnist.npz "
            f"with x_train, y_train, x_test, y_test"
        ) from error
    missing = sorted(set(IDX_FILES) - set(arrays))
    if missing:
        raise DatasetError(f"{path}: missing arrays {', '.join(missing)}")
    return _checked(arrays, source=str(path), sha256=_sha256_of([path]))


def _load_idx_folder(folder: Path) -> Mnist:
    arrays, files = {}, []
    for key, stem in IDX_FILES.items():
        candidates = [folder / stem, folder / f"{stem}.gz"]
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            raise DatasetError(f"{folder}: missing {stem} (or {stem}.gz)")
        arrays[key] = _read_idx(found, images=key.startswith("x_"))
        files.append(found)
    return _checked(arrays, source=str(folder), sha256=_sha256_of(files))


def _read_idx(path: Path, *, images: bool) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            raw = stream.read()
    except OSError as error:
        raise DatasetError(f"{path}: cannot read ({error})") from error
    expected_magic, header_size = (_IDX_IMAGES_MAGIC, 16) if images else (_IDX_LABELS_MAGIC, 8)
    if len(raw) < header_size:
        raise DatasetError(f"{path}: truncated IDX header ({len(raw)} bytes)")
    magic, count = struct.unpack(">II", raw[:8])
    if magic != expected_magic:
        kind = "images" if images else "labels"
        raise DatasetError(
            f"{path}: bad IDX magic number {magic:#010x}; expected {expected_magic:#010x} ({kind})"
        )
    shape: tuple[int, ...] = (count,)
    if images:
        rows, cols = struct.unpack(">II", raw[8:16])
        shape = (count, rows, cols)
    expected_size = header_size + int(np.prod(shape))
    if len(raw) != expected_size:
        raise DatasetError(
            f"{path}: {len(raw)} bytes; its header promises {expected_size} for shape {shape}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _checked(arrays: dict[str, np.ndarray], *, source: str, sha256: str) -> Mnist:
    for split in ("train", "test"):
        images, labels = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
            raise DatasetError(
                f"{source}: x_{split} has shape {images.shape}; expected (n, 28, 28)"
            )
        if labels.shape != (images.shape[0],):
            raise DatasetError(
                f"{source}: y_{split} has shape {labels.shape}; expected ({images.shape[0]},)"
            )
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            raise DatasetError(f"{source}: y_{split} holds labels outside 0..9")
    return Mnist(
        x_train=arrays["x_train"].astype(np.uint8),
        y_train=arrays["y_train"].astype(np.uint8),
        x_test=arrays["x_test"].astype(np.uint8),
        y_test=arrays["y_test"].astype(np.uint8),
        source=source,
        sha256=sha256,
    )


def _sha256_of(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _download_with_keras() -> Mnist:
    """For a machine with internet: keras caches the download under ~/.keras/datasets."""
    from keras.datasets import mnist  # noqa: PLC0415 - heavy, only needed on this path

    try:
        (x_train, y_train), (x_test, y_test) = mnist.load_data()
        cached = Path.home() / ".keras" / "datasets" / "mnist.npz"
    except Exception as error:
        raise DatasetError(
            f"no MNIST path given (argument or ${MNIST_PATH_ENV}) and keras's download failed "
            f"({error}); pass the path of a mnist.npz or of a folder with the IDX files"
        ) from error
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    sha = _sha256_of([cached]) if cached.is_file() else "keras-download"
    return _checked(arrays, source="keras.datasets.mnist", sha256=sha)
