"""People's corrections as training data (conversion/feedback.py): each source form, the checks,
ids recomputed from content, duplicates and ambiguous items dropped, the held-out split, the
container read through the settings (Azurite) and the export command, what training is handed,
and what the report and model card say."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from azure.storage.blob import BlobServiceClient

from conversion.feedback import (
    FEEDBACK_ENV,
    HELD_OUT_FRACTION,
    MAX_SHARE,
    NOT_DIGIT_LABEL,
    REPEAT,
    SAMPLE_SEED_ENV,
    Feedback,
    FeedbackError,
    Reading,
    StoredItem,
    arrays,
    ids_digest,
    is_held_out,
    load_feedback,
    main,
    no_feedback_record,
    prepare,
    read_feedback,
    repeat_factor,
    sample_rank,
    training_data_sha256,
)
from functions.feedback.item import NOT_DIGIT, STORED_FIELDS, FeedbackItem
from tests.helpers import contract_item_id
from tests.stack import REPO_ROOT

RECEIVED_AT = "2026-12-04T15:00:00Z"


# --- items in the contract's form (docs/contracts.md section 2a) -----------------------------


def item(pixels: np.ndarray, label: int, predicted: int | None = None, **more) -> dict:
    document = {
        "schema": 1,
        "pixels": pixels.astype(int).tolist(),
        "label": label,
        "predicted": (label + 1) % 10 if predicted is None else predicted,
        "model_version": "mnist-cnn-1.2.0",
        "received_at": RECEIVED_AT,
    }
    document.update(more)
    return document


def box(size: int, dx: int = 0, dy: int = 0, ink: int = 255) -> np.ndarray:
    """A hollow square, two pixels thick, about the centre: a drawing MNIST has no digit like."""
    pixels = np.zeros((28, 28), dtype=np.uint8)
    top, left = 14 - size // 2 + dy, 14 - size // 2 + dx
    pixels[top : top + size, left : left + size] = ink
    pixels[top + 2 : top + size - 2, left + 2 : left + size - 2] = 0
    return pixels


def boxes(count: int, label: int = 7) -> list[dict]:
    """`count` different boxes, all corrected to `label` (the model said 0)."""
    shapes = [(size, dx, dy) for size in range(10, 19) for dx in (-2, 0, 2) for dy in (-2, 0, 2)]
    return [
        item(box(*shape, ink=255 - 4 * (n % 5)), label, 0) for n, shape in enumerate(shapes[:count])
    ]


def random_items(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        item(rng.integers(0, 256, (28, 28), dtype=np.uint8), int(rng.integers(0, 10)))
        for _ in range(count)
    ]


def write_jsonl(path: Path, documents: list[object]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [d if isinstance(d, str) else json.dumps(d) for d in documents]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_items(folder: Path, documents: list[dict], names: list[str] | None = None) -> Path:
    """As stored: items/<id>.json, unless `names` says otherwise."""
    (folder / "items").mkdir(parents=True, exist_ok=True)
    for n, document in enumerate(documents):
        name = (
            names[n]
            if names
            else contract_item_id(np.array(document["pixels"]), document["label"]) + ".json"
        )
        (folder / "items" / name).write_text(json.dumps(document))
    return folder


def feedback_folder(folder: Path) -> tuple[Path, dict[str, int]]:
    """40 boxes corrected to 7, each stored once, plus 3 copies of three of them under other
    names, a drawing corrected both to 1 and to 4, and 2 malformed files: what a tiny training
    run learns from, and the counts it must report."""
    good = boxes(40)
    write_items(folder, good)
    copies = [good[0], good[5], good[9]]
    write_items(folder / "copies", copies, [f"copy-{n}.json" for n in range(3)])
    stroke = np.zeros((28, 28), dtype=np.uint8)
    stroke[4:24, 13:16] = 255
    write_items(folder / "ambiguous", [item(stroke, 1, 7), item(stroke, 4, 1)])
    (folder / "items" / "broken.json").write_text('{"schema": 1, "pixels": [')
    (folder / "items" / "blank.json").write_text(json.dumps(item(np.zeros((28, 28)), 3)))
    counts = {"read": 47, "malformed": 2, "duplicates": 3, "ambiguous": 2, "used": 40}
    return folder, counts


# --- the source forms --------------------------------------------------------------------------


def test_reads_a_json_lines_export(tmp_path):
    documents = random_items(5)
    path = write_jsonl(tmp_path / "feedback.jsonl", [documents[0], "", *documents[1:]])
    reading = read_feedback(str(path))
    assert (reading.read, reading.malformed, reading.duplicates) == (5, 0, 0)
    assert [stored.id for stored in reading.items] == [
        contract_item_id(np.array(d["pixels"]), d["label"]) for d in documents
    ]
    first = reading.items[0]
    np.testing.assert_array_equal(first.item.pixels, np.array(documents[0]["pixels"]))
    assert (first.item.label, first.item.predicted) == (
        documents[0]["label"],
        documents[0]["predicted"],
    )
    assert first.received_at == RECEIVED_AT


def test_reads_a_folder_of_items_recursively(tmp_path):
    documents = random_items(6)
    write_items(tmp_path / "a", documents[:2])
    write_items(tmp_path / "b" / "deeper", documents[2:4])
    write_jsonl(tmp_path / "b" / "export.jsonl", documents[4:])
    (tmp_path / "README.txt").write_text("not an item, not read")
    (tmp_path / "a" / "items" / ".hidden.json").write_text("{}")
    reading = read_feedback(str(tmp_path))
    assert (reading.read, reading.malformed) == (6, 0)
    assert {stored.id for stored in reading.items} == {
        contract_item_id(np.array(d["pixels"]), d["label"]) for d in documents
    }
    # Path order: a/..., then b/deeper/..., then b/export.jsonl.
    again = read_feedback(str(tmp_path))
    assert [s.id for s in again.items] == [s.id for s in reading.items]


MALFORMED = {
    "not JSON": '{"schema": 1,',
    "not an object": "[1, 2, 3]",
    "schema 2": item(box(12), 7, schema=2),
    "27 rows": {**item(box(12), 7), "pixels": box(12).tolist()[:27]},
    "a pixel over 255": {**item(box(12), 7), "pixels": [[256] * 28] * 28},
    "a fractional pixel": {**item(box(12), 7), "pixels": [[0.5] * 28] * 28},
    "a label of 10": item(box(12), 10, 3),
    "a boolean label": item(box(12), True, 3),
    "label equals predicted": item(box(12), 7, 7),
    "another field": item(box(12), 7, comment="free text"),
    "no received_at": {
        key: value for key, value in item(box(12), 7).items() if key != "received_at"
    },
    "a bad model version": item(box(12), 7, model_version="../v1"),
    "no ink": item(np.zeros((28, 28)), 7),
}


def test_malformed_items_are_skipped_and_counted(tmp_path):
    good = random_items(2)
    path = write_jsonl(tmp_path / "feedback.jsonl", [good[0], *MALFORMED.values(), good[1]])
    reading = read_feedback(str(path))
    assert reading.read == len(MALFORMED) + 2
    assert reading.malformed == len(MALFORMED)
    assert len(reading.items) == 2
    assert len(reading.malformed_examples) == 5  # the first few, for the report
    assert reading.malformed_examples[0].startswith(f"{path}:2: ")


def test_an_oversized_file_is_not_read(tmp_path):
    write_items(tmp_path, random_items(1))
    (tmp_path / "items" / "huge.json").write_text(" " * (1 << 17) + "{}")
    reading = read_feedback(str(tmp_path))
    assert (reading.read, reading.malformed, len(reading.items)) == (2, 1, 1)
    assert "not an item" in reading.malformed_examples[0]


def test_an_oversized_line_of_an_export_is_skipped_and_the_next_one_read(tmp_path):
    good = random_items(2)
    export = tmp_path / "export.jsonl"
    lines = [json.dumps(good[0]), " " * (3 << 16) + "{}", json.dumps(good[1])]
    export.write_text("\n".join(lines) + "\n")
    reading = read_feedback(str(export))
    assert (reading.read, reading.malformed, len(reading.items)) == (3, 1, 2)
    assert "over" in reading.malformed_examples[0]


def test_a_missing_source_is_an_error(tmp_path):
    with pytest.raises(FeedbackError, match=r"nowhere\.jsonl: no such file or folder"):
        read_feedback(str(tmp_path / "nowhere.jsonl"))


def test_the_source_comes_from_the_flag_else_the_environment(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "feedback.jsonl", random_items(3))
    monkeypatch.delenv(FEEDBACK_ENV, raising=False)
    assert load_feedback() is None
    monkeypatch.setenv(FEEDBACK_ENV, str(path))
    assert load_feedback().reading.read == 3
    assert load_feedback("") is None  # an empty flag turns the environment's off


# --- ids, duplicates, ambiguity --------------------------------------------------------------


def test_the_id_is_recomputed_from_the_content_never_the_file_name(tmp_path):
    documents = random_items(2)
    write_items(tmp_path, documents)
    # The first item again under a name that is no id, and the second under the first's id.
    wrong = contract_item_id(np.array(documents[0]["pixels"]), documents[0]["label"])
    write_items(tmp_path / "renamed", [documents[0]], ["0000.json"])
    write_items(tmp_path / "swapped", [documents[1]], [f"{wrong}.json"])
    reading = read_feedback(str(tmp_path))
    assert (reading.read, reading.duplicates, len(reading.items)) == (4, 2, 2)
    assert {s.id for s in reading.items} == {
        contract_item_id(np.array(d["pixels"]), d["label"]) for d in documents
    }


def test_the_first_of_each_id_is_kept(tmp_path):
    pixels = box(14)
    first = item(pixels, 7, 1, received_at="2026-12-01T00:00:00Z")
    later = item(pixels, 7, 9, received_at="2026-12-02T00:00:00Z")  # another model's answer
    reading = read_feedback(str(write_jsonl(tmp_path / "f.jsonl", [first, later])))
    assert reading.duplicates == 1
    (kept,) = reading.items
    assert (kept.item.predicted, kept.received_at) == (1, "2026-12-01T00:00:00Z")


def test_the_same_pixels_with_different_labels_are_dropped(tmp_path):
    pixels = box(16)
    documents = [item(pixels, 3, 5), item(pixels, 5, 3), item(pixels, 3, 8), *random_items(4)]
    feedback = prepare(read_feedback(str(write_jsonl(tmp_path / "f.jsonl", documents))))
    assert feedback.reading.duplicates == 1  # (pixels, 3) twice: one item
    assert feedback.ambiguous == 2  # (pixels, 3) and (pixels, 5): neither is trusted
    used = feedback.training + feedback.held_out
    assert len(used) == 4
    assert all(not np.array_equal(s.item.pixels, pixels) for s in used)
    record = feedback.record(repeat=1)
    assert (record["read"], record["duplicates"], record["ambiguous"], record["used"]) == (
        7,
        1,
        2,
        4,
    )


# --- the split -------------------------------------------------------------------------------


def test_the_split_is_by_id_deterministic_and_stable_as_items_are_added(tmp_path):
    documents = random_items(300, seed=1)
    first = prepare(read_feedback(str(write_jsonl(tmp_path / "a.jsonl", documents[:200]))))
    held = {s.id for s in first.held_out}
    trained = {s.id for s in first.training}
    assert len(held) + len(trained) == 200
    assert 0.1 < len(held) / 200 < 0.3  # about HELD_OUT_FRACTION
    for item_id in held | trained:
        assert (int(item_id[:8], 16) < HELD_OUT_FRACTION * 2**32) == (item_id in held)
    # The same items in another order: the same parts, in the same (id) order.
    shuffled = prepare(read_feedback(str(write_jsonl(tmp_path / "b.jsonl", documents[199::-1]))))
    assert [s.id for s in shuffled.held_out] == [s.id for s in first.held_out]
    assert [s.id for s in shuffled.training] == [s.id for s in first.training]
    np.testing.assert_array_equal(shuffled.training_arrays()[0], first.training_arrays()[0])
    # More items later: every earlier one stays on its side.
    grown = prepare(read_feedback(str(write_jsonl(tmp_path / "c.jsonl", documents))))
    assert held <= {s.id for s in grown.held_out}
    assert trained <= {s.id for s in grown.training}


def test_the_arrays_are_mnist_shaped():
    from conversion.feedback import Reading  # noqa: PLC0415

    reading = Reading("test")
    feedback = prepare(reading)
    images, labels = feedback.training_arrays()
    assert (images.shape, images.dtype, labels.shape, labels.dtype) == (
        (0, 28, 28),
        np.uint8,
        (0,),
        np.uint8,
    )


def test_the_repeat_factor_is_fixed_and_bounded():
    assert repeat_factor(0, 60_000) == 0
    assert repeat_factor(100, 60_000) == REPEAT
    # Never more than MAX_SHARE of the MNIST images in copies, but each item at least once.
    assert repeat_factor(1000, 60_000) == int(MAX_SHARE * 60_000) // 1000
    assert repeat_factor(1000, 60_000) * 1000 <= MAX_SHARE * 60_000
    assert repeat_factor(10_000, 60_000) == 1


def test_the_training_data_hash_covers_the_feedback():
    mnist = "a" * 64
    assert training_data_sha256(mnist, None) == mnist
    assert training_data_sha256(mnist, {"training": 0, "training_sha256": None}) == mnist
    ids = ["c" * 64, "a" * 64, "b" * 64]
    digest = ids_digest(ids)
    # docs/contracts.md section 2a, written out: the sorted ids one a line, then both digests.
    assert (
        digest
        == hashlib.sha256(
            ("a" * 64 + "\n" + "b" * 64 + "\n" + "c" * 64 + "\n").encode()
        ).hexdigest()
    )
    with_feedback = training_data_sha256(mnist, {"training": 3, "training_sha256": digest})
    expected = f"mnist {mnist}\nfeedback {digest}\n"
    assert with_feedback == hashlib.sha256(expected.encode()).hexdigest()


def test_past_the_share_a_sample_is_trained_on_and_the_rest_counted(tmp_path, monkeypatch):
    monkeypatch.delenv(SAMPLE_SEED_ENV, raising=False)
    feedback = load_feedback(str(write_jsonl(tmp_path / "export.jsonl", random_items(60))))
    assert feedback.within_share(2000) is feedback  # 5% of 2,000 is 100: all fit
    assert feedback.record(REPEAT)["sample_seed"] is None  # nothing sampled
    capped = feedback.within_share(500)  # 5% of 500 is 25
    training_ids = [s.id for s in feedback.training]
    kept = [s.id for s in capped.training]
    assert len(kept) == 25
    assert set(kept) <= set(training_ids)
    assert kept == sorted(kept)  # in id order, as every part is
    # The 25 that rank first under the run's seed, whatever their ids.
    seed = capped.sample_seed
    assert len(seed) == 32
    assert kept == sorted(sorted(training_ids, key=lambda i: sample_rank(seed, i))[:25])
    assert capped.over_share == len(feedback.training) - 25
    assert capped.held_out == feedback.held_out  # the measure never shrinks
    record = capped.record(repeat_factor(25, 500))
    assert (record["over_share"], record["sample_seed"]) == (capped.over_share, seed)
    assert len(feedback.within_share(10).training) == 1  # at least one, however small MNIST is


def test_the_sample_seed_is_new_each_run_and_repeats_a_run_when_given(tmp_path, monkeypatch):
    monkeypatch.delenv(SAMPLE_SEED_ENV, raising=False)
    feedback = load_feedback(str(write_jsonl(tmp_path / "export.jsonl", random_items(60))))
    first, second = feedback.within_share(500), feedback.within_share(500)
    assert first.sample_seed != second.sample_seed  # unknown before the run
    assert [s.id for s in first.training] != [s.id for s in second.training]
    # The seed a report names repeats that run's choice, and so its training data's sha256.
    monkeypatch.setenv(SAMPLE_SEED_ENV, first.sample_seed)
    again = feedback.within_share(500)
    assert [s.id for s in again.training] == [s.id for s in first.training]
    assert again.record(1)["training_sha256"] == first.record(1)["training_sha256"]
    assert feedback.within_share(500, seed="given").sample_seed == "given"


def test_ids_ground_to_rank_first_no_longer_displace_genuine_corrections():
    """The reported attack: 3,000 hostile items whose contents were ground until their ids
    landed just above the held-out cut, so that they came first by id among the items to train
    on, beside 790 genuine corrections, with room for 3,000 (5% of 60,000). Taking the first by
    id kept the hostile ones alone. No content is ground here: the 3,000 lowest ids of a random
    pool play the ground ones, which is all that grinding can achieve."""
    rng = np.random.default_rng(20261208)
    pool = [
        StoredItem(
            FeedbackItem(rng.integers(0, 256, (28, 28), dtype=np.uint8), 3, 5, "mnist-cnn-1.2.0"),
            RECEIVED_AT,
        )
        for _ in range(5000)
    ]
    split = prepare(Reading("test", items=pool))
    by_id = split.training  # sorted by id: the lowest are just above the held-out cut
    hostile, genuine = by_id[:3000], by_id[3000:3790]
    cut = HELD_OUT_FRACTION * 2**32
    assert all(int(stored.id[:8], 16) >= cut for stored in hostile)  # none held out
    assert hostile[0].id.startswith("333")  # the first just above the cut
    feedback = Feedback(
        reading=split.reading, training=by_id[:3790], held_out=split.held_out, ambiguous=0
    )
    cap = int(MAX_SHARE * 60_000)
    assert {s.id for s in feedback.training[:cap]} == {s.id for s in hostile}  # the old rule
    genuine_ids = {s.id for s in genuine}
    for seed in ("a1", "b2", "c3", "d4", "e5"):
        kept = feedback.within_share(60_000, seed=seed).training
        assert len(kept) == cap
        kept_genuine = sum(s.id in genuine_ids for s in kept)
        # Each item's chance is the same, cap / items = 79%: 625 of the 790 expected (sd 10).
        assert 580 < kept_genuine < 670, (seed, kept_genuine)


# --- what training is handed -----------------------------------------------------------------


def test_training_gets_each_unique_item_repeated_and_no_held_out_one(tmp_path, monkeypatch):
    """The images handed to training, without training: each usable training item as many times
    as the repeat factor says; no duplicate, ambiguous, malformed or held-out one."""
    from conversion.data import Mnist  # noqa: PLC0415
    from conversion.steps import train as train_step  # noqa: PLC0415
    from conversion.train import TrainingResult, TrainingSettings  # noqa: PLC0415

    folder, counts = feedback_folder(tmp_path / "feedback")
    handed = {}

    def fake_train(x_train, y_train, settings, extra=None):
        handed["extra"] = extra
        return TrainingResult(model=None, best_epoch=1, best_validation_accuracy=None)

    monkeypatch.setattr(train_step, "train", fake_train)
    rng = np.random.default_rng(0)
    mnist = Mnist(
        x_train=rng.integers(0, 256, (2000, 28, 28), dtype=np.uint8),
        y_train=rng.integers(0, 10, 2000, dtype=np.uint8),
        x_test=np.zeros((0, 28, 28), np.uint8),
        y_test=np.zeros(0, np.uint8),
        source="random",
        sha256="0" * 64,
    )
    feedback = load_feedback(str(folder))
    _, record = train_step.train_model(mnist, TrainingSettings(epochs=1), feedback)

    images, labels = handed["extra"]
    training_ids = [s.id for s in feedback.training]
    assert len(training_ids) + len(feedback.held_out) == counts["used"]
    # 2,000 MNIST images: the copies are capped at MAX_SHARE of them, each item at least once.
    repeat = repeat_factor(len(training_ids), 2000)
    assert 1 <= repeat < REPEAT
    assert len(training_ids) * repeat <= MAX_SHARE * 2000
    assert len(images) == len(training_ids) * repeat
    assert set(labels.tolist()) == {7}  # the ambiguous drawing (1 or 4) is not among them
    handed_ids = [contract_item_id(image, 7) for image in images]
    assert sorted(set(handed_ids)) == sorted(training_ids)
    assert all(handed_ids.count(item_id) == repeat for item_id in training_ids)
    assert not set(handed_ids) & {s.id for s in feedback.held_out}
    fb = record["feedback"]
    assert {key: fb[key] for key in counts} == counts
    assert (fb["training"], fb["repeat"], fb["training_copies"]) == (
        len(training_ids),
        repeat,
        len(training_ids) * repeat,
    )
    assert record["fit_images"] == 2000  # MNIST's own count, feedback apart


def test_without_feedback_training_gets_mnist_alone(monkeypatch):
    from conversion.data import Mnist  # noqa: PLC0415
    from conversion.steps import train as train_step  # noqa: PLC0415
    from conversion.train import TrainingResult, TrainingSettings  # noqa: PLC0415

    handed = {}

    def fake_train(x_train, y_train, settings, extra=None):
        handed["extra"] = extra
        return TrainingResult(model=None, best_epoch=1, best_validation_accuracy=None)

    monkeypatch.setattr(train_step, "train", fake_train)
    empty = np.zeros((10, 28, 28), np.uint8)
    mnist = Mnist(empty, np.zeros(10, np.uint8), empty, np.zeros(10, np.uint8), "zeros", "0" * 64)
    _, record = train_step.train_model(mnist, TrainingSettings(epochs=1))
    assert handed["extra"] is None
    assert record["feedback"]["source"] is None
    assert record["feedback"]["used"] == 0


def test_the_training_record_names_the_sample_seed(tmp_path, monkeypatch):
    """Past the share, the report names the seed its sample was drawn with; given again, it
    repeats the run's training data (and so its training_data_sha256)."""
    from conversion.data import Mnist  # noqa: PLC0415
    from conversion.steps import train as train_step  # noqa: PLC0415
    from conversion.train import TrainingResult, TrainingSettings  # noqa: PLC0415

    monkeypatch.delenv(SAMPLE_SEED_ENV, raising=False)
    monkeypatch.setattr(
        train_step,
        "train",
        lambda *args, **kwargs: TrainingResult(
            model=None, best_epoch=1, best_validation_accuracy=None
        ),
    )
    empty = np.zeros((200, 28, 28), np.uint8)  # room for 10 items (5%)
    mnist = Mnist(empty, np.zeros(200, np.uint8), empty, np.zeros(200, np.uint8), "zeros", "0" * 64)
    folder, _ = feedback_folder(tmp_path / "feedback")

    def record() -> dict:
        settings = TrainingSettings(epochs=1)  # all 200 fitted: no validation part
        return train_step.train_model(mnist, settings, load_feedback(str(folder)))[1]["feedback"]

    first = record()
    assert first["training"] == 10
    assert first["over_share"] > 0
    assert first["sample_seed"]
    assert record()["sample_seed"] != first["sample_seed"]
    monkeypatch.setenv(SAMPLE_SEED_ENV, first["sample_seed"])
    assert record() == first


# --- the model card --------------------------------------------------------------------------


def bundled_report() -> dict:
    return json.loads((REPO_ROOT / "functions" / "model" / "report.json").read_text())


def test_a_card_without_feedback_says_none_was_used():
    from conversion.model_card import render_model_card  # noqa: PLC0415

    report = bundled_report()  # made before feedback was recorded
    card = render_model_card(report)
    assert "Corrections sent from the site (feedback): none used." in card
    assert report["metadata"]["training_data_sha256"] in card


def test_a_card_with_feedback_states_the_counts_and_the_held_out_accuracy(tmp_path):
    from conversion.model_card import render_model_card  # noqa: PLC0415

    folder, _ = feedback_folder(tmp_path)
    feedback = load_feedback(str(folder))
    report = bundled_report()
    report["data"]["sha256"] = report["metadata"]["training_data_sha256"]
    report["feedback"] = {
        **feedback.record(REPEAT),
        "held_out_correct": 6,
        "held_out_accuracy": 6 / len(feedback.held_out),
        "bundled_model": {
            "version": "mnist-cnn-1.2.0",
            "held_out_correct": 1,
            "held_out_accuracy": 1 / len(feedback.held_out),
        },
    }
    card = render_model_card(report)
    assert f"(feedback, {folder}): 40 used" in card
    assert "Of 47 read, 2 malformed, 3 duplicates and 2 ambiguous" in card
    assert f"each {REPEAT} times an epoch" in card
    assert f"right on 6 of {len(feedback.held_out)}" in card
    assert "the bundled model (mnist-cnn-1.2.0) on 1 (" in card
    assert "not reviewed" in card


# --- the container, through the settings (Azurite) -------------------------------------------


@pytest.fixture
def feedback_container(azurite, monkeypatch):
    """A fresh feedback container in Azurite, named by the settings training reads."""
    with BlobServiceClient.from_connection_string(azurite) as service:
        container = service.get_container_client(f"feedback-{uuid.uuid4().hex[:12]}")
        container.create_container()
        monkeypatch.setenv("MODELS_STORAGE", azurite)
        monkeypatch.setenv("FEEDBACK_CONTAINER", container.container_name)
        yield container
        container.delete_container()


def upload(container, name: str, document: object) -> None:
    data = document if isinstance(document, str) else json.dumps(document)
    container.upload_blob(name, data.encode(), overwrite=False)


def test_reads_the_container_through_the_settings(feedback_container, tmp_path):
    documents = random_items(4, seed=3)
    for document in documents:
        upload(
            feedback_container,
            f"items/{contract_item_id(np.array(document['pixels']), document['label'])}.json",
            document,
        )
    upload(feedback_container, "items/not-its-id.json", documents[0])  # a duplicate
    upload(feedback_container, "items/broken.json", '{"schema": 1')  # malformed
    upload(feedback_container, "elsewhere/ignored.json", documents[1])  # not under items/

    feedback = load_feedback("storage")
    reading = feedback.reading
    assert reading.source == f"storage (container {feedback_container.container_name})"
    assert (reading.read, reading.malformed, reading.duplicates) == (6, 1, 1)
    assert len(feedback.training) + len(feedback.held_out) == 4

    # The export command, as the train workflow runs it: the settings, no flags.
    out = tmp_path / "export" / "feedback.jsonl"
    completed = subprocess.run(
        [sys.executable, "-m", "conversion.feedback", "export", str(out)],
        cwd=REPO_ROOT,
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert "exported 4 items" in completed.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    exported = read_feedback(str(out))
    assert [s.id for s in exported.items] == [s.id for s in reading.items]
    assert (exported.malformed, exported.duplicates) == (0, 0)
    # Each line is the stored item itself, in the contract's form.
    assert set(json.loads(lines[0])) == STORED_FIELDS


def test_reads_what_the_feedback_endpoint_stores(feedback_container):
    """The writer's own code (functions/feedback/) and training's reader agree on the format."""
    from functions.feedback.item import FeedbackItem  # noqa: PLC0415
    from functions.feedback.store import FeedbackStore  # noqa: PLC0415

    store = FeedbackStore(feedback_container, now=lambda: RECEIVED_AT)
    written = [
        store.save(FeedbackItem(pixels=box(size), label=7, predicted=0, model_version="v1"))
        for size in (10, 12, 14)
    ]
    reading = read_feedback("storage")
    assert [s.id for s in reading.items] == sorted(written)  # the listing's (name) order
    assert reading.malformed == 0


def test_the_export_command_takes_a_connection_string_and_a_container(
    feedback_container, azurite, tmp_path, monkeypatch
):
    monkeypatch.delenv("MODELS_STORAGE")
    monkeypatch.delenv("FEEDBACK_CONTAINER")
    document = random_items(1, seed=4)[0]
    upload(feedback_container, "items/x.json", document)
    out = tmp_path / "feedback.jsonl"
    flags = ["--connection-string", azurite, "--container", feedback_container.container_name]
    assert main(["export", str(out), *flags]) == 0
    assert len(out.read_text().splitlines()) == 1


def test_a_missing_container_or_setting_is_an_error(azurite, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELS_STORAGE", azurite)
    monkeypatch.setenv("FEEDBACK_CONTAINER", f"absent-{uuid.uuid4().hex[:12]}")
    with pytest.raises(FeedbackError, match="does not exist"):
        read_feedback("storage")
    assert main(["export", str(tmp_path / "out.jsonl")]) == 1
    assert not (tmp_path / "out.jsonl").exists()
    monkeypatch.delenv("MODELS_STORAGE")
    with pytest.raises(FeedbackError, match="MODELS_STORAGE is not set"):
        read_feedback("storage")


# --- the steps' command lines ----------------------------------------------------------------


def test_the_train_step_fails_in_one_line_on_a_missing_source(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 20, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 5, dtype=np.uint8),
    }
    np.savez(tmp_path / "mnist.npz", **arrays)
    command = [sys.executable, "-m", "conversion.steps.train", "--epochs", "1"]
    command += ["--data", str(tmp_path / "mnist.npz"), "--out", str(tmp_path / "out")]
    completed = subprocess.run(
        command,
        cwd=REPO_ROOT,
        env={**os.environ, FEEDBACK_ENV: str(tmp_path / "nowhere.jsonl")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 1
    assert "train step failed: " in completed.stderr
    assert "nowhere.jsonl: no such file or folder" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert not (tmp_path / "out").exists()


def test_the_evaluate_step_needs_the_held_out_part_the_record_names(tmp_path):
    from conversion.steps.errors import StepInputError  # noqa: PLC0415
    from conversion.steps.evaluate import read_held_out  # noqa: PLC0415

    assert read_held_out(str(tmp_path), {"feedback": None}) is None
    assert read_held_out(str(tmp_path), {}) is None  # a record from before feedback
    with pytest.raises(StepInputError, match=r"feedback_held_out\.npz: missing"):
        read_held_out(str(tmp_path), {"feedback": {"held_out": 3}})


# --- "not a digit" corrections ---------------------------------------------------------------


def not_digit_item(pixels: np.ndarray, predicted: int = 4) -> dict:
    """A correction saying the drawing is no digit at all (the model had read `predicted`)."""
    return item(pixels, NOT_DIGIT, predicted)


def scribbles(count: int, seed: int = 3) -> list[np.ndarray]:
    """Different random scribbles: drawings people mark as not a digit."""
    rng = np.random.default_rng(seed)
    drawings = []
    for _ in range(count):
        pixels = np.zeros((28, 28), dtype=np.uint8)
        rows, columns = rng.integers(4, 24, 40), rng.integers(4, 24, 40)
        pixels[rows, columns] = 255
        drawings.append(pixels)
    return drawings


def mixed_folder(folder: Path) -> tuple[Path, list[dict], list[dict]]:
    """20 boxes corrected to 7, one of them from a "not a digit" answer, and 20 scribbles
    corrected to "not a digit", stored as the endpoint stores them."""
    digits = boxes(20)
    digits[0] = item(np.array(digits[0]["pixels"]), 7, NOT_DIGIT)  # the model had said no digit
    negatives = [not_digit_item(pixels) for pixels in scribbles(20)]
    write_items(folder, digits + negatives)
    return folder, digits, negatives


def test_a_not_digit_correction_is_a_negative_and_a_digit_one_its_digit(tmp_path):
    folder, _, _ = mixed_folder(tmp_path)

    feedback = load_feedback(str(folder))

    everything = feedback.training + feedback.held_out
    assert len(everything) == 40
    for part in (feedback.training, feedback.held_out):
        _, labels = arrays(part)
        expected = [NOT_DIGIT_LABEL if stored.item.label == NOT_DIGIT else 7 for stored in part]
        assert labels.tolist() == expected
    assert NOT_DIGIT_LABEL == 10
    # The split is by id, as for digits: a negative lands where its id says, whatever is added.
    for stored in everything:
        assert (stored in feedback.held_out) == is_held_out(stored.id)
    record = feedback.record(REPEAT)
    assert record["training_not_digit"] + record["held_out_not_digit"] == 20
    assert record["training_not_digit"] == sum(
        stored.item.label == NOT_DIGIT for stored in feedback.training
    )
    assert no_feedback_record()["training_not_digit"] == 0


def test_a_drawing_corrected_to_a_digit_and_to_not_a_digit_is_ambiguous(tmp_path):
    (drawing,) = scribbles(1)
    write_items(tmp_path, [item(drawing, 4, 1), not_digit_item(drawing, 1)])

    feedback = load_feedback(str(tmp_path))

    assert feedback.ambiguous == 2
    assert not feedback.training
    assert not feedback.held_out


def test_not_digit_corrections_share_the_digits_cap(tmp_path, monkeypatch):
    """Past MAX_SHARE of the MNIST images, the sample is drawn over all items alike."""
    folder, _, _ = mixed_folder(tmp_path)
    feedback = load_feedback(str(folder))
    capped = feedback.within_share(200, seed="fixed")  # room for 10
    assert len(capped.training) == 10
    assert capped.over_share == len(feedback.training) - 10


def test_a_ten_class_recipe_leaves_the_negatives_out(tmp_path, monkeypatch):
    from conversion.data import Mnist  # noqa: PLC0415
    from conversion.steps import train as train_step  # noqa: PLC0415
    from conversion.train import TrainingResult, TrainingSettings  # noqa: PLC0415

    handed = {}

    def fake_train(x_train, y_train, settings, extra=None):
        handed["extra"] = extra
        return TrainingResult(model=None, best_epoch=1, best_validation_accuracy=None)

    monkeypatch.setattr(train_step, "train", fake_train)
    empty = np.zeros((2000, 28, 28), np.uint8)
    mnist = Mnist(empty, np.zeros(2000, np.uint8), empty, np.zeros(2000, np.uint8), "z", "0" * 64)
    folder, _, _ = mixed_folder(tmp_path)
    feedback = load_feedback(str(folder))

    _, record = train_step.train_model(
        mnist, TrainingSettings.for_recipe("deep16w-ema-40-all", epochs=1), feedback
    )
    assert set(handed["extra"][1].tolist()) == {7}
    assert record["is_digit_rule"] is None

    _, record = train_step.train_model(mnist, TrainingSettings(epochs=1), feedback)
    assert set(handed["extra"][1].tolist()) == {7, NOT_DIGIT_LABEL}
    assert record["is_digit_rule"] == "not_digit < 0.7"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_stored_not_digit_corrections_are_trained_on_as_the_eleventh_class(tmp_path, monkeypatch):
    """A tiny real training run (one epoch, 600 MNIST images): the "not a digit" corrections
    as stored reach the network as class 10, beside the generated negatives, and the model has
    the eleventh class. About 15 s, most of it importing TensorFlow."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from conversion import train as training  # noqa: PLC0415
    from conversion.data import load_mnist  # noqa: PLC0415
    from conversion.steps import train as train_step  # noqa: PLC0415
    from conversion.train import TrainingSettings  # noqa: PLC0415
    from tests.conftest import mnist_path  # noqa: PLC0415

    folder, _, negatives = mixed_folder(tmp_path)
    feedback = load_feedback(str(folder))
    seen = {}
    real_fit = training.keras.Model.fit

    def spying_fit(model, dataset, **kwargs):
        labels = np.concatenate([batch[1].numpy() for batch in dataset])
        seen["labels"] = labels
        return real_fit(model, dataset, **kwargs)

    monkeypatch.setattr(training.keras.Model, "fit", spying_fit)
    settings = TrainingSettings(epochs=1, limit=600, augment=False)

    result, record = train_step.train_model(load_mnist(mnist_path()), settings, feedback)

    assert result.model.outputs[0].shape[-1] == 11
    fb = record["feedback"]
    trained_negatives = fb["training_not_digit"]
    assert 0 < trained_negatives < len(negatives)
    generated = record["additions"]["negatives"]
    assert generated == round(training.RECIPES[settings.recipe].negatives * 600 / 60_000)
    # Class 10: the generated negatives and each "not a digit" correction, repeated.
    assert (
        int(np.sum(seen["labels"] == NOT_DIGIT_LABEL))
        == generated + trained_negatives * fb["repeat"]
    )
    scores = result.model.predict(np.zeros((1, 28, 28, 1), np.float32), verbose=0)
    assert scores.shape == (1, 11)
