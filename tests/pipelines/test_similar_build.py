"""Tests of the similar-case index build on real USS conversations with the real encoder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.datasets.uss import read_bundled_uss
from pipelines.train.similar import (
    RESOLUTION_CHARS,
    SUMMARY_CHARS,
    build_similar_case_index,
    truncate_text,
)
from serving.encoder import Encoder
from serving.schema import Conversation, Role, read_conversations
from serving.similar import CASES_FILE, VECTORS_FILE, SimilarCaseIndex, conversation_vector
from serving.tiers import Reason

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = REPOSITORY / "data" / "examples" / "conversation.jsonl"


@pytest.fixture(scope="module")
def encoder(encoder_dir: Path) -> Encoder:
    return Encoder(encoder_dir / "encoder.int8.onnx", encoder_dir / "tokenizer.json",
                   batch_size=1)


@pytest.fixture(scope="module")
def conversations() -> list[Conversation]:
    """The first 60 USS dialogues, 6 more rated below 3 from the next 240, and the example."""
    everything = read_bundled_uss()
    unhappy = [conversation for conversation in everything[60:300]
               if conversation.labels and conversation.labels.overall_satisfaction is not None
               and conversation.labels.overall_satisfaction < 3][:6]
    return everything[:60] + unhappy + read_conversations(EXAMPLE_FILE)


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory, encoder: Encoder,
    conversations: list[Conversation],
) -> tuple[Path, Path]:
    return build_similar_case_index(conversations, encoder.encode,
                                    tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def records(built: tuple[Path, Path]) -> list[dict[str, object]]:
    return json.loads(built[1].read_text(encoding="utf-8"))


def resolved(conversations: list[Conversation]) -> list[Conversation]:
    return [conversation for conversation in conversations
            if conversation.labels is not None
            and (conversation.labels.overall_satisfaction or 0) >= 3]


def test_build_writes_both_files(built: tuple[Path, Path]) -> None:
    assert built[0].name == VECTORS_FILE
    assert built[1].name == CASES_FILE
    assert built[0].parent == built[1].parent


def test_build_keeps_resolved_conversations(
    records: list[dict[str, object]], conversations: list[Conversation]
) -> None:
    assert [record["id"] for record in records] == [
        conversation.id for conversation in resolved(conversations)]


def test_build_drops_dissatisfied_conversations(
    records: list[dict[str, object]], conversations: list[Conversation]
) -> None:
    unhappy = {conversation.id for conversation in conversations
               if conversation.labels and conversation.labels.overall_satisfaction is not None
               and conversation.labels.overall_satisfaction < 3}
    kept = {str(record["id"]) for record in records}

    assert len(unhappy) >= 6
    assert unhappy & kept == set()


def test_build_vectors_are_unit_float32(built: tuple[Path, Path]) -> None:
    vectors = np.load(built[0])

    assert vectors.dtype == np.float32
    assert vectors.shape[1] == 384
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_build_vector_matches_serving_vector(
    built: tuple[Path, Path], encoder: Encoder, conversations: list[Conversation]
) -> None:
    index = SimilarCaseIndex.load(built[0].parent)
    conversation = conversations[10]

    served = conversation_vector(conversation, encoder.encode)

    assert served is not None
    assert np.allclose(index.vector(conversation.id), served, atol=1e-5)


def test_build_output_loads_and_finds_itself(built: tuple[Path, Path]) -> None:
    index = SimilarCaseIndex.load(built[0].parent)
    case_id = index.ids[7]

    assert index.nearest(index.vector(case_id), k=1)[0].id == case_id


def test_summary_is_first_customer_message(
    records: list[dict[str, object]], conversations: list[Conversation]
) -> None:
    first = resolved(conversations)[0]

    assert records[0]["summary"] == truncate_text(first.turns[0].text, SUMMARY_CHARS)


def test_resolution_is_last_assistant_message(
    records: list[dict[str, object]], conversations: list[Conversation]
) -> None:
    first = resolved(conversations)[0]
    last_answer = [turn.text for turn in first.turns if turn.role is Role.ASSISTANT][-1]

    assert records[0]["resolution"] == truncate_text(last_answer, RESOLUTION_CHARS)


def test_reason_taken_from_labels(records: list[dict[str, object]]) -> None:
    example = next(record for record in records if record["id"] == "example-billing-0001")

    assert example["reason"] == Reason.BILLING.value


def test_uss_cases_have_no_reason(records: list[dict[str, object]]) -> None:
    assert {record["reason"] for record in records if record["source"] != "example"} == {None}


def test_max_cases_limits_count(
    tmp_path: Path, encoder: Encoder, conversations: list[Conversation]
) -> None:
    _, cases_path = build_similar_case_index(conversations[:12], encoder.encode, tmp_path,
                                             max_cases=5)

    assert len(json.loads(cases_path.read_text(encoding="utf-8"))) == 5


def test_max_cases_zero_raises(tmp_path: Path, encoder: Encoder,
                               conversations: list[Conversation]) -> None:
    with pytest.raises(ValueError, match="max_cases is 0"):
        build_similar_case_index(conversations, encoder.encode, tmp_path, max_cases=0)


def test_no_resolved_conversation_raises(tmp_path: Path, encoder: Encoder,
                                         conversations: list[Conversation]) -> None:
    unhappy = [conversation for conversation in conversations
               if conversation not in resolved(conversations)]

    with pytest.raises(ValueError,
                       match=f"none of the {len(unhappy)} conversations is a resolved case"):
        build_similar_case_index(unhappy, encoder.encode, tmp_path)


def test_embed_with_wrong_row_count_raises(tmp_path: Path, encoder: Encoder,
                                           conversations: list[Conversation]) -> None:
    def short_embed(texts: list[str]) -> np.ndarray:
        return encoder.encode(texts)[:-1]

    with pytest.raises(ValueError, match="one row per text"):
        build_similar_case_index(conversations[:3], short_embed, tmp_path)


# ---------------------------------------------------------------------------------------------
# Truncation
# ---------------------------------------------------------------------------------------------


def test_truncate_keeps_short_text() -> None:
    assert truncate_text("  short   text ", 20) == "short text"


def test_truncate_cuts_at_word_boundary() -> None:
    assert truncate_text("the quick brown fox jumps", 16) == "the quick..."


def test_truncate_stays_within_limit() -> None:
    text = "word " * 100

    assert len(truncate_text(text, 50)) <= 50


def test_truncate_cuts_long_word() -> None:
    assert truncate_text("x" * 30, 10) == "xxxxxxx..."


def test_truncate_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError, match="limit is 3"):
        truncate_text("anything", 3)
