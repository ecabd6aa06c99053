"""The text encoder a training run embeds with and its bundle ships: MiniLM or the token encoder.

With `encoder.kind: minilm` the exported MiniLM graph is copied into the bundle and embeddings
are cached on disk across runs. With `encoder.kind: tokens` the TF-IDF encoder and its
TruncatedSVD projection are fitted on the run's training texts, so it needs no pretrained model
and works in any language. Its rows take the place of MiniLM embeddings in every head.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipelines.export.encoder_cache import prepare_encoder
from pipelines.train.config import TrainConfig
from pipelines.train.embeddings import EmbeddingCache
from pipelines.train.tokens import fit_token_encoder, settings_from_config
from serving.bundle import EncoderSpec
from serving.schema import Conversation
from serving.token_encoder import SETTINGS_FILE, TokenEncoder

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]
EmbedFunction = Callable[[list[str]], np.ndarray]

# Training texts on which the numpy TF-IDF must equal scikit-learn's; more only slow the check.
PARITY_TEXTS = 500


@dataclass(frozen=True)
class PreparedEncoder:
    """The encoder's manifest entry, its files in the bundle and the function that embeds."""

    spec: EncoderSpec
    embed: EmbedFunction


def prepare_text_encoder(
    config: TrainConfig,
    training_conversations: Sequence[Conversation],
    work_dir: Path,
    staging: Path,
    progress: Progress | None = None,
) -> PreparedEncoder:
    """Put the configured encoder's files into `staging` and return how to embed with it.

    `training_conversations` are the texts the token encoder is fitted on: every turn, of
    both roles, of the training splits. Validation and test texts never shape its vocabulary.
    """
    if config.encoder.kind == "minilm":
        return _prepare_minilm(config, work_dir, staging, progress)
    return _prepare_tokens(config, training_conversations, staging, progress)


def _prepare_minilm(config: TrainConfig, work_dir: Path, staging: Path,
                    progress: Progress | None) -> PreparedEncoder:
    encoder = prepare_encoder(work_dir / "encoder", config.encoder.variant,
                              config.encoder.max_length)
    encoder.copy_into(staging)
    cache = EmbeddingCache(work_dir / "embeddings", encoder.sha256, encoder.batch_size,
                           encoder.dimension)

    def embed(texts: list[str]) -> np.ndarray:
        return cache.embed(texts, encoder.encode, _advance(progress, len(texts)))

    return PreparedEncoder(encoder.spec(), embed)


def _prepare_tokens(config: TrainConfig, conversations: Sequence[Conversation], staging: Path,
                    progress: Progress | None) -> PreparedEncoder:
    texts = [turn.text for conversation in conversations for turn in conversation.turns]
    settings = settings_from_config(config.encoder.tokens)
    encoder, vectorizer = fit_token_encoder(texts, settings, seed=config.seed)
    names = encoder.save(staging)

    sample = texts[:PARITY_TEXTS]
    difference = float(np.max(np.abs(encoder.transform_sparse(sample).toarray()
                                      - vectorizer.transform(sample).toarray())))
    spec = EncoderSpec(
        kind="tokens",
        file=SETTINGS_FILE,
        arrays=[name for name in names if name != SETTINGS_FILE],
        variant="tfidf",
        dimension=encoder.dimension,
        batch_size=1,
        source_model=_describe(encoder, len(texts)),
        parity={"tfidf_max_abs_diff": difference},
    )
    logger.info("token encoder fitted on %d training texts; TF-IDF differs from scikit-learn "
                "by at most %.2e", len(texts), difference)

    def embed(batch: list[str]) -> np.ndarray:
        advance = _advance(progress, len(batch))
        rows = encoder.encode(batch)
        advance(len(batch))
        return rows

    return PreparedEncoder(spec, embed)


def _describe(encoder: TokenEncoder, text_count: int) -> str:
    low, high = encoder.ngram_range
    return (f"token TF-IDF ({encoder.analyzer} {low}-{high}-grams, {len(encoder.vocabulary)} "
            f"terms) + TruncatedSVD {encoder.dimension}, fitted on {text_count} training texts")


def _advance(progress: Progress | None, total: int) -> Callable[[int], None]:
    done = [0]

    def advance(count: int) -> None:
        done[0] += count
        if progress is not None:
            progress("encode", done[0], total)

    return advance
