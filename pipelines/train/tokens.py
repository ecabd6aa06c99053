"""Fit the language-agnostic token encoder with scikit-learn and export it as numpy arrays."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.decomposition import TruncatedSVD
from sklearn.feature_extraction.text import TfidfVectorizer

from pipelines.train.config import TokenEncoderConfig
from serving.token_encoder import DEFAULT_TOKEN_PATTERN, Analyzer, TokenEncoder

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenEncoderSettings:
    """How to fit the token encoder: n-grams, vocabulary pruning and an optional projection.

    `projection_dimension` 0 keeps the sparse TF-IDF columns; a positive value fits a
    TruncatedSVD of that many components on the training texts.
    """

    analyzer: Analyzer = "word"
    ngram_range: tuple[int, int] = (1, 2)
    min_df: int = 2
    max_features: int | None = None
    sublinear_tf: bool = True
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    projection_dimension: int = 0


def fit_token_encoder(texts: Sequence[str], settings: TokenEncoderSettings,
                      *, seed: int = 13) -> tuple[TokenEncoder, TfidfVectorizer]:
    """Fit TF-IDF (and the projection, if any) on training texts; return the numpy encoder and
    the fitted scikit-learn vectorizer it reproduces.

    Fit on training texts only: idf weights and the vocabulary are statistics of the corpus,
    so fitting them on evaluation texts leaks those texts into the model.
    """
    if not texts:
        raise ValueError("no training texts; the token encoder needs at least one text to fit")
    vectorizer = TfidfVectorizer(
        analyzer=settings.analyzer,
        ngram_range=settings.ngram_range,
        min_df=min(settings.min_df, len(texts)),
        max_features=settings.max_features,
        sublinear_tf=settings.sublinear_tf,
        lowercase=settings.lowercase,
        token_pattern=settings.token_pattern,
        norm="l2",
        dtype=np.float64,
    )
    try:
        matrix = vectorizer.fit_transform(list(texts))
    except ValueError as error:
        # scikit-learn raises "empty vocabulary" when min_df prunes every term.
        hint = (f"lower min_df (now {settings.min_df}) or check that the texts contain tokens "
                "the token pattern matches") if "empty vocabulary" in str(error) else \
            "check the token_pattern and n-gram settings"
        raise ValueError(f"the token encoder could not be fitted on {len(texts)} texts "
                         f"({error}); {hint}") from None

    vocabulary = [term for term, _ in sorted(vectorizer.vocabulary_.items(),
                                             key=lambda item: item[1])]
    projection = _fit_projection(matrix, settings.projection_dimension, seed)
    encoder = TokenEncoder(
        vocabulary,
        vectorizer.idf_,
        analyzer=settings.analyzer,
        ngram_range=settings.ngram_range,
        lowercase=settings.lowercase,
        token_pattern=settings.token_pattern,
        sublinear_tf=settings.sublinear_tf,
        projection=projection,
    )
    logger.info("fitted token encoder on %d texts: %d terms, dimension %d", len(texts),
                len(vocabulary), encoder.dimension)
    return encoder, vectorizer


def _fit_projection(matrix: Any, dimension: int, seed: int) -> np.ndarray | None:
    if dimension <= 0:
        return None
    available = min(matrix.shape) - 1
    if dimension > available:
        raise ValueError(f"projection_dimension {dimension} needs more than {dimension} terms "
                         f"and texts, but the vocabulary has {matrix.shape[1]} terms from "
                         f"{matrix.shape[0]} texts; raise max_features, lower min_df or widen "
                         "the n-gram range, and for a language written without spaces between "
                         "words use analyzer char_wb")
    svd = TruncatedSVD(n_components=dimension, random_state=seed)
    svd.fit(matrix)
    return np.asarray(svd.components_.T, dtype=np.float64)


def settings_from_config(config: TokenEncoderConfig) -> TokenEncoderSettings:
    """Return the fit settings of the `encoder.tokens` section of the training configuration."""
    return TokenEncoderSettings(
        analyzer=config.analyzer,
        ngram_range=(config.ngram_min, config.ngram_max),
        min_df=config.min_df,
        max_features=config.max_features,
        sublinear_tf=config.sublinear_tf,
        lowercase=config.lowercase,
        token_pattern=config.token_pattern,
        projection_dimension=config.projection_dimension,
    )
