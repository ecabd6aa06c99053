"""USS user turns as the product's feature vectors, with their ratings, for the USS benchmark."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from pipelines.train.embeddings import EmbeddingCache
from pipelines.train.labels import customer_ratings
from pipelines.train.tables import escalation_table
from serving.bundle import Manifest, load_manifest
from serving.errors import DatasetError
from serving.heads import Head
from serving.rules import Policy, load_policy
from serving.schema import Conversation
from serving.text_encoder import load_text_encoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class UssTable:
    """One row per rated customer turn, in file order.

    `features` is [n_turns, n_features] float32 (the FeatureVector of serving.features),
    `ratings` the majority 1-5 rating of each turn, `escalation_labels` the escalation head's
    training label (this turn or one of the next `horizon` customer turns is dissatisfied).
    """

    path: Path
    features: np.ndarray
    ratings: np.ndarray
    escalation_labels: np.ndarray
    conversation_ids: list[str]
    n_dialogues: int
    feature_seconds: float


class ProductComponents:
    """The parts of a bundle that compute features: encoder, sentiment and frustration heads.

    Embeddings go through the training job's on-disk cache, keyed by the encoder file's
    sha256 and batch size, so the benchmark reuses what `escalation train` already encoded.
    """

    def __init__(self, bundle_dir: Path, cache_dir: Path, policy: Policy | None = None) -> None:
        self.bundle_dir = bundle_dir
        self.manifest: Manifest = load_manifest(bundle_dir)
        spec = self.manifest.encoder
        self.encoder = load_text_encoder(bundle_dir, spec)
        self.sentiment = Head(bundle_dir / self.manifest.heads["sentiment"].file)
        self.frustration = Head(bundle_dir / self.manifest.heads["frustration"].file)
        self.policy = policy if policy is not None else load_policy()
        self.cache = EmbeddingCache(cache_dir, _encoder_digest(self.manifest), spec.batch_size,
                                    spec.dimension)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return [n, dimension] embeddings of `texts`, encoding only those not cached."""
        return self.cache.embed(texts, self.encoder.encode)


def uss_table(
    path: Path,
    conversations: Sequence[Conversation],
    components: ProductComponents,
    *,
    horizon: int,
    dissatisfied_rating: int,
) -> UssTable:
    """Compute the feature vector of every customer turn with the serving feature code.

    Raises DatasetError when a customer turn has no satisfaction rating, because every turn
    of the benchmark needs a gold rating.
    """
    ratings: list[int] = []
    for conversation in conversations:
        for position, rating in enumerate(customer_ratings(conversation)):
            if rating is None:
                raise DatasetError(
                    f"{path}: conversation {conversation.id!r}, customer turn {position + 1} "
                    "has no satisfaction rating; the USS benchmark needs a 1-5 rating "
                    "(labels.satisfaction) on every customer turn"
                )
            ratings.append(rating)
    if not ratings:
        raise DatasetError(f"{path} contains no customer turns; pass a USS file with dialogues")

    started = time.perf_counter()
    table = escalation_table(
        conversations, components.embed, components.sentiment, components.frustration,
        components.policy, horizon=horizon, dissatisfied_rating=dissatisfied_rating,
    )
    seconds = time.perf_counter() - started
    logger.info("computed %d feature vectors of %s in %.1f s", len(ratings), path.name, seconds)
    return UssTable(
        path=path,
        features=table.features,
        ratings=np.asarray(ratings, dtype=np.int64),
        escalation_labels=table.labels,
        conversation_ids=table.conversation_ids,
        n_dialogues=len(conversations),
        feature_seconds=seconds,
    )


def previous_turn_table(table: UssTable) -> UssTable:
    """Give each turn the feature vector of the previous customer turn of its dialogue.

    The USS authors' baseline code predicts a turn's rating from the dialogue before the
    rated user utterance, without its text. The product computes features only at customer
    turns, so the closest input it can give is the previous customer turn's vector, which
    also misses the system response in between. A dialogue's first turn gets a zero vector,
    the same for every dialogue, as an empty history would be.
    """
    features = np.zeros_like(table.features)
    for row in range(1, len(features)):
        if table.conversation_ids[row] == table.conversation_ids[row - 1]:
            features[row] = table.features[row - 1]
    return replace(table, features=features)


def _encoder_digest(manifest: Manifest) -> str:
    # A MiniLM cache is keyed by the graph's sha256, as training keys it, so the benchmark
    # reuses training's embeddings. A token encoder's output depends on its idf and projection
    # arrays too, so its key covers every file it reads.
    spec = manifest.encoder
    if spec.kind == "minilm":
        return manifest.files[spec.file]
    joined = "".join(manifest.files[name] for name in sorted(spec.file_names()))
    return hashlib.sha256(joined.encode("ascii")).hexdigest()
