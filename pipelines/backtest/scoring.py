"""A Scorer that encodes each distinct message once, for replays of many conversations."""

from __future__ import annotations

import logging
from pathlib import Path

from serving.features import MessageSignals
from serving.rules import Policy
from serving.scorer import Scorer

logger = logging.getLogger(__name__)


class CachingScorer(Scorer):
    """The serving Scorer, with the signals of each message text kept for the whole run.

    A replay passes every customer message through `message_signals`, as `apply_turn` does in
    the service. Texts seen before (a repeated greeting, the same data replayed under a second
    policy) reuse their embedding and head outputs instead of running the encoder again.
    `with_policy` copies the scorer shallowly, so a twin for another policy shares the cache.
    """

    def __init__(self, bundle_dir: str | Path, *, policy: Policy | None = None) -> None:
        super().__init__(bundle_dir, policy=policy)
        self._signals: dict[str, MessageSignals] = {}
        self.encoded_texts = 0
        self.reused_texts = 0

    def message_signals(self, texts: list[str]) -> list[MessageSignals]:
        """Return the signals of each text, encoding only texts not seen in this run."""
        missing = [text for text in dict.fromkeys(texts) if text not in self._signals]
        if missing:
            computed = super().message_signals(missing)
            self._signals.update(zip(missing, computed, strict=True))
        self.encoded_texts += len(missing)
        self.reused_texts += len(texts) - len(missing)
        return [self._signals[text] for text in texts]
