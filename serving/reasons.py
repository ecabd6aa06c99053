"""Reason classification: why a conversation escalates, from rule evidence and embeddings.

The topic (technical, billing, account, sales or general) comes from the reason hints of the
rules that fired when there are any. Otherwise it comes from the cosine similarity between the
customer's messages and short descriptions of each reason (`policies/reasons.yaml`). Urgency is
a flag on top of the topic, so a conversation can be urgent and about billing at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, ValidationError

from serving.errors import ReasonConfigError
from serving.rules import RuleMatch
from serving.tiers import Reason

logger = logging.getLogger(__name__)

DEFAULT_REASONS_PATH = Path(__file__).resolve().parent / "policies" / "reasons.yaml"

TOPICS: tuple[Reason, ...] = (
    Reason.TECHNICAL,
    Reason.BILLING,
    Reason.ACCOUNT,
    Reason.SALES,
    Reason.GENERAL,
)

# Fallbacks for callers that build a classifier without the YAML file; the file's values win
# when it is loaded with `ReasonClassifier.from_config`.
DEFAULT_MIN_SIMILARITY = 0.25
DEFAULT_URGENT_MIN_SIMILARITY = 0.5

MAX_DESCRIPTION_CHARS = 500

AssessmentSource = Literal["rule", "similarity", "default"]
Embed = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ReasonAssessment:
    """Why a conversation escalates: a topic, an urgency flag, and the evidence for both.

    `reason` is always a topic, never Reason.URGENT. `scores` contains the cosine similarity of
    the conversation to each reason's descriptions, keyed by reason value, and is empty when no
    customer embedding was given. `source` names how the topic was chosen.
    """

    reason: Reason
    urgent: bool
    scores: dict[str, float]
    source: AssessmentSource
    evidence: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Return the assessment as plain JSON types."""
        return {
            "reason": self.reason.value,
            "urgent": self.urgent,
            "scores": dict(self.scores),
            "source": self.source,
            "evidence": list(self.evidence),
        }


# --------------------------------------------------------------------------------- config


Description = Annotated[
    str, Strict(), StringConstraints(strip_whitespace=True, min_length=1,
                                     max_length=MAX_DESCRIPTION_CHARS)
]
Similarity = Annotated[float, Strict(), Field(ge=-1.0, le=1.0)]


class ReasonConfig(BaseModel):
    """Reason descriptions and the similarity thresholds that apply to them."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: Literal[1] = 1
    min_similarity: Similarity = DEFAULT_MIN_SIMILARITY
    urgent_min_similarity: Similarity = DEFAULT_URGENT_MIN_SIMILARITY
    descriptions: dict[Reason, list[Description]]


def load_reason_config(path: str | Path | None = None) -> ReasonConfig:
    """Read and validate a reason descriptions YAML file; None reads the bundled default.

    Raises ReasonConfigError naming the file, the key and the value when anything is wrong.
    """
    resolved = Path(path) if path is not None else DEFAULT_REASONS_PATH
    source = str(resolved)
    data = _read_yaml(resolved, source)
    config = reason_config_from_dict(data, source=source)
    logger.info("loaded reason descriptions from %s (%d reasons)", source,
                len(config.descriptions))
    return config


def load_reason_descriptions(path: str | Path | None = None) -> dict[Reason, list[str]]:
    """Return the descriptions per reason from a reason YAML file; None reads the default."""
    return dict(load_reason_config(path).descriptions)


def _read_yaml(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReasonConfigError(f"{source}: file not found. Pass the path of a reason "
                                f"descriptions YAML file, or None for {DEFAULT_REASONS_PATH}"
                                ) from None
    except UnicodeDecodeError as error:
        raise ReasonConfigError(f"{source}: not UTF-8 text ({error.reason} at byte "
                                f"{error.start}). Save the file as UTF-8") from None
    except OSError as error:
        raise ReasonConfigError(f"{source}: cannot be read: {error.strerror}") from None

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ReasonConfigError(f"{source}: invalid YAML: {error}") from None
    if data is None:
        raise ReasonConfigError(f"{source}: file is empty. Copy {DEFAULT_REASONS_PATH} as a "
                                "start")
    return data


def reason_config_from_dict(data: Any, source: str = "reasons") -> ReasonConfig:
    """Validate a decoded reason configuration; `source` prefixes every error message.

    Every topic needs at least one description; `urgent` descriptions are optional, and
    without them only rules flag a conversation as urgent.
    """
    if not isinstance(data, dict):
        keys = ", ".join(ReasonConfig.model_fields)
        raise ReasonConfigError(f"{source}: top level is a {type(data).__name__}, but it must "
                                f"be a mapping with the keys {keys}")
    try:
        config = ReasonConfig.model_validate(data)
    except ValidationError as error:
        lines = [f"{source}: {_describe_problem(detail)}"
                 for detail in error.errors(include_url=False)]
        raise ReasonConfigError("\n".join(lines)) from None

    _check_descriptions(config.descriptions, source)
    return config


def _describe_problem(detail: Any) -> str:
    # pydantic reports a bad mapping key at the location "[key]" after the key itself.
    parts = [str(part) for part in detail.get("loc", ()) if part != "[key]"]
    key = ".".join(parts) or "(top level)"
    kind = detail.get("type")
    if kind == "extra_forbidden":
        return f"unknown key '{key}'; allowed keys: {', '.join(ReasonConfig.model_fields)}"
    if kind == "missing":
        return f"key '{key}' is missing; see {DEFAULT_REASONS_PATH} for an example"
    if kind == "enum":
        allowed = ", ".join(reason.value for reason in Reason)
        return f"key '{key}': unknown reason {detail.get('input')!r}; allowed: {allowed}"
    message = str(detail.get("msg", "invalid value"))
    return f"key '{key}': {detail.get('input')!r} is invalid: {message[:1].lower()}{message[1:]}"


def _check_descriptions(descriptions: Mapping[Reason, Sequence[str]], source: str) -> None:
    problems = [
        f"{source}: descriptions.{topic.value} is missing or empty; give at least one "
        "description for every topic"
        for topic in TOPICS
        if not descriptions.get(topic)
    ]
    if Reason.URGENT in descriptions and not descriptions[Reason.URGENT]:
        problems.append(f"{source}: descriptions.urgent is empty; give at least one "
                        "description or leave the key out")
    if problems:
        raise ReasonConfigError("\n".join(problems))


# ----------------------------------------------------------------------------- classifier


class ReasonClassifier:
    """Classify the reason of an escalation from rule matches and customer embeddings.

    `embed` maps texts to L2-normalised embeddings of shape [len(texts), dimension], such as
    `serving.encoder.Encoder.encode`. The descriptions are embedded once, here: each reason's
    embeddings are averaged and re-normalised into one unit vector (its centroid).
    """

    def __init__(
        self,
        descriptions: Mapping[Reason, Sequence[str]],
        embed: Embed,
        *,
        min_similarity: float = DEFAULT_MIN_SIMILARITY,
        urgent_min_similarity: float = DEFAULT_URGENT_MIN_SIMILARITY,
    ) -> None:
        _check_descriptions(descriptions, "descriptions")
        for name, value in (("min_similarity", min_similarity),
                            ("urgent_min_similarity", urgent_min_similarity)):
            if not (math.isfinite(value) and -1.0 <= value <= 1.0):
                raise ValueError(f"{name} {value!r} is invalid; a cosine similarity threshold "
                                 "must be in [-1, 1]")
        self.min_similarity = min_similarity
        self.urgent_min_similarity = urgent_min_similarity

        centroids = {reason: _centroid(reason, list(descriptions[reason]), embed)
                     for reason in descriptions}
        # A token encoder fitted on another language can embed the English descriptions as
        # zero rows. Such a reason is left to the rules instead of stopping the service.
        unusable = [reason.value for reason, centroid in centroids.items()
                    if not np.any(centroid)]
        if unusable:
            logger.warning("reason descriptions of %s share no term with the encoder, so only "
                           "rules can suggest them; write descriptions in the bundle's language",
                           ", ".join(unusable))
        self._reasons: tuple[Reason, ...] = tuple(
            reason for reason, centroid in centroids.items() if np.any(centroid))
        width = next(iter(centroids.values())).shape[0]
        self._centroids = np.zeros((len(self._reasons), width), dtype=np.float32)
        for row, reason in enumerate(self._reasons):
            self._centroids[row] = centroids[reason]

    @classmethod
    def from_config(cls, config: ReasonConfig, embed: Embed) -> ReasonClassifier:
        """Build a classifier with the descriptions and thresholds of `config`."""
        return cls(
            config.descriptions,
            embed,
            min_similarity=config.min_similarity,
            urgent_min_similarity=config.urgent_min_similarity,
        )

    @property
    def dimension(self) -> int:
        """Width of the embeddings that `classify` accepts."""
        return int(self._centroids.shape[1])

    def similarities(self, customer_embeddings: np.ndarray) -> dict[Reason, float]:
        """Return the cosine similarity of the customer messages to each reason's centroid.

        The messages are represented by the re-normalised mean of their embeddings. Returns an
        empty mapping when there are no messages or their mean is the zero vector.
        """
        rows = self._check_embeddings(customer_embeddings)
        if len(rows) == 0:
            return {}
        mean = rows.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        if norm == 0.0:
            return {}
        cosines = self._centroids @ (mean / norm)
        return {reason: float(value) for reason, value in zip(self._reasons, cosines,
                                                              strict=True)}

    def classify(
        self, matches: Sequence[RuleMatch], customer_embeddings: np.ndarray
    ) -> ReasonAssessment:
        """Classify the reason from the rule matches so far and the customer's embeddings.

        A topic hinted by a rule wins over similarity. Among several hinted topics the one of
        the most urgent rule wins, then the one most similar to the conversation, then the one
        hinted first. Without hints the most similar topic wins when its cosine reaches
        `min_similarity`, and general otherwise. The conversation is urgent when an urgent rule
        fired or its similarity to the urgent descriptions reaches `urgent_min_similarity`.
        """
        similarities = self.similarities(customer_embeddings)
        scores = {reason.value: round(value, 6) for reason, value in similarities.items()}

        topic_matches = [match for match in matches if match.reason in TOPICS]
        if topic_matches:
            reason, evidence = _topic_from_rules(topic_matches, similarities)
            source: AssessmentSource = "rule"
        else:
            reason, source, evidence = self._topic_from_similarity(similarities)

        urgent, urgent_evidence = self._urgency(matches, similarities)
        return ReasonAssessment(
            reason=reason,
            urgent=urgent,
            scores=scores,
            source=source,
            evidence=[*evidence, *urgent_evidence],
        )

    def _topic_from_similarity(
        self, similarities: Mapping[Reason, float]
    ) -> tuple[Reason, AssessmentSource, list[str]]:
        if not similarities:
            return Reason.GENERAL, "default", ["no rule hinted a topic and no customer message "
                                               "was given, so the reason is general"]

        candidates = [topic for topic in TOPICS if topic in similarities]
        if not candidates:
            return Reason.GENERAL, "default", ["no rule hinted a topic and no topic description "
                                               "can be compared, so the reason is general"]
        best = max(candidates, key=lambda topic: similarities[topic])
        score = similarities[best]
        if score >= self.min_similarity:
            return best, "similarity", [f"closest to the {best.value} descriptions (cosine "
                                        f"{score:.2f}, minimum {self.min_similarity:.2f})"]
        return Reason.GENERAL, "default", [
            f"no topic is similar enough: the closest, {best.value}, has cosine {score:.2f}, "
            f"below the minimum {self.min_similarity:.2f}, so the reason is general"
        ]

    def _urgency(
        self, matches: Sequence[RuleMatch], similarities: Mapping[Reason, float]
    ) -> tuple[bool, list[str]]:
        urgent_matches = [match for match in matches if match.reason is Reason.URGENT]
        if urgent_matches:
            return True, [_describe_match(match) for match in urgent_matches]

        score = similarities.get(Reason.URGENT)
        if score is not None and score >= self.urgent_min_similarity:
            return True, [f"urgent: close to the urgent descriptions (cosine {score:.2f}, "
                          f"minimum {self.urgent_min_similarity:.2f})"]
        return False, []

    def _check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        rows = np.asarray(embeddings, dtype=np.float32)
        if rows.size == 0:
            # No customer message yet (an assistant turn escalated first): nothing to compare.
            return rows.reshape(0, self.dimension)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2 or (len(rows) > 0 and rows.shape[1] != self.dimension):
            raise ValueError(
                f"customer_embeddings has shape {np.shape(embeddings)}, expected "
                f"[messages, {self.dimension}] from the same encoder as the descriptions"
            )
        if not np.all(np.isfinite(rows)):
            raise ValueError("customer_embeddings contains NaN or infinite values; encode the "
                             "messages again")
        return rows


def _centroid(reason: Reason, descriptions: list[str], embed: Embed) -> np.ndarray:
    # Returns the zero vector when no description shares a term with the encoder.
    embeddings = np.asarray(embed(descriptions), dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(descriptions):
        raise ValueError(
            f"embed returned shape {embeddings.shape} for {len(descriptions)} {reason.value} "
            "descriptions; it must return one row per text"
        )
    mean = embeddings.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if not math.isfinite(norm):
        raise ValueError(f"the {reason.value} descriptions embed to non-finite values; check "
                         "the encoder, whose files may contain NaN or infinite weights")
    if norm == 0.0:
        return mean
    return mean / norm


def _topic_from_rules(
    matches: Sequence[RuleMatch], similarities: Mapping[Reason, float]
) -> tuple[Reason, list[str]]:
    hinted = [(match, match.reason) for match in matches if match.reason is not None]
    hinted.sort(key=lambda pair: (-pair[0].tier.severity, -similarities.get(pair[1], 0.0),
                                  pair[0].turn_index))
    return hinted[0][1], [_describe_match(match) for match, _ in hinted]


def _describe_match(match: RuleMatch) -> str:
    hint = match.reason.value if match.reason is not None else "no reason"
    text = f"{hint}: rule {match.rule} at turn {match.turn_index}"
    if match.matched_text:
        text += f" matched {match.matched_text!r}"
    return text
