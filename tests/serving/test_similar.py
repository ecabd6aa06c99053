"""Tests of the similar-case index: search, exclusion and checks of the two bundle files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.datasets.uss import read_bundled_uss
from serving.encoder import Encoder
from serving.errors import SimilarCaseIndexError
from serving.schema import Conversation
from serving.similar import (
    CASES_FILE,
    VECTORS_FILE,
    CaseRecord,
    SimilarCaseIndex,
    conversation_vector,
    customer_texts,
    mean_direction,
    write_similar_cases,
)
from serving.tiers import Reason


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path) -> Encoder:
    return Encoder(encoder_dir / "encoder.int8.onnx", encoder_dir / "tokenizer.json",
                   batch_size=1)


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    # 40 MultiWOZ dialogues (restaurants, hotels, trains) and 40 SGD ones (movies, events...).
    everything = read_bundled_uss()
    return everything[:40] + everything[1000:1040]


@pytest.fixture(scope="module")
def index_dir(
    tmp_path_factory: pytest.TempPathFactory, encoder: Encoder,
    conversations: list[Conversation],
) -> Path:
    vectors = []
    for conversation in conversations:
        vector = conversation_vector(conversation, encoder.encode)
        assert vector is not None
        vectors.append(vector)
    cases = [
        CaseRecord(id=conversation.id, reason=Reason.GENERAL if position % 2 else None,
                   summary=conversation.turns[0].text, resolution=conversation.turns[-1].text,
                   source=conversation.source)
        for position, conversation in enumerate(conversations)
    ]
    folder = tmp_path_factory.mktemp("similar")
    write_similar_cases(folder, np.stack(vectors), cases)
    return folder


@pytest.fixture(scope="module")
def index(index_dir: Path) -> SimilarCaseIndex:
    return SimilarCaseIndex.load(index_dir)


def read_files(source: Path) -> tuple[np.ndarray, list[dict[str, object]]]:
    """Return the vectors and records of an index folder, for tests that alter and rewrite them."""
    vectors = np.load(source / VECTORS_FILE)
    records = json.loads((source / CASES_FILE).read_text(encoding="utf-8"))
    return vectors, records


def write_raw(folder: Path, vectors: np.ndarray, records: object) -> None:
    np.save(folder / VECTORS_FILE, vectors, allow_pickle=True)
    (folder / CASES_FILE).write_text(json.dumps(records), encoding="utf-8")


# ---------------------------------------------------------------------------------------------
# Search
# ---------------------------------------------------------------------------------------------


def test_index_loads_every_case(index: SimilarCaseIndex,
                                conversations: list[Conversation]) -> None:
    assert index.ids == [conversation.id for conversation in conversations]
    assert index.dimension == 384


def test_nearest_of_own_vector_is_itself(index: SimilarCaseIndex) -> None:
    for case_id in index.ids:
        best = index.nearest(index.vector(case_id), k=1)[0]

        assert best.id == case_id
        assert best.score == pytest.approx(1.0, abs=1e-5)


def test_nearest_excludes_given_ids(index: SimilarCaseIndex) -> None:
    own = index.ids[3]

    found = index.nearest(index.vector(own), k=5, exclude_ids={own})

    assert own not in [case.id for case in found]
    assert len(found) == 5


def test_nearest_scores_descend(index: SimilarCaseIndex) -> None:
    found = index.nearest(index.vector(index.ids[0]), k=10)

    scores = [case.score for case in found]
    assert scores == sorted(scores, reverse=True)


def test_nearest_returns_all_when_k_exceeds_size(index: SimilarCaseIndex) -> None:
    assert len(index.nearest(index.vector(index.ids[0]), k=500)) == len(index)


def test_nearest_copies_case_fields(index: SimilarCaseIndex,
                                    conversations: list[Conversation]) -> None:
    found = index.nearest(index.vector(conversations[1].id), k=1)[0]

    assert found.summary == conversations[1].turns[0].text
    assert found.resolution == conversations[1].turns[-1].text
    assert found.reason is Reason.GENERAL
    assert found.source == "uss-mwoz"


def test_nearest_finds_same_topic(index: SimilarCaseIndex, encoder: Encoder) -> None:
    # In uss-sgd-0037 every customer turn is about finding a movie to watch. Two other
    # dialogues mention a film, but then move on to cinema tickets or restaurants.
    query = encoder.encode(["I want to find a movie to watch tonight"])

    assert index.nearest(query, k=1)[0].id == "uss-sgd-0037"


def test_nearest_normalises_query(index: SimilarCaseIndex) -> None:
    vector = index.vector(index.ids[5])

    assert index.nearest(vector * 7.5, k=1)[0].score == pytest.approx(1.0, abs=1e-5)


def test_nearest_rejects_wrong_dimension(index: SimilarCaseIndex) -> None:
    with pytest.raises(ValueError, match=r"shape \(383,\)"):
        index.nearest(np.ones(383, dtype=np.float32))


def test_nearest_rejects_zero_query(index: SimilarCaseIndex) -> None:
    with pytest.raises(ValueError, match="zero vector"):
        index.nearest(np.zeros(384, dtype=np.float32))


def test_nearest_rejects_nan_query(index: SimilarCaseIndex) -> None:
    query = np.ones(384, dtype=np.float32)
    query[3] = np.nan

    with pytest.raises(ValueError, match="NaN"):
        index.nearest(query)


def test_nearest_rejects_k_zero(index: SimilarCaseIndex) -> None:
    with pytest.raises(ValueError, match="k is 0"):
        index.nearest(index.vector(index.ids[0]), k=0)


def test_vector_of_unknown_id_raises(index: SimilarCaseIndex) -> None:
    with pytest.raises(KeyError, match="nope"):
        index.vector("nope")


# ---------------------------------------------------------------------------------------------
# Conversation vectors
# ---------------------------------------------------------------------------------------------


def test_conversation_vector_is_mean_of_customer_turns(
    encoder: Encoder, conversations: list[Conversation]
) -> None:
    conversation = conversations[0]
    expected = encoder.encode(customer_texts(conversation)).mean(axis=0)
    expected /= np.linalg.norm(expected)

    vector = conversation_vector(conversation, encoder.encode)

    assert vector is not None
    assert np.allclose(vector, expected, atol=1e-5)


def test_customer_texts_skip_blank_turns() -> None:
    conversation = Conversation.model_validate({"id": "c1", "turns": [
        {"role": "customer", "text": "  "},
        {"role": "assistant", "text": "Hello"},
        {"role": "customer", "text": "My card was declined"},
    ]})

    assert customer_texts(conversation) == ["My card was declined"]


def test_conversation_vector_without_customer_text_is_none(encoder: Encoder) -> None:
    conversation = Conversation.model_validate({"id": "c1", "turns": [
        {"role": "assistant", "text": "Hello, how can I help?"},
    ]})

    assert conversation_vector(conversation, encoder.encode) is None


def test_mean_direction_of_opposite_rows_is_none() -> None:
    rows = np.array([[1.0, 0.0], [-1.0, 0.0]], dtype=np.float32)

    assert mean_direction(rows) is None


# ---------------------------------------------------------------------------------------------
# File checks
# ---------------------------------------------------------------------------------------------


def test_mismatched_row_count_raises(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    write_raw(tmp_path, vectors[:-1], records)

    with pytest.raises(SimilarCaseIndexError, match="79 rows but .* has 80 records"):
        SimilarCaseIndex.load(tmp_path)


def test_unnormalised_rows_raise(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    vectors[4] *= 2.0
    write_raw(tmp_path, vectors, records)

    with pytest.raises(SimilarCaseIndexError, match="row 4 has L2 norm 2.0"):
        SimilarCaseIndex.load(tmp_path)


def test_float64_vectors_raise(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    write_raw(tmp_path, vectors.astype(np.float64), records)

    with pytest.raises(SimilarCaseIndexError, match="dtype float64"):
        SimilarCaseIndex.load(tmp_path)


def test_pickled_vectors_raise(index_dir: Path, tmp_path: Path) -> None:
    _, records = read_files(index_dir)
    write_raw(tmp_path, np.array([{"not": "numbers"}] * len(records), dtype=object), records)

    with pytest.raises(SimilarCaseIndexError, match="not a readable .npy"):
        SimilarCaseIndex.load(tmp_path)


def test_duplicate_ids_raise(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    records[2]["id"] = records[1]["id"]
    write_raw(tmp_path, vectors, records)

    with pytest.raises(SimilarCaseIndexError, match="record 2 repeats case id"):
        SimilarCaseIndex.load(tmp_path)


def test_record_missing_field_raises(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    del records[6]["resolution"]
    write_raw(tmp_path, vectors, records)

    with pytest.raises(SimilarCaseIndexError, match="record 6, field 'resolution'"):
        SimilarCaseIndex.load(tmp_path)


def test_record_unknown_reason_raises(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    records[0]["reason"] = "weather"
    write_raw(tmp_path, vectors, records)

    with pytest.raises(SimilarCaseIndexError, match="record 0, field 'reason'"):
        SimilarCaseIndex.load(tmp_path)


def test_cases_file_not_a_list_raises(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    write_raw(tmp_path, vectors, {"cases": records})

    with pytest.raises(SimilarCaseIndexError, match="contains a dict"):
        SimilarCaseIndex.load(tmp_path)


def test_cases_file_invalid_json_raises(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    write_raw(tmp_path, vectors, records)
    (tmp_path / CASES_FILE).write_text("[{", encoding="utf-8")

    with pytest.raises(SimilarCaseIndexError, match="not valid JSON"):
        SimilarCaseIndex.load(tmp_path)


def test_missing_vector_file_raises(index_dir: Path, tmp_path: Path) -> None:
    vectors, records = read_files(index_dir)
    write_raw(tmp_path, vectors, records)
    (tmp_path / VECTORS_FILE).unlink()

    with pytest.raises(SimilarCaseIndexError, match="vector file .* not found"):
        SimilarCaseIndex.load(tmp_path)


def test_write_rejects_mismatched_input(tmp_path: Path) -> None:
    vectors = np.eye(3, dtype=np.float32)
    cases = [CaseRecord(id="a", reason=None, summary="", resolution="", source=None)]

    with pytest.raises(SimilarCaseIndexError, match="3 rows but the case list has 1"):
        write_similar_cases(tmp_path, vectors, cases)
