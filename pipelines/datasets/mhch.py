"""Reader of the MHCH-DAMI handoff corpora (Liu et al., AAAI 2021) as Conversations.

The authors released Taobao pre-sales chats (domains clothing and makeup) with every word
replaced by an integer id and the id-to-word table removed, so no text exists. This reader takes
a JSON Lines conversion of their pickles, one dialogue per line, optionally gzipped:
`{"dialogue_index": int, "domain": str, "split": str, "n_utterances": int,
"utterances": [{"turn": int from 1, "role": "customer" | "agent_or_bot", "token_ids": [int],
"handoff_label": 0 | 1, ...}]}`. Other keys (`role_id`, `n_tokens`, `pos_ids`) are ignored.

Mapping: token ids become the words `w<id>` joined by spaces, so a turn with no tokens has empty
text. `customer` becomes a customer turn and `agent_or_bot` (the shop's chatbot) an assistant
turn. Each turn's `labels.handoff` is its handoff label (1 = the chat should go to a human at
this utterance); the conversation's `labels.escalated` is whether any turn has it and
`labels.escalation_turn` is the index of the first such turn.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

from pipelines.datasets.paths import MHCH_DIRECTORY_NAME, SHARED_DATASETS_ENV, read_lines
from serving.errors import ConversationValidationError, DatasetError
from serving.schema import Conversation, Role, parse_conversation

logger = logging.getLogger(__name__)

SOURCE_HINT = (
    "the MHCH-DAMI files are not bundled because their repository states no licence; the "
    "original pickles are in github.com/WeijiaLau/MHCH-DAMI, folder data/, and this reader "
    "expects their JSON Lines conversion described in data/README.md; set "
    f"{SHARED_DATASETS_ENV} to a directory that contains {MHCH_DIRECTORY_NAME}/"
)

_ROLES = {"customer": Role.CUSTOMER, "agent_or_bot": Role.ASSISTANT}
_NAME = re.compile(r"[a-z][a-z0-9_]*")


def read_mhch(path: Path) -> list[Conversation]:
    """Read one MHCH-DAMI JSON Lines file (gzipped or plain) as Conversations, in file order.

    Ids are `mhch-<domain>-<split>-<dialogue index, 4 digits>`, e.g. `mhch-clothing-eval-0000`,
    and the source is `mhch-<domain>`. Raises DatasetError naming the file and line for
    malformed input.
    """
    path = Path(path)
    conversations: list[Conversation] = []
    first_line_of: dict[str, int] = {}
    for number, line in read_lines(path, source_hint=SOURCE_HINT):
        if not line.strip():
            continue
        conversation = _build_conversation(path, number, _decode(path, number, line))
        if conversation.id in first_line_of:
            raise DatasetError(
                f"{path}, line {number}: duplicate dialogue {conversation.id}, first seen on "
                f"line {first_line_of[conversation.id]}; each dialogue_index must appear once"
            )
        first_line_of[conversation.id] = number
        conversations.append(conversation)

    logger.info("read %d MHCH dialogues from %s", len(conversations), path)
    return conversations


def _decode(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(
            f"{path}, line {number}: not valid JSON ({error.msg} at column {error.colno}); "
            "each line must be one dialogue object"
        ) from None
    if not isinstance(record, dict):
        raise DatasetError(
            f"{path}, line {number}: expected a JSON object, found {type(record).__name__}"
        )
    return record


def _build_conversation(path: Path, number: int, record: dict[str, Any]) -> Conversation:
    where = f"{path}, line {number}"
    index = _require(record, "dialogue_index", int, where)
    domain = _require(record, "domain", str, where)
    split = _require(record, "split", str, where)
    utterances = _require(record, "utterances", list, where)
    for key, value in (("domain", domain), ("split", split)):
        if not _NAME.fullmatch(value):
            raise DatasetError(
                f"{where}: invalid {key} {value!r}; expected a lowercase name such as "
                "'clothing' or 'eval'"
            )
    if index < 0:
        raise DatasetError(f"{where}: dialogue_index is {index}; it must be 0 or more")
    if "n_utterances" in record and record["n_utterances"] != len(utterances):
        raise DatasetError(
            f"{where}: n_utterances is {record['n_utterances']!r} but the dialogue has "
            f"{len(utterances)} utterances"
        )

    turns = [
        _turn_data(f"{where}, utterance {position + 1}", position, utterance)
        for position, utterance in enumerate(utterances)
    ]
    handoff_turns = [i for i, turn in enumerate(turns) if turn["labels"]["handoff"]]
    conversation_id = f"mhch-{domain}-{split}-{index:04d}"
    data = {
        "id": conversation_id,
        "source": f"mhch-{domain}",
        "turns": turns,
        "labels": {
            "escalated": bool(handoff_turns),
            "escalation_turn": handoff_turns[0] if handoff_turns else None,
        },
    }
    try:
        return parse_conversation(data, line_number=number)
    except ConversationValidationError as error:
        raise DatasetError(f"{path}: dialogue does not fit the conversation schema: {error}") \
            from None


def _turn_data(where: str, position: int, utterance: Any) -> dict[str, Any]:
    if not isinstance(utterance, dict):
        raise DatasetError(f"{where}: expected a JSON object, found {type(utterance).__name__}")

    role_name = _require(utterance, "role", str, where)
    token_ids = _require(utterance, "token_ids", list, where)
    handoff = _require(utterance, "handoff_label", int, where)
    role = _ROLES.get(role_name)
    if role is None:
        raise DatasetError(
            f"{where}: unknown role {role_name!r}; expected 'customer' or 'agent_or_bot'"
        )
    if handoff not in (0, 1):
        raise DatasetError(f"{where}: handoff_label is {handoff}; it must be 0 or 1")
    if "turn" in utterance and utterance["turn"] != position + 1:
        raise DatasetError(
            f"{where}: turn is {utterance['turn']!r} but the utterance is number {position + 1}; "
            "utterances must be listed in order"
        )
    if not all(type(token) is int and token >= 0 for token in token_ids):
        raise DatasetError(f"{where}: token_ids must be non-negative integers")

    return {
        "role": role.value,
        "text": " ".join(f"w{token}" for token in token_ids),
        "labels": {"handoff": handoff == 1},
    }


def _require(record: dict[str, Any], key: str, kind: type, where: str) -> Any:
    if key not in record:
        raise DatasetError(f"{where}: missing key {key!r}")
    value = record[key]
    # bool is a subclass of int, and true/false would silently pass as 1/0.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise DatasetError(
            f"{where}: {key!r} must be a JSON {_JSON_TYPE_NAMES[kind]}, found {value!r}"
        )
    return value


_JSON_TYPE_NAMES: dict[type, str] = {int: "integer", str: "string", list: "array"}
