"""Pick escalation and prepare thresholds for a stated target from a threshold curve."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from pipelines.backtest.sweep import ThresholdCurve

TargetKind = Literal["max_escalation_rate", "min_precision"]

# The command line option that sets each kind of target, for error messages.
TARGET_OPTIONS: dict[str, str] = {
    "max_escalation_rate": "--max-escalation-rate",
    "min_precision": "--min-precision",
}

# A precision measured on fewer escalated conversations moves by 20 points or more with a
# single conversation, so such a threshold is rejected unless the caller allows it.
MIN_ESCALATED = 5


@dataclass(frozen=True)
class Target:
    """Goal the escalation threshold must reach on the data: a rate cap or a precision floor."""

    kind: TargetKind
    value: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.value) and 0.0 < self.value <= 1.0):
            raise ValueError(f"{TARGET_OPTIONS[self.kind]} {self.value!r} is invalid; use a "
                             "share in (0, 1]")

    def describe(self) -> str:
        """Return the target as a phrase for messages and comments."""
        if self.kind == "max_escalation_rate":
            return f"conversation escalation rate at most {self.value:g}"
        return f"conversation precision at least {self.value:g}"


@dataclass(frozen=True)
class Choice:
    """A threshold and the conversation-level figures it gives on the tuning data."""

    threshold: float
    rate: float
    precision: float | None
    recall: float | None
    index: int
    """Position of the threshold's interval on the curve."""


def choose_escalation(curve: ThresholdCurve, target: Target) -> Choice:
    """Return the lowest threshold that meets `target`, so recall is as high as it allows.

    Raises ValueError naming the best value the data allows when no threshold meets it.
    """
    _require_labels(curve)
    if target.kind == "max_escalation_rate":
        meets = curve.rate <= target.value
        best = f"the lowest rate any threshold reaches is {np.nanmin(curve.rate):.4f}"
    else:
        meets = np.nan_to_num(curve.precision, nan=-1.0) >= target.value
        best = ("no threshold escalates any labelled conversation"
                if np.isnan(curve.precision).all() else
                f"the highest precision any threshold reaches is "
                f"{np.nanmax(curve.precision):.4f}")
    if not meets.any():
        raise ValueError(
            f"no escalation threshold reaches a {target.describe()} on this data: {best}. "
            "Relax the target. Rules escalate whatever the threshold, so switching one off in "
            "the policy changes what is reachable.")

    index = int(np.flatnonzero(meets)[0])
    return _choice(curve, index)


def choose_prepare(curve: ThresholdCurve, escalation: Choice, recall: float) -> Choice:
    """Return the highest prepare threshold, at or below the escalation one, reaching `recall`.

    Recall here is the share of conversations that needed a human in which an agent was
    prepared or the conversation escalated. Raises ValueError when no threshold reaches it.
    """
    if not (math.isfinite(recall) and 0.0 < recall <= 1.0):
        raise ValueError(f"--prepare-recall {recall!r} is invalid; use a share in (0, 1]")
    _require_labels(curve)
    allowed = np.arange(len(curve.thresholds)) <= escalation.index
    meets = allowed & (np.nan_to_num(curve.recall, nan=-1.0) >= recall)
    if not meets.any():
        raise ValueError(
            f"no prepare threshold reaches a recall of {recall:g} on this data: the highest "
            f"recall any threshold reaches is {np.nanmax(curve.recall):.4f}. Lower "
            "--prepare-recall.")

    index = int(np.flatnonzero(meets)[-1])
    if index == escalation.index:
        # Both thresholds escalate the same conversations, so the warning adds none.
        return escalation
    return _choice(curve, index)


def check_support(curve: ThresholdCurve, choice: Choice, target: Target) -> None:
    """Reject an escalation threshold whose figures rest on no or too few conversations.

    Raises ValueError with the counts when the threshold finds none of the conversations that
    needed a human (recall 0, typically a threshold above every probability in the data) or
    escalates fewer than MIN_ESCALATED labelled conversations.
    """
    found = round((choice.recall or 0.0) * curve.positives)
    above_all = choice.index == len(curve.thresholds) - 1 and len(curve.thresholds) > 1
    where = (f" It is above every model probability in the data (the highest below 1 is "
             f"{float(curve.thresholds[-2]):.4f}), so only rules escalate."
             if above_all else "")
    advice = ("Relax the target or tune on more labelled conversations, or pass "
              "--allow-weak-threshold to write it anyway.")
    if found == 0:
        raise ValueError(
            f"the lowest threshold that meets {target.describe()} is {choice.threshold}, and it "
            f"finds none of the {curve.positives} conversations that needed a human (recall 0, "
            f"conversation escalation rate {choice.rate:.4f}).{where} "
            f"{advice}")
    # Precision is true positives over escalated labelled conversations, so it gives the count.
    escalated = round(found / choice.precision) if choice.precision else 0
    if escalated < MIN_ESCALATED:
        raise ValueError(
            f"the lowest threshold that meets {target.describe()} is {choice.threshold}, but "
            f"it escalates only {escalated} of {curve.labelled} labelled conversations, fewer "
            f"than {MIN_ESCALATED}, so its precision {choice.precision:.4f} and recall "
            f"{choice.recall:.4f} rest on too few cases.{where} {advice}")


def _choice(curve: ThresholdCurve, index: int) -> Choice:
    low = float(curve.thresholds[index - 1]) if index > 0 else 0.0
    high = float(curve.thresholds[index])
    return Choice(
        threshold=short_cut(low, high) if high > low else high,
        rate=float(curve.rate[index]),
        precision=_optional(curve.precision[index]),
        recall=_optional(curve.recall[index]),
        index=index,
    )


def short_cut(low: float, high: float) -> float:
    """Return a short decimal in (low, high], near the middle, to write as the threshold.

    Every threshold in (low, high] escalates the same conversations. A cut away from both
    ends keeps the decision when a probability moves in its last bits, and reads better.
    """
    middle = (low + high) / 2
    for decimals in range(2, 18):
        candidate = round(middle, decimals)
        if low < candidate <= high:
            return candidate
    return high


def _require_labels(curve: ThresholdCurve) -> None:
    if curve.labelled == 0:
        raise ValueError(
            "the data carries no escalation labels (labels.escalated, per-turn "
            "labels.handoff or labels.satisfaction), so precision and recall cannot be "
            "measured; tune on labelled past conversations")
    if curve.positives == 0:
        raise ValueError(
            f"none of the {curve.labelled} labelled conversations needed a human, so recall "
            "is undefined; tune on data that contains escalated conversations")


def _optional(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
