"""Rows of the prediction log as read back, and the Outcome a caller records."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from serving.schema import MAX_ID_CHARS
from serving.tiers import Tier


def utc_now() -> datetime:
    """Return the current time as a timezone-aware UTC datetime."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class StoredTurn:
    """One scored turn as stored; `text` is None unless the log stores message text."""

    id: int
    conversation_id: str
    turn_index: int
    role: str
    bundle: str
    created_at: datetime
    escalation_probability: float
    sentiment: dict[str, float] | None
    frustration: float | None
    tier: Tier
    escalate: bool
    prepare_agent: bool
    reason_category: str | None
    reasons: list[dict[str, Any]]
    rule_matches: list[dict[str, Any]]
    escalation_threshold: float
    prepare_threshold: float
    latency_ms: float | None
    text_sha256: str
    text_length: int
    text: str | None
    turn: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredRouting:
    """One routing result as stored."""

    id: int
    conversation_id: str
    created_at: datetime
    status: str
    rule: str | None
    team: str | None
    agent: str | None
    level: str | None
    queue_position: int | None
    estimated_wait_seconds: float | None
    overflowed: bool
    overflow_from: str | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoredHandoff:
    """One handoff package as stored."""

    id: int
    conversation_id: str
    package_id: str
    created_at: datetime
    package: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    """Final state of a conversation, the ground truth that backtests and retraining join on."""

    conversation_id: str
    escalated: bool
    resolved: bool
    csat: int | None = None
    agent_id: str | None = None
    handle_seconds: float | None = None
    recorded_at: datetime | None = None
    notes: str | None = None

    def __post_init__(self) -> None:
        check_id("conversation_id", self.conversation_id)
        if self.csat is not None and not 1 <= self.csat <= 5:
            raise ValueError(f"csat is {self.csat}; it must be an integer from 1 to 5 or None")
        if self.handle_seconds is not None and not self.handle_seconds >= 0:
            raise ValueError(f"handle_seconds is {self.handle_seconds}; it must be >= 0 or None")
        if self.agent_id is not None:
            check_id("agent_id", self.agent_id)


@dataclass(frozen=True)
class OutboxEvent:
    """One webhook event for one target URL, as stored in the outbox.

    `body` is the exact JSON text to sign and send. `attempts` counts the deliveries started,
    including the one started by the claim that returned this event.
    """

    event_id: str
    idempotency_key: str
    event_type: str
    conversation_id: str
    target_url: str
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    last_status_code: int | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True)
class DeadLetter:
    """An event given up on after its last attempt, with the error of that attempt."""

    event_id: str
    idempotency_key: str
    event_type: str
    conversation_id: str
    target_url: str
    body: str
    attempts: int
    error: str
    status_code: int | None
    failed_at: datetime


def check_id(name: str, value: str) -> None:
    """Raise ValueError unless `value` is a non-empty id that fits an id column."""
    if not value or len(value) > MAX_ID_CHARS:
        raise ValueError(
            f"{name} {value[:40]!r} has {len(value)} characters; it must have 1 to "
            f"{MAX_ID_CHARS}"
        )
