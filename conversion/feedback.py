"""People's corrections (docs/contracts.md section 2a) as training data: read, checked,
de-duplicated by content, and split into a part to train on and a part held out to measure.

    python -m conversion.feedback export feedback.jsonl   # the container, through the settings
    python -m conversion.feedback export feedback.jsonl \
        --connection-string UseDevelopmentStorage=true   # or --account-url https://...

A source is one of:
- a JSON Lines export: one stored item per line;
- a folder of item files as stored (`items/<id>.json`), read recursively in path order; a `.jsonl`
  file in it is read as an export (an Azure ML `uri_folder` may hold either);
- `storage`: the feedback container itself (FEEDBACK_CONTAINER on the MODELS_STORAGE connection).

Each item is checked as the endpoint writes it (functions/feedback/item.py): one that is not is
skipped and counted, never fatal. Its id is recomputed from its content (never taken from a file
name); the first item of each id is kept, later ones are duplicates; items whose pixels are the same
as another's with a different label are all dropped (ambiguous: no one label is right). What is left
is split by id: an item is held out (never trained on, measured after training) when its id's first
eight hex digits, read as a fraction of 2^32, are under HELD_OUT_FRACTION. An item therefore stays
on its side of the split however many items are added later.

A correction's label is a digit or "not_digit" (functions/feedback/item.py NOT_DIGIT). A digit
correction trains as that digit, whatever the model had answered (a digit, or "not a digit"); a
"not a digit" one trains as the eleventh class, NOT_DIGIT_LABEL, beside the generated negatives
(conversion/negatives.py), under the same split, repeat factor and cap as the digits. A recipe
without the eleventh class leaves those out.

Past the share of MNIST that corrections may take (MAX_SHARE), training keeps a random sample of
the items to train on, drawn with a seed chosen when the run starts (recorded in the report as
`sample_seed`; FEEDBACK_SAMPLE_SEED=<that seed> repeats a run's choice). An id is its content's
hash, and whoever sends an item chooses its content: any rule that ranks items by id can be
steered by grinding content until an id lands where the rule looks first. A rank keyed with a seed
nobody knows before the run cannot be, so each item has the same chance of being kept.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import logging
import os
import secrets
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from functions.api.request_errors import InvalidInput
from functions.feedback.errors import InvalidItem
from functions.feedback.item import (
    ITEMS,
    NOT_DIGIT,
    FeedbackItem,
    item_from_stored,
    stored_document,
)
from functions.json_codec import parse_json, to_json
from functions.model_contract import NUM_CLASSES

FEEDBACK_ENV = "FEEDBACK_SOURCE"
SAMPLE_SEED_ENV = "FEEDBACK_SAMPLE_SEED"  # to repeat a run's sample: the seed its report names
STORAGE = "storage"
# A fifth of the items, chosen by id, measure the model on the site's own drawings.
HELD_OUT_FRACTION = 0.2
# Corrections are few beside MNIST's 60,000 images, and each says where the model was wrong on
# the site's own drawings: each training item is seen REPEAT times an epoch (each time through
# the recipe's augmentation), but all copies together at most MAX_SHARE of the MNIST images
# trained on, and each item at least once. Corrections are not reviewed by anyone, so the
# factor stays small: a few wrong or hostile items cannot outweigh MNIST.
REPEAT = 5
MAX_SHARE = 0.05
# A stored item is under 4 KB; anything far larger is not one, and is not read.
MAX_ITEM_BYTES = 64 * 1024
READ_THREADS = 8
DOWNLOAD_BATCH = 256  # items in memory at once while reading the container
MALFORMED_EXAMPLES = 5
HELD_OUT_FILE = "feedback_held_out.npz"
# The training label of a "not a digit" correction (label NOT_DIGIT): the eleventh class, after
# the ten digits (conversion/network.py NOT_DIGIT_CLASS). A digit correction is that digit,
# whatever the model had answered.
NOT_DIGIT_LABEL = NUM_CLASSES

log = logging.getLogger("conversion.feedback")


class FeedbackError(Exception):
    """The feedback source cannot be read at all (no such path, no such container, storage
    unreachable); the message names it. A malformed item is never this: it is skipped."""


@dataclass(frozen=True)
class StoredItem:
    item: FeedbackItem
    received_at: str

    @property
    def id(self) -> str:
        return self.item.id

    def document(self) -> dict[str, object]:
        return stored_document(self.item, self.received_at)


@dataclass(frozen=True)
class Document:
    """One item's bytes as read, or why they could not be read (`problem`)."""

    where: str
    content: bytes | None
    problem: str | None = None


@dataclass
class Reading:
    """What a source holds: its valid items, the first of each id, in reading order."""

    source: str
    items: list[StoredItem] = field(default_factory=list)
    read: int = 0
    malformed: int = 0
    duplicates: int = 0
    malformed_examples: list[str] = field(default_factory=list)

    def skip(self, where: str, reason: str) -> None:
        self.malformed += 1
        if len(self.malformed_examples) < MALFORMED_EXAMPLES:
            self.malformed_examples.append(f"{where}: {reason}"[:300])  # no item's whole text
        log.warning("feedback: skipped %s: %s", where, reason)


@dataclass
class Feedback:
    """A source's items ready for training: ambiguous ones dropped, the rest split by id, each
    part sorted by id (so the order items were read in never changes training)."""

    reading: Reading
    training: list[StoredItem]
    held_out: list[StoredItem]
    ambiguous: int
    over_share: int = 0  # training items left out by within_share
    sample_seed: str | None = None  # the seed of within_share's sample, when it drew one

    def within_share(self, mnist_images: int, seed: str | None = None) -> Feedback:
        """At most MAX_SHARE of `mnist_images` training items, each seen at least once: past
        that, a random sample of them (see the module's docstring), the rest left out and
        counted, so unreviewed corrections never outweigh MNIST however many arrive. The sample
        is drawn with `seed`, else $FEEDBACK_SAMPLE_SEED, else a new random seed."""
        cap = max(1, int(MAX_SHARE * mnist_images))
        if len(self.training) <= cap:
            return self
        seed = seed or os.environ.get(SAMPLE_SEED_ENV) or secrets.token_hex(16)
        log.info(
            "feedback: %d of %d kept to train on, drawn with seed %s", cap, len(self.training), seed
        )
        kept = sorted(self.training, key=lambda stored: sample_rank(seed, stored.id))[:cap]
        return replace(
            self,
            training=sorted(kept, key=lambda stored: stored.id),
            over_share=self.over_share + len(self.training) - cap,
            sample_seed=seed,
        )

    def training_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return arrays(self.training)

    def held_out_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        return arrays(self.held_out)

    def record(self, repeat: int) -> dict:
        """The counts the report and the model card state."""
        reading = self.reading
        return {
            "source": reading.source,
            "read": reading.read,
            "malformed": reading.malformed,
            "duplicates": reading.duplicates,
            "ambiguous": self.ambiguous,
            "used": len(self.training) + len(self.held_out),
            "training": len(self.training),
            "training_not_digit": _not_digit_count(self.training),
            "over_share": self.over_share,
            "sample_seed": self.sample_seed,
            "held_out": len(self.held_out),
            "held_out_not_digit": _not_digit_count(self.held_out),
            "held_out_fraction": HELD_OUT_FRACTION,
            "repeat": repeat,
            "training_copies": len(self.training) * repeat,
            "training_sha256": ids_digest(item.id for item in self.training),
            "malformed_examples": list(reading.malformed_examples),
        }


def no_feedback_record() -> dict:
    """The record of a run given no feedback source: every count zero."""
    return {
        "source": None,
        "read": 0,
        "malformed": 0,
        "duplicates": 0,
        "ambiguous": 0,
        "used": 0,
        "training": 0,
        "training_not_digit": 0,
        "over_share": 0,
        "sample_seed": None,
        "held_out": 0,
        "held_out_not_digit": 0,
        "held_out_fraction": HELD_OUT_FRACTION,
        "repeat": 0,
        "training_copies": 0,
        "training_sha256": None,
        "malformed_examples": [],
    }


# --- reading ---------------------------------------------------------------------------------


def load_feedback(source: str | None = None) -> Feedback | None:
    """The feedback from `source`, else from $FEEDBACK_SOURCE; None when neither names one."""
    chosen = source if source is not None else os.environ.get(FEEDBACK_ENV)
    if not chosen:
        return None
    feedback = prepare(read_feedback(chosen))
    reading = feedback.reading
    log.info(
        "feedback: %s: %d read; %d malformed, %d duplicates, %d ambiguous dropped; "
        "%d to train on, %d held out",
        reading.source,
        reading.read,
        reading.malformed,
        reading.duplicates,
        feedback.ambiguous,
        len(feedback.training),
        len(feedback.held_out),
    )
    return feedback


def read_feedback(source: str, *, container=None) -> Reading:
    """Every valid item of `source` (see the module's docstring), the first of each id.
    `container`: the ContainerClient to read for `storage` (default: from the settings)."""
    if source == STORAGE:
        container = container if container is not None else settings_container()
        name = f"{STORAGE} (container {container.container_name})"
        return read_documents(_container_documents(container), name)
    path = Path(source)
    if path.is_dir():
        return read_documents(_folder_documents(path), str(path))
    if path.is_file():
        return read_documents(_lines(path), str(path))
    raise FeedbackError(
        f"{source}: no such file or folder; expected a JSON Lines export, a folder of item "
        f"files, or {STORAGE!r} for the feedback container"
    )


def read_documents(documents: Iterable[Document], source: str) -> Reading:
    reading = Reading(source)
    seen: set[str] = set()
    for document in documents:
        reading.read += 1
        try:
            stored = parse_document(document)
        except (InvalidItem, InvalidInput) as error:  # not an item, or no JSON at all
            reading.skip(document.where, error.detail)
            continue
        if stored.id in seen:
            reading.duplicates += 1
            continue
        seen.add(stored.id)
        reading.items.append(stored)
    return reading


def parse_document(document: Document) -> StoredItem:
    if document.problem is not None:
        raise InvalidItem(document.problem)
    if document.content is None or len(document.content) > MAX_ITEM_BYTES:
        raise InvalidItem(f"over {MAX_ITEM_BYTES} bytes: not an item")
    parsed = parse_json(document.content)
    item = item_from_stored(parsed)  # checks every field, received_at a string among them
    return StoredItem(item=item, received_at=parsed["received_at"])


def _lines(path: Path) -> Iterator[Document]:
    try:
        with open(path, "rb") as stream:
            number = 0
            while line := stream.readline(MAX_ITEM_BYTES + 1):  # never more than an item's worth
                number += 1
                if len(line) > MAX_ITEM_BYTES:
                    yield Document(f"{path}:{number}", None, f"over {MAX_ITEM_BYTES} bytes")
                    while not line.endswith(b"\n") and line:  # skip the rest, bounded reads
                        line = stream.readline(MAX_ITEM_BYTES + 1)
                elif line.strip():
                    yield Document(f"{path}:{number}", line)
    except OSError as error:
        raise FeedbackError(f"{path}: cannot read ({error})") from error


def _folder_documents(folder: Path) -> Iterator[Document]:
    files = sorted(
        (
            path
            for path in folder.rglob("*")
            if path.suffix in {".json", ".jsonl"}
            and path.is_file()
            and not path.name.startswith(".")
        ),
        key=lambda path: path.relative_to(folder).as_posix(),
    )
    for path in files:
        if path.suffix == ".jsonl":
            yield from _lines(path)
            continue
        try:
            if path.stat().st_size > MAX_ITEM_BYTES:
                yield Document(str(path), None, f"over {MAX_ITEM_BYTES} bytes: not an item")
                continue
            yield Document(str(path), path.read_bytes())
        except OSError as error:
            raise FeedbackError(f"{path}: cannot read ({error})") from error


def settings_container(
    connection_string: str | None = None, account_url: str | None = None, name: str | None = None
):
    """The feedback container as the function app reaches it (contracts.md section 3): the
    MODELS_STORAGE connection and FEEDBACK_CONTAINER, unless the arguments say otherwise."""
    from functions.settings import (  # noqa: PLC0415 - storage only for `storage`
        MissingSetting,
        command_line_connection,
        feedback_container,
    )
    from functions.storage.clients import blob_service_client, bounded_retries  # noqa: PLC0415

    try:
        connection = command_line_connection(connection_string, account_url)
    except MissingSetting as error:
        raise FeedbackError(f"cannot reach the feedback container: {error}") from None
    service = blob_service_client(connection, **bounded_retries())
    return service.get_container_client(name or feedback_container())


def _container_documents(container) -> Iterator[Document]:
    from azure.core.exceptions import AzureError, ResourceNotFoundError  # noqa: PLC0415

    name = container.container_name
    try:
        blobs = [
            (blob.name, blob.size)
            for blob in container.list_blobs(name_starts_with=ITEMS)
            if blob.name.endswith(".json")
        ]
    except ResourceNotFoundError:
        raise FeedbackError(f"the feedback container {name!r} does not exist") from None
    except AzureError as error:
        raise FeedbackError(f"cannot list the feedback container {name!r}: {error}") from error

    def download(blob: tuple[str, int]) -> Document | None:
        path, size = blob
        where = f"{name}/{path}"
        if size > MAX_ITEM_BYTES:
            return Document(where, None, f"{size} bytes: not an item")
        try:
            return Document(where, container.download_blob(path).readall())
        except ResourceNotFoundError:
            return None  # deleted since the listing (retention): not there to read
        except AzureError as error:
            raise FeedbackError(f"cannot read {where}: {error}") from error

    # A batch at a time: map() downloads all it is given at once, and a container holds many.
    with ThreadPoolExecutor(READ_THREADS) as pool:
        for start in range(0, len(blobs), DOWNLOAD_BATCH):
            batch = blobs[start : start + DOWNLOAD_BATCH]
            for document in pool.map(download, batch):  # in the listing's order
                if document is not None:
                    yield document


# --- preparing -------------------------------------------------------------------------------


def prepare(reading: Reading) -> Feedback:
    """Drops ambiguous items and splits the rest by id."""
    labels: dict[bytes, set[int | str]] = defaultdict(set)
    for stored in reading.items:
        labels[stored.item.pixels.tobytes()].add(stored.item.label)
    clear = [stored for stored in reading.items if len(labels[stored.item.pixels.tobytes()]) == 1]
    clear.sort(key=lambda stored: stored.id)
    return Feedback(
        reading=reading,
        training=[stored for stored in clear if not is_held_out(stored.id)],
        held_out=[stored for stored in clear if is_held_out(stored.id)],
        ambiguous=len(reading.items) - len(clear),
    )


def is_held_out(item_id: str) -> bool:
    return int(item_id[:8], 16) < HELD_OUT_FRACTION * 2**32


def sample_rank(seed: str, item_id: str) -> bytes:
    """An item's place in the sample drawn with `seed` (lowest first): HMAC-SHA256 of its id,
    keyed with the seed, so that without the seed no content can be chosen to rank first."""
    return hmac.new(seed.encode(), item_id.encode(), hashlib.sha256).digest()


def repeat_factor(training_items: int, mnist_images: int) -> int:
    """How many times each training item is trained on an epoch (see REPEAT, MAX_SHARE)."""
    if not training_items:
        return 0
    return max(1, min(REPEAT, int(MAX_SHARE * mnist_images) // training_items))


def arrays(items: list[StoredItem]) -> tuple[np.ndarray, np.ndarray]:
    """(n, 28, 28) uint8 images and (n,) uint8 labels, as MNIST's: a digit correction's label
    is its digit, a "not a digit" one's NOT_DIGIT_LABEL."""
    images = np.zeros((len(items), 28, 28), dtype=np.uint8)
    for row, stored in enumerate(items):
        images[row] = stored.item.pixels
    labels = np.array([training_label(stored.item.label) for stored in items], dtype=np.uint8)
    return images, labels


def training_label(label: int | str) -> int:
    """An item's label as a class to train on: the digit, or NOT_DIGIT_LABEL."""
    return NOT_DIGIT_LABEL if label == NOT_DIGIT else int(label)


def _not_digit_count(items: list[StoredItem]) -> int:
    return sum(1 for stored in items if stored.item.label == NOT_DIGIT)


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted ids, one a line: which items, and so which content, were used."""
    return hashlib.sha256("".join(f"{item_id}\n" for item_id in sorted(ids)).encode()).hexdigest()


def training_data_sha256(mnist_sha256: str, feedback: dict | None) -> str:
    """The model's `training_data_sha256`: MNIST's file alone, or, with feedback trained on,
    the sha256 of MNIST's and the feedback items' digests together."""
    if not feedback or not feedback.get("training"):
        return mnist_sha256
    combined = f"mnist {mnist_sha256}\nfeedback {feedback['training_sha256']}\n"
    return hashlib.sha256(combined.encode()).hexdigest()


# --- the held-out part between the train and evaluate steps --------------------------------


def save_held_out(feedback: Feedback, folder: str | os.PathLike) -> Path:
    images, labels = feedback.held_out_arrays()
    path = Path(folder) / HELD_OUT_FILE
    ids = np.array([stored.id for stored in feedback.held_out], dtype="U64")
    np.savez(path, x=images, y=labels, ids=ids)
    return path


def load_held_out(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return archive["x"].astype(np.uint8), archive["y"].astype(np.uint8)


# --- export ----------------------------------------------------------------------------------


def export(reading: Reading, out: str | os.PathLike) -> Path:
    """Writes the reading's items, one stored document a line, in reading order; written beside
    and renamed, so `out` is never a partial file."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "wb") as stream:
        for stored in reading.items:
            stream.write(to_json(stored.document()) + b"\n")
    partial.replace(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    exporting = commands.add_parser(
        "export", help="write the valid items, one per line (JSON Lines), de-duplicated by id"
    )
    exporting.add_argument("out", help="the .jsonl file to write")
    exporting.add_argument(
        "--source",
        default=STORAGE,
        help="what to export: %(default)s (the container), an export or a folder",
    )
    exporting.add_argument(
        "--connection-string", help="the storage account (default: the MODELS_STORAGE setting)"
    )
    exporting.add_argument("--account-url", help="https://<account>.blob.core.windows.net")
    exporting.add_argument(
        "--container", help="default: the FEEDBACK_CONTAINER setting, else feedback"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        container = None
        if args.source == STORAGE:
            container = settings_container(args.connection_string, args.account_url, args.container)
        reading = read_feedback(args.source, container=container)
        path = export(reading, args.out)
    except (FeedbackError, OSError) as error:
        print(f"not exported: {error}", file=sys.stderr)
        return 1
    print(
        f"exported {len(reading.items)} items from {reading.source} to {path} "
        f"({reading.read} read, {reading.malformed} malformed and {reading.duplicates} "
        f"duplicates left out)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
