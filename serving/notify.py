"""Webhook notifications: event signing, delivery with retries, and the outbox worker.

When a conversation is escalated or re-routed, `enqueue_notification` writes one outbox row per
configured URL, in the caller's transaction when it passes `PredictionLog.transaction()`'s log.
An `OutboxWorker` thread claims due rows and POSTs them, so an event survives a restart:
delivery is at least once, and receivers deduplicate on the `Idempotency-Key` header, which
stays the same on every retry of an event.

Signature scheme, version v1
    The sender takes the current Unix time in whole seconds `t` and the exact body bytes `b`,
    computes HMAC-SHA256 with the shared secret over the bytes `f"{t}."` followed by `b`, and
    sends the header `X-Escalation-Signature: t=<t>,v1=<lowercase hex digest>`. A receiver
    recomputes the digest over the raw body before parsing it, compares in constant time and
    rejects a timestamp more than its tolerance (300 s by default) away from its clock, which
    bounds replays. `verify_signature` does all of this. A header may carry several v1 values,
    so a receiver can accept an old and a new secret while the secret is rotated.

Delivery outcomes
    2xx: delivered. 408, 429, 5xx, timeouts and connection errors: retried with exponential
    backoff (a Retry-After in seconds lengthens the wait, up to the maximum delay). Any other
    status, including 3xx because redirects are not followed: dead at once, because the
    receiver rejected the request itself and the same bytes would be rejected again. An event
    still failing after `max_attempts` moves to the dead_letters table with its last error.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, NoReturn
from urllib.parse import urlsplit

import httpx

from serving.errors import SignatureError, StoreError, WebhookConfigError
from serving.store import OutboxEvent, PredictionLog, utc_now

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Escalation-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_ID_HEADER = "X-Escalation-Event-Id"
EVENT_TYPE_HEADER = "X-Escalation-Event-Type"
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
MIN_SECRET_CHARS = 16

RETRYABLE_STATUS_CODES = frozenset({408, 429})
# A receiver's error text is kept in the outbox to help debug it, but only this much of it.
MAX_ERROR_BODY_CHARS = 200
# While the database is down the worker logs the first failed poll and then every Nth.
POLL_FAILURE_LOG_EVERY = 30


class EventType(StrEnum):
    """Webhook event types."""

    ESCALATED = "conversation.escalated"
    REROUTED = "conversation.rerouted"


# ------------------------------------------------------------------------------ signing


def compute_signature(secret: str | bytes, timestamp: int, body: str | bytes) -> str:
    """Return the hex HMAC-SHA256 of `f"{timestamp}."` followed by the body bytes."""
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    payload = body.encode("utf-8") if isinstance(body, str) else body
    return hmac.new(key, f"{timestamp}.".encode("ascii") + payload, hashlib.sha256).hexdigest()


def signature_header(secret: str | bytes, body: str | bytes, timestamp: int | None = None) -> str:
    """Return the value of the X-Escalation-Signature header for `body` signed at `timestamp`."""
    signed_at = int(time.time()) if timestamp is None else timestamp
    return f"t={signed_at},{SIGNATURE_VERSION}={compute_signature(secret, signed_at, body)}"


def verify_signature(
    secret: str | bytes,
    header: str,
    body: str | bytes,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> int:
    """Check an X-Escalation-Signature header against the raw body; return its timestamp.

    Raises SignatureError when the header is malformed, its timestamp is more than
    `tolerance_seconds` away from `now` (default: the current time), or no v1 signature
    matches the body.
    """
    timestamp, signatures = _parse_signature_header(header)

    current = time.time() if now is None else now
    skew = abs(current - timestamp)
    if skew > tolerance_seconds:
        raise SignatureError(
            f"signature timestamp {timestamp} is {skew:.0f} s away from now, more than the "
            f"tolerance of {tolerance_seconds:.0f} s; the request is a replay or the sender's "
            "clock is wrong"
        )

    expected = compute_signature(secret, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures):
        raise SignatureError(
            "no v1 signature matches the body; the body was changed after signing, or the "
            "shared secret differs from the sender's"
        )
    return timestamp


def _parse_signature_header(header: str) -> tuple[int, list[str]]:
    timestamps: list[str] = []
    signatures: list[str] = []
    for item in header.split(","):
        name, separator, value = item.strip().partition("=")
        if not separator:
            continue
        if name == "t":
            timestamps.append(value)
        elif name == SIGNATURE_VERSION:
            signatures.append(value)

    valid_timestamp = len(timestamps) == 1 and timestamps[0].isascii() and timestamps[0].isdigit()
    if not valid_timestamp or not signatures:
        raise SignatureError(
            f"malformed {SIGNATURE_HEADER} header {header[:120]!r}: expected "
            f"'t=<unix seconds>,{SIGNATURE_VERSION}=<hex>'"
        )
    return int(timestamps[0]), signatures


# ------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff between delivery attempts of one event.

    The wait after failed attempt n (from 1) is base_delay_seconds * factor ** (n - 1), at most
    max_delay_seconds, shortened by a random fraction up to `jitter` so that events that failed
    together do not retry together. With the defaults and no jitter, the nine waits add up to
    about 36 minutes before the tenth and last attempt.
    """

    base_delay_seconds: float = 5.0
    factor: float = 2.0
    max_delay_seconds: float = 900.0
    max_attempts: int = 10
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.base_delay_seconds >= 0:
            _reject("retry.base_delay_seconds", self.base_delay_seconds, "a number >= 0")
        if not self.factor >= 1:
            _reject("retry.factor", self.factor, "a number >= 1")
        if not self.max_delay_seconds >= self.base_delay_seconds:
            _reject("retry.max_delay_seconds", self.max_delay_seconds,
                    f"a number >= base_delay_seconds ({self.base_delay_seconds})")
        if self.max_attempts < 1:
            _reject("retry.max_attempts", self.max_attempts, "an integer >= 1")
        if not 0 <= self.jitter <= 1:
            _reject("retry.jitter", self.jitter, "a fraction from 0 to 1")

    def delay_seconds(self, attempt: int, rng: random.Random | None = None) -> float:
        """Return the wait in seconds after failed attempt `attempt` (counted from 1)."""
        exponent = max(attempt - 1, 0)
        delay = min(self.max_delay_seconds, self.base_delay_seconds * self.factor ** exponent)
        if self.jitter > 0:
            delay *= 1 - self.jitter * (rng or random).random()
        return delay


@dataclass(frozen=True)
class WebhookSettings:
    """Webhook target URLs, signing secret and delivery settings of the outbox worker."""

    urls: tuple[str, ...]
    secret: str = field(repr=False)
    timeout_seconds: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    poll_interval_seconds: float = 1.0
    batch_size: int = 10
    lease_seconds: float = 120.0

    def __post_init__(self) -> None:
        for url in self.urls:
            if not url.startswith(("http://", "https://")):
                _reject("urls", url, "URLs starting with http:// or https://")
        if self.urls and len(self.secret) < MIN_SECRET_CHARS:
            raise WebhookConfigError(
                f"the webhook secret has {len(self.secret)} characters; events to "
                f"{len(self.urls)} URL(s) need a shared secret of at least {MIN_SECRET_CHARS}, "
                "e.g. from `python -c 'import secrets; print(secrets.token_hex(32))'`"
            )
        if not self.timeout_seconds > 0:
            _reject("timeout_seconds", self.timeout_seconds, "a number > 0")
        if not self.poll_interval_seconds > 0:
            _reject("poll_interval_seconds", self.poll_interval_seconds, "a number > 0")
        if self.batch_size < 1:
            _reject("batch_size", self.batch_size, "an integer >= 1")
        # A batch is sent one event after another. A lease shorter than the whole batch could
        # expire while an event is still in flight, and another worker would then send it again.
        longest_batch = self.batch_size * self.timeout_seconds
        if not self.lease_seconds > longest_batch:
            _reject("lease_seconds", self.lease_seconds,
                    f"more than batch_size * timeout_seconds = {longest_batch:g}")


def _reject(name: str, value: object, allowed: str) -> NoReturn:
    raise WebhookConfigError(f"webhook setting {name} is {value!r}; it must be {allowed}")


# ------------------------------------------------------------------------------ enqueue


def enqueue_notification(
    log: PredictionLog,
    event_type: EventType | str,
    conversation_id: str,
    data: Mapping[str, Any],
    urls: Sequence[str],
    *,
    idempotency_key: str | None = None,
    occurred_at: datetime | None = None,
) -> list[str]:
    """Write one outbox row per URL for an event and return the event ids ([] without URLs).

    The body is {"id": idempotency key, "type", "conversation_id", "occurred_at", "data"}.
    Pass the log yielded by `log.transaction()` to commit the rows with the decision.
    """
    try:
        kind = EventType(event_type)
    except ValueError:
        allowed = ", ".join(member.value for member in EventType)
        raise ValueError(f"unknown event type {event_type!r}; use one of: {allowed}") from None
    if not urls:
        return []

    key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
    moment = occurred_at or utc_now()
    body = {
        "id": key,
        "type": kind.value,
        "conversation_id": conversation_id,
        "occurred_at": moment.isoformat(),
        "data": data,
    }
    event_ids = log.enqueue_event(kind.value, conversation_id, body, urls,
                                  idempotency_key=key, now=moment)
    logger.info("enqueued %s of conversation %s for %d URL(s) (idempotency key %s)",
                kind.value, conversation_id, len(event_ids), key)
    return event_ids


# ------------------------------------------------------------------------------ delivery


@dataclass(frozen=True)
class DeliveryResult:
    """Result of one POST of an event."""

    outcome: Literal["delivered", "retry", "dead"]
    status_code: int | None
    error: str | None
    retry_after_seconds: float | None = None


def send_event(
    client: httpx.Client, event: OutboxEvent, secret: str, *, timeout_seconds: float
) -> DeliveryResult:
    """POST one outbox event, signed now, and classify the response (see the module docstring)."""
    body = event.body.encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature_header(secret, body),
        IDEMPOTENCY_HEADER: event.idempotency_key,
        EVENT_ID_HEADER: event.event_id,
        EVENT_TYPE_HEADER: event.event_type,
    }
    try:
        response = client.post(event.target_url, content=body, headers=headers,
                               timeout=timeout_seconds)
    except httpx.TimeoutException as error:
        return DeliveryResult("retry", None, f"timed out after {timeout_seconds:g} s "
                                             f"({type(error).__name__})")
    except httpx.TransportError as error:
        return DeliveryResult("retry", None, f"{type(error).__name__}: {error}")

    return _classify(response)


def _classify(response: httpx.Response) -> DeliveryResult:
    status = response.status_code
    if 200 <= status < 300:
        return DeliveryResult("delivered", status, None)

    error = f"HTTP {status} {response.reason_phrase}"
    excerpt = " ".join(response.text[:MAX_ERROR_BODY_CHARS].split())
    if excerpt:
        error = f"{error}: {excerpt}"
    if status in RETRYABLE_STATUS_CODES or status >= 500:
        return DeliveryResult("retry", status, error, _retry_after(response))
    return DeliveryResult("dead", status, error)


def _retry_after(response: httpx.Response) -> float | None:
    # NOTE: only the delay-seconds form is read; an HTTP-date Retry-After falls back to backoff.
    value = response.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def target_label(url: str) -> str:
    """Return scheme, host and port of a URL for logs: paths and queries can hold tokens."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


# ------------------------------------------------------------------------------ worker


class OutboxWorker:
    """A background thread that delivers due outbox events and records each outcome.

    `run_once` delivers one batch in the calling thread, for tests and for `stop(flush=True)`.
    Several workers, in one process or many, may share a database: claims never overlap. Each
    event goes to the URL stored in its outbox row, so removing a URL from the settings does
    not cancel events already queued for it.
    """

    def __init__(
        self,
        log: PredictionLog,
        settings: WebhookSettings,
        *,
        client: httpx.Client | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if len(settings.secret) < MIN_SECRET_CHARS:
            raise WebhookConfigError(
                f"the outbox worker signs every event, but the webhook secret has "
                f"{len(settings.secret)} characters; set one of at least {MIN_SECRET_CHARS}"
            )
        self.log = log
        self.settings = settings
        # NOTE: httpx logs every request URL at INFO on the "httpx" logger. When webhook URLs
        # carry tokens, the entry point should raise that logger to WARNING.
        self._client = client or httpx.Client(follow_redirects=False)
        self._owns_client = client is None
        self._rng = rng or random.Random()
        self._stop_requested = threading.Event()
        self._thread: threading.Thread | None = None
        self._stopped = False
        self.delivered_count = 0
        self.retry_count = 0
        self.dead_count = 0

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the background thread; a worker starts once and cannot restart after stop."""
        if self._stopped:
            raise RuntimeError("this outbox worker was stopped; create a new OutboxWorker")
        if self._thread is not None:
            raise RuntimeError("this outbox worker is already running")

        self._thread = threading.Thread(target=self._loop, name="outbox-worker", daemon=True)
        self._thread.start()
        logger.info("outbox worker started (poll every %.2f s, batch %d, %d URL(s))",
                    self.settings.poll_interval_seconds, self.settings.batch_size,
                    len(self.settings.urls))

    def stop(self, flush: bool = True, timeout: float = 10.0) -> None:
        """Stop the thread; with `flush`, deliver what is due before returning.

        Waits at most `timeout` seconds in all. Events that fail during the flush are scheduled
        for a later retry as usual and stay in the outbox for the next worker.
        """
        deadline = time.monotonic() + timeout
        self._stop_requested.set()
        if self._thread is not None:
            self._thread.join(timeout)
        thread_alive = self.running

        if flush and thread_alive:
            logger.warning("outbox worker thread still delivering after %.1f s; not flushing",
                           timeout)
        elif flush:
            self._flush(deadline)

        if self._owns_client and not thread_alive:
            self._client.close()
        self._stopped = True
        logger.info("outbox worker stopped (delivered %d, retries %d, dead %d)",
                    self.delivered_count, self.retry_count, self.dead_count)

    def _flush(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.run_once() == 0:
                return
        logger.warning("outbox flush timed out with %d event(s) pending",
                       self.log.pending_count())

    def run_once(self, now: datetime | None = None) -> int:
        """Claim one batch of due events, deliver each, record the outcomes; return the count."""
        events = self.log.claim_due_events(now, self.settings.batch_size,
                                           lease_seconds=self.settings.lease_seconds)
        for event in events:
            result = send_event(self._client, event, self.settings.secret,
                                timeout_seconds=self.settings.timeout_seconds)
            self._record(event, result)
        return len(events)

    def _loop(self) -> None:
        failures = 0
        while not self._stop_requested.is_set():
            try:
                claimed = self.run_once()
            except StoreError as error:
                failures += 1
                if failures == 1 or failures % POLL_FAILURE_LOG_EVERY == 0:
                    logger.warning("outbox poll failed (%d in a row): %s", failures, error)
                self._stop_requested.wait(self.settings.poll_interval_seconds)
                continue
            except Exception:
                # Keeps the thread alive through a bug; the events of the failed batch are
                # due again when their lease ends.
                failures += 1
                logger.exception("outbox poll raised an unexpected error (%d in a row)", failures)
                self._stop_requested.wait(self.settings.poll_interval_seconds)
                continue

            if failures:
                logger.info("outbox poll recovered after %d failed poll(s)", failures)
                failures = 0
            if claimed < self.settings.batch_size:
                self._stop_requested.wait(self.settings.poll_interval_seconds)

    def _record(self, event: OutboxEvent, result: DeliveryResult) -> None:
        target = target_label(event.target_url)
        if result.outcome == "delivered":
            self.log.mark_delivered(event.event_id, status_code=result.status_code)
            self.delivered_count += 1
            logger.info("delivered event %s (%s) of conversation %s to %s on attempt %d",
                        event.event_id, event.event_type, event.conversation_id, target,
                        event.attempts)
            return

        error = result.error or "unknown error"
        max_attempts = self.settings.retry.max_attempts
        if result.outcome == "dead" or event.attempts >= max_attempts:
            self.log.mark_dead(event.event_id, error=error, status_code=result.status_code)
            self.dead_count += 1
            logger.error("gave up on event %s (%s) of conversation %s to %s after %d "
                         "attempt(s): %s", event.event_id, event.event_type,
                         event.conversation_id, target, event.attempts, error)
            return

        delay = self._retry_delay(event.attempts, result.retry_after_seconds)
        next_attempt_at = utc_now() + timedelta(seconds=delay)
        self.log.mark_retry(event.event_id, next_attempt_at=next_attempt_at, error=error,
                            status_code=result.status_code)
        self.retry_count += 1
        logger.warning("delivery of event %s of conversation %s to %s failed on attempt %d of "
                       "%d: %s; retrying in %.2f s", event.event_id, event.conversation_id,
                       target, event.attempts, max_attempts, error, delay)

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        policy = self.settings.retry
        delay = policy.delay_seconds(attempt, self._rng)
        if retry_after is not None:
            delay = min(max(delay, retry_after), policy.max_delay_seconds)
        return delay
