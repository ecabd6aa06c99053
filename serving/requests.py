"""Bodies of the live service's requests: a new turn and a conversation's outcome."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from serving.schema import CustomerProfile, Turn


class TurnRequest(Turn):
    """One new turn, plus conversation details that the first turn may carry."""

    channel: str | None = Field(default=None, max_length=200)
    started_at: datetime | None = None
    customer: CustomerProfile | None = None

    def turn(self) -> Turn:
        """Return the turn alone, without the conversation details."""
        return Turn.model_validate(self.model_dump(
            exclude={"channel", "started_at", "customer"}, exclude_none=True))


class OutcomeRequest(BaseModel):
    """Final result of a conversation, reported by the support platform."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    escalated: bool
    resolved: bool
    csat: int | None = Field(default=None, ge=1, le=5)
    agent_id: str | None = Field(default=None, max_length=200)
    handle_seconds: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    notes: str | None = Field(default=None, max_length=2_000)
