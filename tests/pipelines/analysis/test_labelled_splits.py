"""Tests of pipelines.analysis.labelled_splits on the bundled USS corpus and its stored split."""

from __future__ import annotations

import pytest

from pipelines.analysis.labelled_splits import uss_split


def test_uss_split_test_is_stored_split() -> None:
    # data/splits/uss.json: test contains 200 conversations, 94 MultiWOZ and 106 SGD.
    conversations = uss_split("test")
    sources = [conversation.source for conversation in conversations]
    assert len(conversations) == 200
    assert sources.count("uss-mwoz") == 94
    assert sources.count("uss-sgd") == 106


def test_uss_split_sample_is_ordered_subset() -> None:
    full = [conversation.id for conversation in uss_split("validation")]
    sample = [conversation.id for conversation in uss_split("validation", sample=12)]
    assert len(sample) == 12
    assert set(sample) <= set(full)
    assert sample == [identifier for identifier in full if identifier in set(sample)]
    assert sample == [conversation.id for conversation in uss_split("validation", sample=12)]


def test_uss_split_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        uss_split("dev")
