"""VADER lexicon baseline that the learned sentiment and frustration heads are compared with."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from serving.schema import SENTIMENT_CLASSES, Sentiment

# Column order of sentiment_proba: negative, neutral, positive.
CLASS_NAMES: tuple[str, ...] = tuple(sentiment.value for sentiment in SENTIMENT_CLASSES)

# The usual decision rule, as the vaderSentiment README ("About the Scoring") gives it:
# compound >= 0.05 is positive, compound <= -0.05 is negative, anything between is neutral.
POSITIVE_COMPOUND = 0.05
NEGATIVE_COMPOUND = -0.05

# Jump of the polarity at the band edges. Without it the probabilities would tie exactly at
# compound = +-0.05, and np.argmax would break the positive-edge tie towards neutral.
EDGE_MARGIN = 1e-6

_COLUMN = {name: column for column, name in enumerate(CLASS_NAMES)}


class VaderBaseline:
    """Three-class sentiment and a frustration score from VADER's compound score.

    Every method takes an iterable of texts (not a bare string) and returns one result per text,
    in order, raising ValueError on an element that is not a string. VADER
    reads its lexicon from the installed package, so nothing is downloaded.
    """

    def __init__(self) -> None:
        self._analyzer = SentimentIntensityAnalyzer()

    def compound_scores(self, texts: Iterable[str]) -> np.ndarray:
        """Return VADER's compound score of each text, shape [n], in [-1, 1]."""
        texts = _validated_texts(texts)
        scores = [self._analyzer.polarity_scores(text)["compound"] for text in texts]
        return np.asarray(scores, dtype=float).reshape(len(texts))

    def sentiment_proba(self, texts: Iterable[str]) -> np.ndarray:
        """Return a [n, 3] distribution over (negative, neutral, positive) per text.

        The argmax of each row is the label of sentiment_label; see proba_from_compound.
        """
        return proba_from_compound(self.compound_scores(texts))

    def sentiment_label(self, texts: Iterable[str]) -> list[str]:
        """Return "negative", "neutral" or "positive" per text by VADER's compound rule."""
        return labels_from_compound(self.compound_scores(texts))

    def frustration_score(self, texts: Iterable[str]) -> np.ndarray:
        """Return max(0, -compound) per text, shape [n], in [0, 1].

        Only negative sentiment counts as frustration, and its strength is VADER's own.
        """
        return frustration_from_compound(self.compound_scores(texts))


def proba_from_compound(compound: np.ndarray) -> np.ndarray:
    """Map compound scores, shape [n], to (negative, neutral, positive) rows, shape [n, 3].

    The compound c is first mapped to a polarity s in [-1, 1], strictly increasing in c:
    the neutral band (-0.05, 0.05) maps linearly onto (-0.5, 0.5), and 0.05 <= |c| <= 1 maps
    linearly onto 0.5 + EDGE_MARGIN <= |s| <= 1 with the sign of c. The row is then
    (max(0, -s), 1 - |s|, max(0, s)). It sums to 1, and the sentiment of c's sign beats
    neutral exactly when |s| > 0.5, that is when VADER's rule leaves the neutral band, so the
    argmax reproduces the compound rule. The positive column increases with c and the negative
    one decreases, so one-vs-rest AUCs rank texts as the compound does.
    """
    compound = np.clip(np.asarray(compound, dtype=float), -1.0, 1.0)
    magnitude = np.abs(compound)
    band = POSITIVE_COMPOUND  # the neutral band is symmetric, so this is -NEGATIVE_COMPOUND too
    inside_band = 0.5 * magnitude / band
    outside_band = (0.5 + EDGE_MARGIN) + (0.5 - EDGE_MARGIN) * (magnitude - band) / (1.0 - band)
    polarity = np.sign(compound) * np.where(magnitude < band, inside_band, outside_band)

    proba = np.empty((compound.size, len(CLASS_NAMES)), dtype=float)
    proba[:, _COLUMN[Sentiment.NEGATIVE.value]] = np.where(polarity < 0.0, -polarity, 0.0)
    proba[:, _COLUMN[Sentiment.NEUTRAL.value]] = 1.0 - np.abs(polarity)
    proba[:, _COLUMN[Sentiment.POSITIVE.value]] = np.where(polarity > 0.0, polarity, 0.0)
    return proba


def labels_from_compound(compound: np.ndarray) -> list[str]:
    """Return VADER's label per compound score: >= 0.05 positive, <= -0.05 negative."""
    labels = []
    for score in np.asarray(compound, dtype=float):
        if score >= POSITIVE_COMPOUND:
            labels.append(Sentiment.POSITIVE.value)
        elif score <= NEGATIVE_COMPOUND:
            labels.append(Sentiment.NEGATIVE.value)
        else:
            labels.append(Sentiment.NEUTRAL.value)
    return labels


def frustration_from_compound(compound: np.ndarray) -> np.ndarray:
    """Return max(0, -compound) clipped to [0, 1], shape [n]."""
    return np.clip(-np.asarray(compound, dtype=float), 0.0, 1.0)


def _validated_texts(texts: Iterable[str]) -> list[str]:
    # A bare string is iterable too, and would be scored one character at a time.
    if isinstance(texts, str | bytes) or not isinstance(texts, Iterable):
        raise ValueError(
            f"texts is a {type(texts).__name__}; pass a list of strings, one per message"
        )
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise ValueError(
                f"texts[{position}] is a {type(text).__name__}, not a string; pass the "
                "message text"
            )
    return texts
