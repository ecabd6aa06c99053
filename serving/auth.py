"""API keys: only their sha256 digests are configured, and a request's key is compared in
constant time against each of them."""

from __future__ import annotations

import hashlib
import hmac
import secrets

KEY_PREFIX = "esk_"
KEY_BYTES = 32


def hash_api_key(key: str) -> str:
    """Return the lowercase sha256 hex digest under which a key is configured."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key() -> tuple[str, str]:
    """Return a new random API key and its digest; show the key once, store only the digest."""
    key = KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)
    return key, hash_api_key(key)


def is_valid_key(key: str | None, digests: tuple[str, ...]) -> bool:
    """Return True when `key` hashes to one of `digests`.

    Every digest is compared, matched or not, with `hmac.compare_digest`, so the time taken
    reveals nothing about how close a guess was or which digest it matched.
    """
    if not key:
        return False
    candidate = hash_api_key(key)
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate, digest)
    return matched
