"""Scorer: load a verified bundle with onnxruntime and score conversations turn by turn."""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np

from serving.bundle import Manifest, load_manifest
from serving.decision import Decision, DecisionThresholds, decide
from serving.features import MessageSignals, conversation_feature_matrix
from serving.heads import Head
from serving.rules import Policy, RuleMatch, load_policy, match_conversation
from serving.schema import SENTIMENT_CLASSES, Conversation
from serving.signals import message_signals
from serving.text_encoder import TextEncoder, load_text_encoder

logger = logging.getLogger(__name__)

ESCALATION_CLASS = 1


@dataclass(frozen=True)
class TurnScore:
    """Model outputs, rule matches and decision at one customer turn."""

    turn_index: int
    sentiment: dict[str, float]
    frustration: float
    escalation_probability: float
    matches: tuple[RuleMatch, ...]
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        """Return the turn score as JSON-serialisable plain types."""
        return {
            "turn_index": self.turn_index,
            "sentiment": {name: round(value, 6) for name, value in self.sentiment.items()},
            "frustration": round(self.frustration, 6),
            "escalation_probability": round(self.escalation_probability, 6),
            "rule_matches": [match.to_dict() for match in self.matches],
            "decision": self.decision.to_dict(),
        }


@dataclass(frozen=True)
class ConversationScore:
    """Scores of every customer turn of a conversation and the decision after its last turn."""

    conversation_id: str
    bundle: str
    turns: tuple[TurnScore, ...]
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        """Return the score as JSON-serialisable plain types."""
        return {
            "conversation_id": self.conversation_id,
            "bundle": self.bundle,
            "decision": self.decision.to_dict(),
            "turns": [turn.to_dict() for turn in self.turns],
        }


class Scorer:
    """Score conversations with a bundle's encoder, heads and thresholds plus the rule policy."""

    def __init__(
        self,
        bundle_dir: str | Path,
        *,
        policy: Policy | None = None,
        intra_op_threads: int | None = None,
    ) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = load_manifest(self.bundle_dir)
        self.policy = policy if policy is not None else load_policy()
        self.thresholds = resolve_thresholds(self.manifest, self.policy)

        spec = self.manifest.encoder
        self.encoder: TextEncoder = load_text_encoder(self.bundle_dir, spec,
                                                      intra_op_threads=intra_op_threads)
        self.heads = {
            name: Head(self.bundle_dir / head.file, intra_op_threads=intra_op_threads)
            for name, head in self.manifest.heads.items()
        }
        logger.info("scorer loaded bundle %s (encoder %s %s, thresholds escalation=%.3f "
                    "prepare=%.3f)", self.manifest.name, spec.kind, spec.variant,
                    self.thresholds.escalation, self.thresholds.prepare)

    def with_policy(self, policy: Policy) -> Self:
        """Return a scorer on the same bundle and onnxruntime sessions that applies `policy`.

        The thresholds are resolved again, because a policy may override the bundle's. Loading
        the bundle a second time would double the memory of the encoder for nothing.
        """
        twin = copy.copy(self)
        twin.policy = policy
        twin.thresholds = resolve_thresholds(self.manifest, policy)
        return twin

    def message_signals(self, texts: list[str]) -> list[MessageSignals]:
        """Encode customer messages and run the sentiment and frustration heads on them."""
        embeddings = self.encoder.encode(texts)
        return message_signals(embeddings, self.heads["sentiment"], self.heads["frustration"])

    def escalation_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Return P(escalation) for each row of a [n, n_features] feature matrix."""
        return self.heads["escalation"].predict_proba(features)[:, ESCALATION_CLASS]

    def features(
        self, conversation: Conversation
    ) -> tuple[list[MessageSignals], list[RuleMatch], np.ndarray]:
        """Return the message signals, rule matches and feature matrix of a conversation."""
        texts = [conversation.turns[index].text for index in conversation.customer_turn_indices()]
        signals = self.message_signals(texts)
        matches = match_conversation(conversation, self.policy)
        return signals, matches, conversation_feature_matrix(conversation, signals, matches)

    def score(self, conversation: Conversation) -> ConversationScore:
        """Score every customer turn of a conversation and decide after each one."""
        signals, matches, features = self.features(conversation)
        probabilities = self.escalation_probabilities(features) if len(features) else \
            np.zeros(0, dtype=np.float32)

        turn_scores = tuple(
            self._turn_score(index, signal, float(probability), matches)
            for index, signal, probability in zip(conversation.customer_turn_indices(), signals,
                                                  probabilities, strict=True)
        )
        last_index = len(conversation.turns) - 1
        last_probability = turn_scores[-1].escalation_probability if turn_scores else 0.0
        decision = decide(last_probability, last_index, matches, self.thresholds)
        return ConversationScore(conversation.id, self.manifest.name, turn_scores, decision)

    def score_many(self, conversations: Iterable[Conversation]) -> Iterator[ConversationScore]:
        """Score conversations one after another, yielding each result as it is ready."""
        for conversation in conversations:
            yield self.score(conversation)

    def _turn_score(
        self,
        turn_index: int,
        signal: MessageSignals,
        probability: float,
        matches: list[RuleMatch],
    ) -> TurnScore:
        sentiment = {
            label.value: float(value)
            for label, value in zip(SENTIMENT_CLASSES, signal.sentiment, strict=True)
        }
        return TurnScore(
            turn_index=turn_index,
            sentiment=sentiment,
            frustration=signal.frustration,
            escalation_probability=probability,
            matches=tuple(match for match in matches if match.turn_index == turn_index),
            decision=decide(probability, turn_index, matches, self.thresholds),
        )


def resolve_thresholds(manifest: Manifest, policy: Policy) -> DecisionThresholds:
    """Take the bundle's thresholds, overridden by the policy's where it sets them."""
    escalation = manifest.thresholds.escalation
    prepare = manifest.thresholds.prepare
    overrides = policy.thresholds
    if overrides is not None and overrides.escalation is not None:
        escalation = overrides.escalation
    if overrides is not None and overrides.prepare is not None:
        prepare = overrides.prepare
    return DecisionThresholds(escalation=escalation, prepare=min(prepare, escalation))

