"""Training table of turn sequence features: one sparse row per turn, built by serving's code."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from serving.features import conversation_turn_rows, turn_feature_names
from serving.schema import Conversation
from serving.token_encoder import TokenEncoder


@dataclass(frozen=True)
class TurnTable:
    """Feature rows of every turn, with each turn's handoff label and conversation."""

    features: sparse.csr_matrix
    labels: np.ndarray
    conversation_ids: np.ndarray
    turn_indices: np.ndarray
    feature_names: list[str]


def turn_table(conversations: Sequence[Conversation], encoder: TokenEncoder) -> TurnTable:
    """Encode every turn's text and compute its features with `serving.features`.

    A turn's label is its `labels.handoff`; a turn without that label counts as 0.
    """
    if encoder.projection is not None:
        raise ValueError("turn sequence features need the sparse TF-IDF columns; fit the token "
                         "encoder with projection_dimension 0")
    width = len(encoder.vocabulary)
    texts = [turn.text for conversation in conversations for turn in conversation.turns]
    encoded = encoder.transform_sparse(texts)

    indptr = [0]
    indices: list[np.ndarray] = []
    values: list[np.ndarray] = []
    labels: list[int] = []
    conversation_ids: list[str] = []
    turn_indices: list[int] = []
    position = 0
    for conversation in conversations:
        vectors = [encoded.row(position + offset) for offset in range(len(conversation.turns))]
        position += len(conversation.turns)
        for turn_index, (turn, row) in enumerate(zip(
                conversation.turns, conversation_turn_rows(conversation, vectors, width),
                strict=True)):
            indices.append(row.indices)
            values.append(row.values)
            indptr.append(indptr[-1] + row.indices.shape[0])
            handoff = turn.labels.handoff if turn.labels is not None else None
            labels.append(int(bool(handoff)))
            conversation_ids.append(conversation.id)
            turn_indices.append(turn_index)

    names = turn_feature_names(width)
    matrix = sparse.csr_matrix(
        (np.concatenate(values) if values else np.zeros(0, dtype=np.float32),
         np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
         np.asarray(indptr, dtype=np.int64)),
        shape=(len(labels), len(names)), dtype=np.float32,
    )
    return TurnTable(matrix, np.asarray(labels, dtype=np.int64), np.asarray(conversation_ids),
                     np.asarray(turn_indices, dtype=np.int64), names)
