"""API keys and dashboard sessions: only sha256 digests of keys are configured, a key is
compared in constant time against each of them, and sessions are HMAC-signed tokens."""

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


# ------------------------------------------------------------------ browser sessions

# A browser cannot add the API key header to page loads, so the dashboard trades a valid key for
# a signed session cookie. The cookie contains no key, only an expiry, a random nonce and a keyed
# fingerprint of the key's configured digest, so removing that digest ends its sessions.
SESSION_COOKIE = "escalation_session"
SESSION_VERSION = "v1"
_FINGERPRINT_CHARS = 32


def matching_digest(key: str | None, digests: tuple[str, ...]) -> str | None:
    """Return the configured digest that `key` hashes to, or None.

    Like `is_valid_key`, every digest is compared, so the time taken does not depend on which
    one matched.
    """
    if not key:
        return None
    candidate = hash_api_key(key)
    found: str | None = None
    for digest in digests:
        if hmac.compare_digest(candidate, digest):
            found = digest
    return found


def issue_session_token(digest: str, secret: bytes, ttl_seconds: int, now: float) -> str:
    """Return a session token for the key configured as `digest`, valid for `ttl_seconds`.

    The format is `v1.<expiry unix seconds>.<key fingerprint>.<nonce>.<HMAC-SHA256 signature>`.
    """
    if ttl_seconds <= 0:
        raise ValueError(f"ttl_seconds is {ttl_seconds}; it must be > 0")
    expires = int(now) + ttl_seconds
    payload = ".".join((SESSION_VERSION, str(expires), _fingerprint(digest, secret),
                        secrets.token_urlsafe(12)))
    return f"{payload}.{_sign(payload, secret)}"


def verify_session_token(
    token: str | None, secret: bytes, digests: tuple[str, ...], now: float, max_ttl_seconds: int
) -> bool:
    """Return True when `token` is signed with `secret`, unexpired, and its key still configured.

    A token whose expiry lies more than `max_ttl_seconds` after `now` is rejected, so lowering
    the configured session lifetime also shortens the sessions issued before the change.
    """
    # Issued tokens are ASCII, so any other token is forged. It must not reach `_sign`, which
    # encodes as ASCII, or `hmac.compare_digest`, which raises TypeError on non-ASCII str.
    if not token or not token.isascii():
        return False
    parts = token.split(".")
    if len(parts) != 5 or parts[0] != SESSION_VERSION or not parts[1].isdigit():
        return False

    payload, signature = ".".join(parts[:4]), parts[4]
    if not hmac.compare_digest(signature, _sign(payload, secret)):
        return False
    expires = int(parts[1])
    if expires <= now or expires > now + max_ttl_seconds:
        return False

    fingerprint = parts[2]
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(fingerprint, _fingerprint(digest, secret))
    return matched


def _fingerprint(digest: str, secret: bytes) -> str:
    mac = hmac.new(secret, b"key:" + digest.encode("ascii"), hashlib.sha256)
    return mac.hexdigest()[:_FINGERPRINT_CHARS]


def _sign(payload: str, secret: bytes) -> str:
    mac = hmac.new(secret, b"session:" + payload.encode("ascii"), hashlib.sha256)
    return mac.hexdigest()
