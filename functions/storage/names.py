"""The name rules of the model registry (contracts.md section 2): what a version may be called,
and which names in the drop zone are candidates. A name becomes part of a blob path only once it
passed them, so a crafted name cannot reach outside its folder. No Azure SDK to load."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from functions.storage.errors import InvalidName
from functions.storage.registry import INCOMING

VERSION_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # use fullmatch: no "\n"
MODEL_SUFFIX = ".onnx"
INVALID_NAME_PREFIX = "invalid-name-"


def checked_version(version: str) -> str:
    """The version itself, if VERSION_PATTERN allows it; InvalidName otherwise."""
    if not isinstance(version, str) or not VERSION_PATTERN.fullmatch(version):
        raise InvalidName(
            f"version {shown(version)} is not valid: 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return version


@dataclass(frozen=True)
class Candidate:
    """A file in the drop zone whose name passed the rules: `incoming/<version>.onnx`. Checked
    when made (`candidate_named` for a name found in incoming/, `Candidate(version)` for a
    version), so every Candidate names a valid version and a blob inside incoming/."""

    version: str
    blob: str = field(init=False)  # incoming/<version>.onnx

    def __post_init__(self) -> None:
        object.__setattr__(self, "blob", f"{INCOMING}{checked_version(self.version)}.onnx")

    @property
    def name(self) -> str:
        """The path under incoming/: `<version>.onnx`."""
        return self.blob.removeprefix(INCOMING)


def candidate_named(name: str) -> Candidate:
    """incoming/<name> -> its Candidate; InvalidName unless `name` is `<version>.onnx`."""
    if not isinstance(name, str) or not name.endswith(MODEL_SUFFIX):
        raise InvalidName(f"{shown(name)} does not end in .onnx; drop incoming/<version>.onnx")
    return Candidate(name.removesuffix(MODEL_SUFFIX))


def invalid_name_record(name: str) -> str:
    """What a refused name is recorded under (`rejected/<this>.json`): nothing of the name
    itself, only the first 12 hex digits of its sha256."""
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return INVALID_NAME_PREFIX + digest[:12]


def shown(value: object) -> str:
    """A name quoted for a message or log: escaped, and cut short (it may come from anyone)."""
    text = repr(value)
    return text if len(text) <= 100 else text[:97] + "..."
