"""The model registry's layout in its blob container (contracts.md section 2), with no Azure SDK
to load:

incoming/<version>.onnx   drop zone
versions/<version>.onnx   accepted versions, immutable once written
current.json              the pointer to the served version, changed only with ETag checks
rejected/<version>.json   why a dropped file was refused
audit/promotions.jsonl    one line per decision, an append blob never rewritten

The rest of the registry, one concern a module:
- names.py: the name rules (what a version may be called; a dropped file's Candidate);
- claims.py: the drop zone and its claims (leases kept while a decision runs, attempts counted);
- pointer.py: current.json, read and checked, and its swap (a write conditional on its ETag);
- model_registry.py: `ModelRegistry`, every operation on the container (those of claims.py and
  pointer.py, the accepted versions, the rejections and the audit log).
"""

from __future__ import annotations

import hashlib
import json

INCOMING = "incoming/"
VERSIONS = "versions/"
REJECTED = "rejected/"
POINTER = "current.json"
AUDIT = "audit/promotions.jsonl"
PROMOTED = "promoted"  # version metadata: "pending" until current.json points at it, then "true"


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def json_or_none(value: str | None) -> dict | None:
    """A metadata value that holds JSON, read; None when it is absent or unreadable."""
    try:
        return json.loads(value) if value else None
    except json.JSONDecodeError:
        return None
