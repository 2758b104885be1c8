"""The signature of a model file: HMAC-SHA256 of its sha256 (hex), keyed by the signing key
setting. Shared by the publisher, which writes it into the blob's metadata, and the gate, which
checks it."""

from __future__ import annotations

import hashlib
import hmac

# The drop's blob metadata (contracts.md section 3): its content's sha256, and its signature.
SHA256_KEY = "sha256"
SIGNATURE_KEY = "signature"


def drop_metadata(content: bytes, key: bytes | None) -> dict[str, str]:
    """What a drop carries so that the gate can check it: the sha256, signed when a key is set."""
    sha256 = hashlib.sha256(content).hexdigest()
    metadata = {SHA256_KEY: sha256}
    if key:
        metadata[SIGNATURE_KEY] = signature(sha256, key)
    return metadata


def signature(sha256_hex: str, key: bytes) -> str:
    return hmac.new(key, sha256_hex.encode(), hashlib.sha256).hexdigest()


def is_valid(signature_hex: str, sha256_hex: str, key: bytes) -> bool:
    return hmac.compare_digest(signature_hex.lower(), signature(sha256_hex, key))
