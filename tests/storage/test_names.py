"""The name rules (functions/storage/names.py): only a checked `Candidate` reaches storage, and the
registry refuses a crafted version name itself, whoever calls it."""

from __future__ import annotations

import pytest

from functions.storage.errors import InvalidName
from functions.storage.names import Candidate, candidate_named
from tests.bad_models import good_model_bytes
from tests.promotion.test_promotion import store_and_point
from tests.promotion.test_promotion_lifecycle import blob_state


def test_the_registry_refuses_crafted_names_itself(container, registry):
    store_and_point(registry, "v1", good_model_bytes("v1"))
    before = blob_state(container)
    for name in ("../current.json", "x/../v.onnx", "../versions/v1.onnx", "v1\n.onnx"):
        with pytest.raises(InvalidName, match=r"not valid|does not end in \.onnx"):
            candidate_named(name)  # only a Candidate is ever claimed
    for version in ("../versions/v1", "../current", "a/b", "v1\n"):
        with pytest.raises(InvalidName, match="not valid"):
            Candidate(version)
        with pytest.raises(InvalidName):
            registry.store_version(version, b"x", {})
        with pytest.raises(InvalidName):
            registry.write_rejection(version, {})
    assert blob_state(container) == before
