"""Tests of the corpus adapters and the stored splits, on the real bundled files."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest

from pipelines.datasets import paths, splits
from pipelines.datasets.goemotions import (
    read_goemotions,
    read_goemotions_examples,
    read_sentiment_mapping,
    sentiment_from_emotions,
)
from pipelines.datasets.mhch import read_mhch
from pipelines.datasets.uss import majority_rating, read_bundled_uss, read_uss
from serving.errors import DatasetError
from serving.schema import Conversation, Role, Sentiment, parse_conversation, read_conversations

# Counts published with the USS corpus, recomputed from the bundled files with the majority rule.
USS_COUNTS = {
    "mwoz": {
        "dialogues": 1000,
        "turns": 22108,
        "customer_turns": 11553,
        "satisfaction": {1: 9, 2: 661, 3: 10317, 4: 559, 5: 7},
        "overall": {1: 2, 2: 46, 3: 828, 4: 124},
    },
    "sgd": {
        "dialogues": 1000,
        "turns": 25666,
        "customer_turns": 12833,
        "satisfaction": {1: 3, 2: 710, 3: 10728, 4: 1336, 5: 56},
        "overall": {1: 1, 2: 38, 3: 761, 4: 199, 5: 1},
    },
}

GOEMOTIONS_COUNTS = {
    "train": {"comments": 43410, "negative": 9839, "neutral": 16983, "positive": 16588,
              "frustration": 6668},
    "dev": {"comments": 5426, "negative": 1241, "neutral": 2089, "positive": 2096,
            "frustration": 853},
    "test": {"comments": 5427, "negative": 1262, "neutral": 2139, "positive": 2026,
             "frustration": 858},
}

# Train rows checked by hand against labels.txt and sentiment_mapping.tsv:
# comment id, emotions in the file, expected sentiment, expected frustration.
GOEMOTIONS_KNOWN_ROWS = [
    ("eebbqej", "neutral", Sentiment.NEUTRAL, False),
    ("eezlygj", "anger", Sentiment.NEGATIVE, True),
    ("ed7ypvh", "fear", Sentiment.NEGATIVE, False),
    ("ed0bdzj", "annoyance", Sentiment.NEGATIVE, True),
    ("eevmcmg", "annoyance + love", Sentiment.NEGATIVE, True),
    ("efd1q5q", "disapproval + optimism", Sentiment.NEGATIVE, True),
    ("ee7mjjt", "admiration + sadness", Sentiment.NEGATIVE, False),
    ("edvnz26", "surprise", Sentiment.NEUTRAL, False),
    ("eel6g5h", "confusion", Sentiment.NEUTRAL, False),
    ("efanc6t", "curiosity + excitement", Sentiment.POSITIVE, False),
    ("edq2z1l", "curiosity + neutral", Sentiment.NEUTRAL, False),
]

MHCH_COUNTS = {
    "clothing_eval": {"dialogues": 350, "utterances": 3457, "handoffs": 665, "escalated": 320},
    "makeup_eval": {"dialogues": 400, "utterances": 3906, "handoffs": 711, "escalated": 370},
}

USS_LINE = "USER\tHello there\tgeneral-greet\t3,3,3"
SYSTEM_LINE = "SYSTEM\tHow can I help?\tgeneral-reqmore\t"
OVERALL_LINE = "USER\tOVERALL\t\t3,4,3"


def _mhch_available() -> bool:
    try:
        shared = paths.shared_datasets_dir()
    except DatasetError:
        return False
    return shared is not None and (shared / paths.MHCH_DIRECTORY_NAME).is_dir()


requires_mhch = pytest.mark.skipif(
    not _mhch_available(),
    reason="MHCH-DAMI is not bundled (no licence); set ESCALATION_SHARED_DATASETS to a "
    "directory with mhch_dami/ to run this test",
)


@pytest.fixture(scope="module")
def uss_by_corpus() -> dict[str, list[Conversation]]:
    return {corpus: read_uss(path, corpus) for corpus, path in paths.bundled_uss_files().items()}


@pytest.fixture(scope="module")
def uss_all(uss_by_corpus: dict[str, list[Conversation]]) -> list[Conversation]:
    return uss_by_corpus["mwoz"] + uss_by_corpus["sgd"]


@pytest.fixture(scope="module")
def goemotions() -> dict[str, list[Conversation]]:
    return {split: read_goemotions(paths.goemotions_file(split), split)
            for split in paths.GOEMOTIONS_SPLITS}


@pytest.fixture(scope="module")
def goemotions_train_by_id(goemotions: dict[str, list[Conversation]]) -> dict[str, Conversation]:
    return {conversation.id: conversation for conversation in goemotions["train"]}


@pytest.fixture(scope="module")
def stored_uss_splits() -> splits.StoredSplits:
    return splits.load_split_file(paths.SPLITS_DIR / "uss.json")


def _by_id(conversations: list[Conversation]) -> dict[str, Conversation]:
    return {conversation.id: conversation for conversation in conversations}


def _write_gzip(path: Path, text: str) -> Path:
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _write_uss(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# USS


@pytest.mark.parametrize("corpus", ["mwoz", "sgd"])
def test_uss_dialogue_and_turn_counts(
    uss_by_corpus: dict[str, list[Conversation]], corpus: str
) -> None:
    conversations = uss_by_corpus[corpus]
    expected = USS_COUNTS[corpus]
    turns = [turn for conversation in conversations for turn in conversation.turns]
    customer_turns = [turn for turn in turns if turn.role is Role.CUSTOMER]
    assert len(conversations) == expected["dialogues"]
    assert len(turns) == expected["turns"]
    assert len(customer_turns) == expected["customer_turns"]


@pytest.mark.parametrize("corpus", ["mwoz", "sgd"])
def test_uss_turn_satisfaction_distribution(
    uss_by_corpus: dict[str, list[Conversation]], corpus: str
) -> None:
    ratings = Counter(
        turn.labels.satisfaction
        for conversation in uss_by_corpus[corpus]
        for turn in conversation.turns
        if turn.role is Role.CUSTOMER and turn.labels is not None
    )
    assert dict(ratings) == USS_COUNTS[corpus]["satisfaction"]


@pytest.mark.parametrize("corpus", ["mwoz", "sgd"])
def test_uss_overall_satisfaction_distribution(
    uss_by_corpus: dict[str, list[Conversation]], corpus: str
) -> None:
    overall = Counter(
        conversation.labels.overall_satisfaction
        for conversation in uss_by_corpus[corpus]
        if conversation.labels is not None
    )
    assert dict(overall) == USS_COUNTS[corpus]["overall"]


@pytest.mark.parametrize("corpus", ["mwoz", "sgd"])
def test_uss_ids_sources_and_escalated(
    uss_by_corpus: dict[str, list[Conversation]], corpus: str
) -> None:
    conversations = uss_by_corpus[corpus]
    assert conversations[0].id == f"uss-{corpus}-0001"
    assert conversations[-1].id == f"uss-{corpus}-1000"
    labels = [conversation.labels for conversation in conversations]
    assert {conversation.source for conversation in conversations} == {f"uss-{corpus}"}
    assert None not in labels
    assert {label.escalated for label in labels if label is not None} == {None}


def test_uss_roles_and_labels_per_turn(uss_all: list[Conversation]) -> None:
    turns = [turn for conversation in uss_all for turn in conversation.turns]
    roles = {turn.role for turn in turns}
    customer_unlabelled = [turn for turn in turns if turn.role is Role.CUSTOMER
                           and (turn.labels is None or turn.labels.satisfaction is None)]
    assistant_labelled = [turn for turn in turns
                          if turn.role is Role.ASSISTANT and turn.labels is not None]
    assert roles == {Role.CUSTOMER, Role.ASSISTANT}
    assert customer_unlabelled == []
    assert assistant_labelled == []


def test_uss_first_dialogue_matches_file(uss_by_corpus: dict[str, list[Conversation]]) -> None:
    first = uss_by_corpus["mwoz"][0]
    assert len(first.turns) == 13
    assert first.turns[0].role is Role.CUSTOMER
    assert first.turns[0].text == "I'm looking for a cheap restaurant in the east part of town."
    assert first.turns[1].role is Role.ASSISTANT
    assert first.turns[-1].text == "Goodbye."
    assert first.labels is not None
    assert first.labels.overall_satisfaction == 3


def test_uss_overall_line_is_not_a_turn(uss_all: list[Conversation]) -> None:
    overall_turns = [turn for conversation in uss_all for turn in conversation.turns
                     if turn.text == "OVERALL"]
    assert overall_turns == []


def test_uss_tie_goes_to_lower_rating(uss_by_corpus: dict[str, list[Conversation]]) -> None:
    # MWOZ.txt line 113 rates this turn 3,3,2,2 and dialogue 8's OVERALL line reads 4,4,3,3.
    mwoz = _by_id(uss_by_corpus["mwoz"])
    tied_turn = mwoz["uss-mwoz-0006"].turns[2]
    tied_overall = mwoz["uss-mwoz-0008"].labels
    assert tied_turn.text.startswith("Yes please, can I get the postcode")
    assert tied_turn.labels is not None
    assert tied_turn.labels.satisfaction == 2
    assert tied_overall is not None
    assert tied_overall.overall_satisfaction == 3


@pytest.mark.parametrize(
    ("ratings", "expected"),
    [
        ([3, 3, 3, 3], 3),
        ([3, 3, 2, 3], 3),
        ([3, 3, 2, 2], 2),
        ([4, 3, 4, 3], 3),
        ([1, 5], 1),
        ([4], 4),
        ([5, 4, 4, 5, 3], 4),
    ],
)
def test_majority_rating_cases(ratings: list[int], expected: int) -> None:
    assert majority_rating(ratings) == expected


def test_majority_rating_empty_raises() -> None:
    with pytest.raises(ValueError, match="at least one rating"):
        majority_rating([])


def test_read_bundled_uss_reads_both_corpora(uss_all: list[Conversation]) -> None:
    bundled = read_bundled_uss()
    assert [conversation.id for conversation in bundled] == \
        [conversation.id for conversation in uss_all]


def test_uss_plain_file_reads_like_gzip(tmp_path: Path) -> None:
    lines = [USS_LINE, SYSTEM_LINE, OVERALL_LINE, "", USS_LINE, OVERALL_LINE]
    plain = _write_uss(tmp_path, lines)
    packed = _write_gzip(tmp_path / "corpus.txt.gz", "\n".join(lines) + "\n")
    assert read_uss(plain, "demo") == read_uss(packed, "demo")
    assert len(read_uss(plain, "demo")) == 2


def test_uss_byte_order_mark_is_skipped(tmp_path: Path) -> None:
    plain = _write_uss(tmp_path, [USS_LINE, SYSTEM_LINE, OVERALL_LINE])
    marked = tmp_path / "marked.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())

    assert read_uss(marked, "demo") == read_uss(plain, "demo")


def test_uss_windows_line_endings_read(tmp_path: Path) -> None:
    path = tmp_path / "crlf.txt"
    path.write_bytes("\r\n".join([USS_LINE, SYSTEM_LINE, OVERALL_LINE]).encode("utf-8"))
    conversation = read_uss(path, "demo")[0]
    assert conversation.turns[1].text == "How can I help?"
    assert conversation.labels is not None
    assert conversation.labels.overall_satisfaction == 3


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("USER\tno action column\t3,3", "expected 4 tab-separated fields"),
        ("BOT\tHello\t\t", "unknown role 'BOT'"),
        ("USER\tHello\t\t3,x,3", "invalid rating 'x'"),
        ("USER\tHello\t\t3,6,3", "invalid rating '6'"),
        ("USER\tHello\t\t", "USER line without ratings"),
        ("SYSTEM\tHello\t\t3,3", "SYSTEM line with ratings"),
    ],
)
def test_uss_malformed_line_names_file_and_line(
    tmp_path: Path, bad_line: str, message: str
) -> None:
    path = _write_uss(tmp_path, [USS_LINE, bad_line, OVERALL_LINE])
    with pytest.raises(DatasetError) as caught:
        read_uss(path, "demo")
    assert f"{path}, line 2" in str(caught.value)
    assert message in str(caught.value)


def test_uss_missing_overall_line_raises(tmp_path: Path) -> None:
    path = _write_uss(tmp_path, [USS_LINE, SYSTEM_LINE])
    with pytest.raises(DatasetError, match="does not end with a 'USER<TAB>OVERALL' line"):
        read_uss(path, "demo")


def test_uss_overall_inside_dialogue_raises(tmp_path: Path) -> None:
    path = _write_uss(tmp_path, [USS_LINE, OVERALL_LINE, SYSTEM_LINE, OVERALL_LINE])
    with pytest.raises(DatasetError, match="line 2: OVERALL line inside a dialogue"):
        read_uss(path, "demo")


def test_uss_text_over_limit_names_line(tmp_path: Path) -> None:
    long_line = "SYSTEM\t" + "a" * 8001 + "\t\t"
    path = _write_uss(tmp_path, [USS_LINE, long_line, OVERALL_LINE])
    with pytest.raises(DatasetError) as caught:
        read_uss(path, "demo")
    assert "uss-demo-0001" in str(caught.value)
    assert "line 2, field 'text'" in str(caught.value)


def test_uss_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        read_uss(tmp_path / "ReDial.txt.gz", "redial")
    assert "file not found" in str(caught.value)
    assert "github.com/sunnweiwei/user-satisfaction-simulation" in str(caught.value)


def test_uss_invalid_corpus_name_raises() -> None:
    with pytest.raises(DatasetError, match="invalid USS corpus name 'MWOZ'"):
        read_uss(paths.bundled_uss_files()["mwoz"], "MWOZ")


def test_uss_invalid_utf8_raises(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("USER\tcaf\xe9\t\t3\nUSER\tOVERALL\t\t3\n".encode("latin-1"))
    with pytest.raises(DatasetError, match="not valid UTF-8"):
        read_uss(path, "demo")


def test_uss_truncated_gzip_raises(tmp_path: Path) -> None:
    data = paths.bundled_uss_files()["mwoz"].read_bytes()
    path = tmp_path / "truncated.txt.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match="corrupt or truncated gzip data"):
        read_uss(path, "demo")


# GoEmotions


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_goemotions_counts(goemotions: dict[str, list[Conversation]], split: str) -> None:
    expected = GOEMOTIONS_COUNTS[split]
    turns = [conversation.turns[0] for conversation in goemotions[split]]
    sentiments = Counter(turn.labels.sentiment for turn in turns if turn.labels is not None)
    frustrated = sum(1 for turn in turns if turn.labels is not None and turn.labels.frustration)
    assert len(goemotions[split]) == expected["comments"]
    assert sentiments[Sentiment.NEGATIVE] == expected["negative"]
    assert sentiments[Sentiment.NEUTRAL] == expected["neutral"]
    assert sentiments[Sentiment.POSITIVE] == expected["positive"]
    assert frustrated == expected["frustration"]


@pytest.mark.parametrize(("comment_id", "emotions", "sentiment", "frustration"),
                         GOEMOTIONS_KNOWN_ROWS)
def test_goemotions_known_row_labels(
    goemotions_train_by_id: dict[str, Conversation],
    comment_id: str,
    emotions: str,
    sentiment: Sentiment,
    frustration: bool,
) -> None:
    labels = goemotions_train_by_id[f"goemotions-train-{comment_id}"].turns[0].labels
    assert labels is not None
    assert labels.sentiment is sentiment, emotions
    assert labels.frustration is frustration, emotions


def test_goemotions_one_customer_turn_each(goemotions: dict[str, list[Conversation]]) -> None:
    conversations = [conversation for split in goemotions.values() for conversation in split]
    shapes = {(len(conversation.turns), conversation.turns[0].role, conversation.source)
              for conversation in conversations}
    assert shapes == {(1, Role.CUSTOMER, "goemotions")}


def test_goemotions_ids_carry_split(goemotions: dict[str, list[Conversation]]) -> None:
    for split, conversations in goemotions.items():
        prefixes = {conversation.id.rsplit("-", 1)[0] for conversation in conversations}
        assert prefixes == {f"goemotions-{split}"}


def test_goemotions_csv_quotes_removed(goemotions_train_by_id: dict[str, Conversation]) -> None:
    text = goemotions_train_by_id["goemotions-train-edq2z1l"].turns[0].text
    assert text.startswith('What do you mean by "free game"? Are you under')


def test_goemotions_examples_keep_emotion_names() -> None:
    examples = read_goemotions_examples(paths.goemotions_file("dev"))
    assert len(examples) == 5426
    assert examples[1].comment_id == "ee84bjg"
    assert examples[1].emotions == ("approval", "neutral")
    assert examples[1].line_number == 2


def test_sentiment_rule_on_real_mapping() -> None:
    groups = read_sentiment_mapping(paths.GOEMOTIONS_DIR / "sentiment_mapping.tsv")
    assert sentiment_from_emotions(["gratitude", "anger"], groups) is Sentiment.NEGATIVE
    assert sentiment_from_emotions(["surprise", "joy"], groups) is Sentiment.POSITIVE
    assert sentiment_from_emotions(["realization"], groups) is Sentiment.NEUTRAL
    assert sentiment_from_emotions(["neutral"], groups) is Sentiment.NEUTRAL


@pytest.fixture()
def goemotions_dir(tmp_path: Path) -> Path:
    for name in ("labels.txt", "sentiment_mapping.tsv"):
        shutil.copy(paths.GOEMOTIONS_DIR / name, tmp_path / name)
    return tmp_path


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("text\t28\tabc1", "invalid emotion id '28'"),
        ("text\tjoy\tabc1", "invalid emotion id 'joy'"),
        ("text\t27", "expected 3 tab-separated fields"),
        ('"broken "quote\t27\tabc1', "malformed quoting"),
        ("text\t27\tabc 1", "invalid comment id 'abc 1'"),
        ("text\t27\tgood1", "duplicate comment id 'good1', first seen on line 1"),
    ],
)
def test_goemotions_malformed_line_names_file_and_line(
    goemotions_dir: Path, bad_line: str, message: str
) -> None:
    path = goemotions_dir / "train.tsv"
    path.write_text(f"fine text\t15\tgood1\n{bad_line}\n", encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_goemotions(path, "train")
    assert f"{path}, line 2" in str(caught.value)
    assert message in str(caught.value)


def test_goemotions_missing_labels_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("fine text\t15\tgood1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="sentiment_mapping.tsv: file not found"):
        read_goemotions(path, "train")


def test_goemotions_unknown_split_raises() -> None:
    with pytest.raises(DatasetError, match="unknown GoEmotions split 'validation'"):
        read_goemotions(paths.goemotions_file("dev"), "validation")


# MHCH-DAMI


@requires_mhch
@pytest.mark.parametrize("name", ["clothing_eval", "makeup_eval"])
def test_mhch_counts(name: str) -> None:
    conversations = read_mhch(paths.mhch_file(name))
    expected = MHCH_COUNTS[name]
    turns = [turn for conversation in conversations for turn in conversation.turns]
    handoffs = sum(1 for turn in turns if turn.labels is not None and turn.labels.handoff)
    escalated = sum(1 for conversation in conversations
                    if conversation.labels is not None and conversation.labels.escalated)
    assert len(conversations) == expected["dialogues"]
    assert len(turns) == expected["utterances"]
    assert handoffs == expected["handoffs"]
    assert escalated == expected["escalated"]


@requires_mhch
def test_mhch_mapping_of_known_dialogue() -> None:
    conversations = _by_id(read_mhch(paths.mhch_file("clothing_eval")))
    first = conversations["mhch-clothing-eval-0000"]
    handed_over = conversations["mhch-clothing-eval-0001"]
    assert first.source == "mhch-clothing"
    assert first.turns[0].text == "w4 w2137 w4"
    assert first.turns[0].role is Role.CUSTOMER
    assert first.labels is not None
    assert first.labels.escalated is False
    assert first.labels.escalation_turn is None
    assert handed_over.turns[0].role is Role.ASSISTANT
    assert handed_over.labels is not None
    assert handed_over.labels.escalated is True
    assert handed_over.labels.escalation_turn == 4


def _mhch_record(**changes: object) -> dict[str, object]:
    record: dict[str, object] = {
        "dialogue_index": 7, "split": "eval", "domain": "clothing", "n_utterances": 2,
        "utterances": [
            {"turn": 1, "role": "customer", "token_ids": [5, 6], "handoff_label": 0},
            {"turn": 2, "role": "agent_or_bot", "token_ids": [], "handoff_label": 1},
        ],
    }
    record.update(changes)
    if "utterances" in changes and "n_utterances" not in changes:
        record["n_utterances"] = len(changes["utterances"])  # type: ignore[arg-type]
    return record


def test_mhch_reads_plain_record(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    path.write_text(json.dumps(_mhch_record()) + "\n", encoding="utf-8")
    conversation = read_mhch(path)[0]
    assert conversation.id == "mhch-clothing-eval-0007"
    assert conversation.turns[1].text == ""
    assert conversation.turns[1].labels is not None
    assert conversation.turns[1].labels.handoff is True
    assert conversation.labels is not None
    assert conversation.labels.escalation_turn == 1


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (_mhch_record(domain=None), "'domain' must be a JSON string"),
        (_mhch_record(n_utterances=3), "n_utterances is 3 but the dialogue has 2"),
        (_mhch_record(utterances=[{"role": "bot", "token_ids": [], "handoff_label": 0}]),
         "unknown role 'bot'"),
        (_mhch_record(utterances=[{"role": "customer", "token_ids": [], "handoff_label": 2}]),
         "handoff_label is 2"),
        (_mhch_record(utterances=[{"role": "customer", "token_ids": [], "handoff_label": True}]),
         "'handoff_label' must be a JSON integer"),
        (_mhch_record(utterances=[{"role": "customer", "handoff_label": 0}]),
         "missing key 'token_ids'"),
    ],
)
def test_mhch_malformed_record_names_line(
    tmp_path: Path, record: dict[str, object], message: str
) -> None:
    path = tmp_path / "demo.jsonl"
    path.write_text(json.dumps(_mhch_record()) + "\n" + json.dumps(record) + "\n",
                    encoding="utf-8")
    with pytest.raises(DatasetError) as caught:
        read_mhch(path)
    assert f"{path}, line 2" in str(caught.value)
    assert message in str(caught.value)


def test_mhch_invalid_json_names_line(tmp_path: Path) -> None:
    path = tmp_path / "demo.jsonl"
    path.write_text("{\"dialogue_index\": 1,\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="line 1: not valid JSON"):
        read_mhch(path)


def test_mhch_missing_file_says_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as caught:
        read_mhch(tmp_path / "clothing_eval.jsonl.gz")
    assert "file not found" in str(caught.value)
    assert "github.com/WeijiaLau/MHCH-DAMI" in str(caught.value)


# Paths


def test_shared_dir_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.SHARED_DATASETS_ENV, str(tmp_path))
    assert paths.shared_datasets_dir() == tmp_path
    assert paths.mhch_file("makeup_eval") == tmp_path / "mhch_dami" / "makeup_eval.jsonl.gz"


def test_shared_dir_env_not_a_directory_raises(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(paths.SHARED_DATASETS_ENV, str(tmp_path / "absent"))
    with pytest.raises(DatasetError, match="is not a directory"):
        paths.shared_datasets_dir()


# Splits


def test_make_splits_sizes_and_cover(uss_all: list[Conversation]) -> None:
    ids = [conversation.id for conversation in uss_all]
    result = splits.make_splits(ids, seed=13)
    assigned = [conversation_id for name in splits.SPLIT_NAMES for conversation_id in result[name]]
    assert [len(result[name]) for name in splits.SPLIT_NAMES] == [1600, 200, 200]
    assert len(set(assigned)) == len(assigned)
    assert set(assigned) == set(ids)


def test_make_splits_ignores_input_order(uss_all: list[Conversation]) -> None:
    ids = [conversation.id for conversation in uss_all]
    assert splits.make_splits(ids, seed=13) == splits.make_splits(ids[::-1], seed=13)


def test_make_splits_seed_changes_result(uss_all: list[Conversation]) -> None:
    ids = [conversation.id for conversation in uss_all]
    assert splits.make_splits(ids, seed=13) == splits.make_splits(ids, seed=13)
    assert splits.make_splits(ids, seed=13) != splits.make_splits(ids, seed=14)


@pytest.mark.parametrize("fractions", [(0.8, 0.1), (0.8, 0.3, -0.1), (0.5, 0.2, 0.2)])
def test_make_splits_invalid_fractions_raise(fractions: tuple[float, ...]) -> None:
    with pytest.raises(DatasetError, match="invalid split fractions"):
        splits.make_splits(["a", "b", "c"], seed=1, fractions=fractions)


def test_make_splits_duplicate_ids_raise() -> None:
    with pytest.raises(DatasetError, match=r"appear more than once, e.g. \['b'\]"):
        splits.make_splits(["a", "b", "b"], seed=1)


def test_make_splits_small_input_has_no_negative_sizes() -> None:
    result = splits.make_splits(["a", "b", "c"], seed=1, fractions=(0.0, 0.5, 0.5))
    assert sum(len(ids) for ids in result.values()) == 3
    assert result["train"] == []


def test_stored_uss_split_matches_data(
    uss_all: list[Conversation], stored_uss_splits: splits.StoredSplits
) -> None:
    ids = [conversation.id for conversation in uss_all]
    assert stored_uss_splits.seed == 13
    assert stored_uss_splits.fractions == (0.8, 0.1, 0.1)
    assert stored_uss_splits.fingerprint == splits.ids_fingerprint(ids)
    assert stored_uss_splits.splits == splits.make_splits(ids, seed=13)


def test_stored_uss_split_groups_conversations(
    uss_all: list[Conversation], stored_uss_splits: splits.StoredSplits
) -> None:
    grouped = splits.split_conversations(uss_all, stored_uss_splits.splits)
    assert {name: len(items) for name, items in grouped.items()} == \
        {"train": 1600, "validation": 200, "test": 200}


def test_ensure_splits_uses_stored_uss_file(
    uss_all: list[Conversation], stored_uss_splits: splits.StoredSplits
) -> None:
    grouped = splits.ensure_splits("uss", uss_all)
    test_ids = sorted(conversation.id for conversation in grouped["test"])
    assert test_ids == stored_uss_splits.splits["test"]


def test_split_with_dropped_conversation_raises(
    uss_all: list[Conversation], stored_uss_splits: splits.StoredSplits
) -> None:
    with pytest.raises(DatasetError) as caught:
        splits.split_conversations(uss_all[1:], stored_uss_splits.splits)
    assert "1 id(s) in the split are not in the data, e.g. ['uss-mwoz-0001']" in str(caught.value)
    assert "regenerate the split" in str(caught.value)


def test_split_with_new_conversation_raises(
    uss_all: list[Conversation], stored_uss_splits: splits.StoredSplits
) -> None:
    extra = parse_conversation({"id": "uss-mwoz-1001", "turns": [{"role": "customer",
                                                                   "text": "hello"}]})
    with pytest.raises(DatasetError, match=r"1 conversation\(s\) are in no split"):
        splits.split_conversations([*uss_all, extra], stored_uss_splits.splits)


def test_split_with_duplicate_conversation_raises(
    uss_all: list[Conversation], stored_uss_splits: splits.StoredSplits
) -> None:
    with pytest.raises(DatasetError, match="appears twice"):
        splits.split_conversations([*uss_all, uss_all[0]], stored_uss_splits.splits)


def test_save_and_load_splits_round_trip(tmp_path: Path) -> None:
    created = splits.make_splits([f"c{i}" for i in range(20)], seed=5)
    path = tmp_path / "demo.json"
    splits.save_splits(created, path, seed=5)
    stored = splits.load_split_file(path)
    assert splits.load_splits(path) == created
    assert stored.seed == 5
    assert json.loads(path.read_text())["counts"] == {"train": 16, "validation": 2, "test": 2}


def test_load_splits_edited_list_raises(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    splits.save_splits(splits.make_splits(["a", "b", "c", "d"], seed=1), path, seed=1)
    document = json.loads(path.read_text())
    document["splits"]["train"][0] = "z"
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match="fingerprint_sha256 does not match"):
        splits.load_splits(path)


def test_load_splits_edited_count_raises(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    splits.save_splits(splits.make_splits(["a", "b", "c", "d"], seed=1), path, seed=1)
    document = json.loads(path.read_text())
    document["splits"]["train"].pop()
    path.write_text(json.dumps(document))
    with pytest.raises(DatasetError, match="do not match the id lists"):
        splits.load_splits(path)


def test_load_splits_invalid_json_raises(tmp_path: Path) -> None:
    path = tmp_path / "demo.json"
    path.write_text("{not json")
    with pytest.raises(DatasetError, match="not valid JSON"):
        splits.load_splits(path)


def test_load_splits_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="split file not found"):
        splits.load_splits(tmp_path / "absent.json")


def test_ensure_splits_creates_then_reuses(
    tmp_path: Path, uss_by_corpus: dict[str, list[Conversation]]
) -> None:
    conversations = uss_by_corpus["mwoz"][:50]
    created = splits.ensure_splits("demo", conversations, seed=3, directory=tmp_path)
    written = (tmp_path / "demo.json").read_text()
    reused = splits.ensure_splits("demo", conversations, seed=3, directory=tmp_path)
    assert created == reused
    assert (tmp_path / "demo.json").read_text() == written


def test_ensure_splits_changed_data_names_file(
    tmp_path: Path, uss_by_corpus: dict[str, list[Conversation]]
) -> None:
    conversations = uss_by_corpus["mwoz"][:50]
    splits.ensure_splits("demo", conversations, seed=3, directory=tmp_path)
    with pytest.raises(DatasetError) as caught:
        splits.ensure_splits("demo", conversations[:49], seed=3, directory=tmp_path)
    assert f"{tmp_path / 'demo.json'} does not fit the data" in str(caught.value)
    assert "['uss-mwoz-0050']" in str(caught.value)


def test_ensure_splits_other_seed_raises(
    tmp_path: Path, uss_by_corpus: dict[str, list[Conversation]]
) -> None:
    conversations = uss_by_corpus["mwoz"][:50]
    splits.ensure_splits("demo", conversations, seed=3, directory=tmp_path)
    with pytest.raises(DatasetError, match="was made with seed 3, but seed 4 was requested"):
        splits.ensure_splits("demo", conversations, seed=4, directory=tmp_path)


def test_split_command_reproduces_stored_file(tmp_path: Path) -> None:
    exit_code = splits.main(["uss", "--directory", str(tmp_path)])
    assert exit_code == 0
    assert (tmp_path / "uss.json").read_bytes() == (paths.SPLITS_DIR / "uss.json").read_bytes()


def test_split_command_keeps_existing_file(tmp_path: Path) -> None:
    (tmp_path / "uss.json").write_text("{}")
    with pytest.raises(SystemExit):
        splits.main(["uss", "--directory", str(tmp_path)])
    assert (tmp_path / "uss.json").read_text() == "{}"


# Example conversation in data/


def test_example_file_parses() -> None:
    conversations = read_conversations(paths.DATA_DIR / "examples" / "conversation.jsonl")
    roles = {turn.role for turn in conversations[0].turns}
    assert len(conversations) == 1
    assert roles == set(Role)
    assert conversations[0].customer is not None
    assert conversations[0].labels is not None


def test_readme_example_matches_file() -> None:
    readme = (paths.DATA_DIR / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```json\n(.*?)\n```", readme, flags=re.DOTALL)
    assert block is not None
    from_readme = parse_conversation(json.loads(block.group(1)))
    from_file = read_conversations(paths.DATA_DIR / "examples" / "conversation.jsonl")[0]
    assert from_readme == from_file
