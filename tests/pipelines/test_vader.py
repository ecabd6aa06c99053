"""Tests of the VADER baseline on known sentences and on bundled GoEmotions dev sentences."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from pipelines.datasets.paths import goemotions_file, read_lines
from pipelines.evaluate.vader import (
    CLASS_NAMES,
    VaderBaseline,
    labels_from_compound,
    proba_from_compound,
)

DEV_SAMPLE_SIZE = 200


@pytest.fixture(scope="module")
def baseline() -> VaderBaseline:
    return VaderBaseline()


@pytest.fixture(scope="module")
def dev_texts() -> list[str]:
    # Each line is text<TAB>comma-separated label ids<TAB>comment id.
    lines = read_lines(goemotions_file("dev"), source_hint="the file is bundled in data/raw")
    return [line.split("\t")[0] for _, line in islice(lines, DEV_SAMPLE_SIZE)]


def test_vader_class_order() -> None:
    assert CLASS_NAMES == ("negative", "neutral", "positive")


def test_vader_praise_is_positive(baseline: VaderBaseline) -> None:
    assert baseline.sentiment_label(["I love this, great job"]) == ["positive"]


def test_vader_complaint_is_negative(baseline: VaderBaseline) -> None:
    assert baseline.sentiment_label(["This is terrible and useless"]) == ["negative"]


def test_vader_complaint_high_frustration(baseline: VaderBaseline) -> None:
    # VADER 3.3.2 gives this sentence a compound of -0.7096.
    assert baseline.frustration_score(["This is terrible and useless"])[0] > 0.5


def test_vader_order_id_is_neutral(baseline: VaderBaseline) -> None:
    assert baseline.sentiment_label(["The order ID is 12345"]) == ["neutral"]
    assert baseline.frustration_score(["The order ID is 12345"])[0] == 0.0


def test_vader_order_number_is_positive(baseline: VaderBaseline) -> None:
    # A known weakness of the baseline: VADER's lexicon rates "number" +0.3 (as in "number
    # one"), so this factual sentence gets compound 0.0772 and leaves the neutral band.
    assert baseline.sentiment_label(["The order number is 12345"]) == ["positive"]


def test_vader_praise_no_frustration(baseline: VaderBaseline) -> None:
    assert baseline.frustration_score(["I love this, great job"])[0] == 0.0


def test_vader_frustration_is_negative_compound(baseline: VaderBaseline) -> None:
    texts = ["This is terrible and useless", "I love this, great job", "Awful, just awful."]
    expected = np.maximum(0.0, -baseline.compound_scores(texts))
    np.testing.assert_allclose(baseline.frustration_score(texts), expected)


def test_vader_dev_sample_covers_all_classes(
    baseline: VaderBaseline, dev_texts: list[str]
) -> None:
    # The argmax test below is only meaningful when every class occurs in the sample.
    assert len(dev_texts) == DEV_SAMPLE_SIZE
    assert set(baseline.sentiment_label(dev_texts)) == set(CLASS_NAMES)


def test_vader_dev_argmax_matches_label(baseline: VaderBaseline, dev_texts: list[str]) -> None:
    proba = baseline.sentiment_proba(dev_texts)
    argmax_labels = [CLASS_NAMES[column] for column in proba.argmax(axis=1)]
    assert argmax_labels == baseline.sentiment_label(dev_texts)


def test_vader_dev_proba_shape(baseline: VaderBaseline, dev_texts: list[str]) -> None:
    assert baseline.sentiment_proba(dev_texts).shape == (DEV_SAMPLE_SIZE, 3)


def test_vader_dev_proba_sums_to_one(baseline: VaderBaseline, dev_texts: list[str]) -> None:
    proba = baseline.sentiment_proba(dev_texts)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)


def test_vader_dev_proba_within_unit_interval(
    baseline: VaderBaseline, dev_texts: list[str]
) -> None:
    proba = baseline.sentiment_proba(dev_texts)
    assert proba.min() >= 0.0
    assert proba.max() <= 1.0


def test_vader_dev_frustration_within_unit_interval(
    baseline: VaderBaseline, dev_texts: list[str]
) -> None:
    frustration = baseline.frustration_score(dev_texts)
    assert frustration.shape == (DEV_SAMPLE_SIZE,)
    assert frustration.min() >= 0.0
    assert frustration.max() <= 1.0


def test_proba_from_compound_band_edges() -> None:
    # Exactly on the edges and just inside them, where a continuous mapping would tie.
    compound = np.array([-1.0, -0.05, -0.0499, 0.0, 0.0499, 0.05, 1.0])
    proba = proba_from_compound(compound)
    argmax_labels = [CLASS_NAMES[column] for column in proba.argmax(axis=1)]
    assert argmax_labels == labels_from_compound(compound)
    assert labels_from_compound(compound) == [
        "negative", "negative", "neutral", "neutral", "neutral", "positive", "positive",
    ]


@pytest.mark.parametrize(
    ("compound", "expected"),
    [
        (-1.0, [1.0, 0.0, 0.0]),
        (0.0, [0.0, 1.0, 0.0]),
        (1.0, [0.0, 0.0, 1.0]),
        (0.025, [0.0, 0.75, 0.25]),  # inside the band: polarity 0.5 * 0.025 / 0.05 = 0.25
        (-0.525, [0.75, 0.25, 0.0]),  # outside: 0.5 + 0.5 * (0.525 - 0.05) / 0.95 = 0.75
    ],
)
def test_proba_from_compound_values(compound: float, expected: list[float]) -> None:
    # The 1e-6 edge margin shifts values outside the band by less than 1e-6.
    proba = proba_from_compound(np.array([compound]))[0]
    np.testing.assert_allclose(proba, expected, atol=1e-6)


def test_proba_from_compound_monotone() -> None:
    # One-vs-rest AUCs of the baseline rank texts by compound only if these columns are monotone.
    compound = np.linspace(-1.0, 1.0, 2001)
    proba = proba_from_compound(compound)
    assert np.all(np.diff(proba[:, 2]) >= 0.0)
    assert np.all(np.diff(proba[:, 0]) <= 0.0)


def test_vader_empty_input(baseline: VaderBaseline) -> None:
    assert baseline.sentiment_proba([]).shape == (0, 3)
    assert baseline.sentiment_label([]) == []
    assert baseline.frustration_score([]).shape == (0,)


def test_vader_bare_string_rejected(baseline: VaderBaseline) -> None:
    with pytest.raises(ValueError, match="texts is a str"):
        baseline.sentiment_label("I love this")


def test_vader_non_string_rejected(baseline: VaderBaseline) -> None:
    with pytest.raises(ValueError, match=r"texts\[1\] is a NoneType"):
        baseline.sentiment_proba(["fine", None])  # type: ignore[list-item]
