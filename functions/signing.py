"""The signature of a model file: HMAC-SHA256 of its sha256 (hex), keyed by MODEL_SIGNING_KEY.
Shared by the publisher, which writes it into the blob's metadata, and the gate, which checks it."""

from __future__ import annotations

import hashlib
import hmac


def signature(sha256_hex: str, key: bytes) -> str:
    return hmac.new(key, sha256_hex.encode(), hashlib.sha256).hexdigest()


def is_valid(signature_hex: str, sha256_hex: str, key: bytes) -> bool:
    return hmac.compare_digest(signature_hex.lower(), signature(sha256_hex, key))
