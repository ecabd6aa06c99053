"""Urgency tiers with their service-level deadlines, and escalation reasons."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    """Urgency of a handoff: how soon a human must take the conversation."""

    IMMEDIATE = "immediate"
    RAPID = "rapid"
    SCHEDULED = "scheduled"
    NONE = "none"

    @property
    def sla_seconds(self) -> int | None:
        """Seconds within which an agent must join, or None when no handoff is due."""
        return TIER_SLA_SECONDS[self]

    @property
    def severity(self) -> int:
        """Rank for comparisons: higher is more urgent."""
        return TIER_SEVERITY[self]


TIER_SLA_SECONDS: dict[Tier, int | None] = {
    Tier.IMMEDIATE: 0,
    Tier.RAPID: 120,
    Tier.SCHEDULED: 300,
    Tier.NONE: None,
}

TIER_SEVERITY: dict[Tier, int] = {
    Tier.NONE: 0,
    Tier.SCHEDULED: 1,
    Tier.RAPID: 2,
    Tier.IMMEDIATE: 3,
}


def most_urgent(tiers: list[Tier]) -> Tier:
    """Return the most urgent tier of `tiers`, or Tier.NONE when it is empty."""
    return max(tiers, key=lambda tier: tier.severity, default=Tier.NONE)


class Reason(StrEnum):
    """Cause of an escalation, from which routing picks a team."""

    TECHNICAL = "technical"
    BILLING = "billing"
    ACCOUNT = "account"
    SALES = "sales"
    GENERAL = "general"
    URGENT = "urgent"
