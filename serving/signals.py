"""Per-message signals: sentiment and frustration of customer messages from their embeddings."""

from __future__ import annotations

import numpy as np

from serving.features import MessageSignals
from serving.heads import Head

FRUSTRATED_CLASS = 1


def message_signals(
    embeddings: np.ndarray, sentiment_head: Head, frustration_head: Head
) -> list[MessageSignals]:
    """Run the sentiment and frustration heads on [n, dim] embeddings, one result per row.

    Training and serving both call this, so the escalation head is always trained and run on
    the outputs of the exported ONNX heads, never on those of the scikit-learn models.
    """
    embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
    if embeddings.shape[0] == 0:
        return []
    sentiment = sentiment_head.predict_proba(embeddings)
    frustration = frustration_head.predict_proba(embeddings)[:, FRUSTRATED_CLASS]
    return [
        MessageSignals(embedding=embeddings[row], sentiment=sentiment[row],
                       frustration=float(frustration[row]))
        for row in range(embeddings.shape[0])
    ]
