"""Tests of sentence splitting, entity extraction and suggested-step detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.datasets.uss import read_bundled_uss
from serving.extract import (
    EntityKind,
    extract_conversation_entities,
    extract_entities,
    is_instruction,
    split_sentences,
    suggested_steps,
)
from serving.schema import Conversation, Role, read_conversations

REPOSITORY = Path(__file__).resolve().parents[2]
EXAMPLE_FILE = REPOSITORY / "data" / "examples" / "conversation.jsonl"


@pytest.fixture(scope="module")
def uss() -> dict[str, Conversation]:
    return {conversation.id: conversation for conversation in read_bundled_uss()}


@pytest.fixture(scope="module")
def example() -> Conversation:
    return read_conversations(EXAMPLE_FILE)[0]


def sentences_of(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


def kinds_found(text: str, kind: EntityKind) -> list[str]:
    return [entity.text for entity in extract_entities(text, 0) if entity.kind is kind]


# ---------------------------------------------------------------------------------------------
# Sentences
# ---------------------------------------------------------------------------------------------


def test_sentences_split_on_terminal_punctuation() -> None:
    assert sentences_of("It broke. Can you help?! Thanks") == [
        "It broke.", "Can you help?!", "Thanks"]


def test_sentences_keep_abbreviations_together() -> None:
    assert sentences_of("I tried e.g. the web app. Dr. Lee said so.") == [
        "I tried e.g. the web app.", "Dr. Lee said so."]


def test_sentences_keep_number_abbreviation_before_digit() -> None:
    assert sentences_of("See invoice No. 5 please. The answer was no. Then it failed.") == [
        "See invoice No. 5 please.", "The answer was no.", "Then it failed."]


def test_sentences_split_on_newlines_and_keep_list_markers() -> None:
    assert sentences_of("Do this:\n1. Open Settings\n2) Tap Privacy. Step 3. Clear data") == [
        "Do this:", "1. Open Settings", "2) Tap Privacy.", "Step 3. Clear data"]


def test_sentences_keep_closing_quote() -> None:
    assert sentences_of('He said "no." Then he left.') == ['He said "no."', "Then he left."]


def test_sentences_of_blank_text_are_empty() -> None:
    assert split_sentences("  \n ") == []


def test_sentence_spans_exclude_outer_whitespace() -> None:
    text = "  First one.   Second one.  "

    assert split_sentences(text) == [(2, 12), (15, 26)]


# ---------------------------------------------------------------------------------------------
# Entities: positive cases
# ---------------------------------------------------------------------------------------------

POSITIVE_CASES = [
    # (message, kind, expected text, expected value)
    ("I get Error 504 when I open the page", EntityKind.ERROR, "Error 504", "504"),
    ("the app shows error code E1234", EntityKind.ERROR, "error code E1234", "E1234"),
    ("error code: E-1234 again", EntityKind.ERROR, "error code: E-1234", "E-1234"),
    ("error: 0x80070005 while updating", EntityKind.ERROR, "error: 0x80070005", "0x80070005"),
    ("Chrome says ERR_CONNECTION_REFUSED", EntityKind.ERROR, "ERR_CONNECTION_REFUSED",
     "ERR_CONNECTION_REFUSED"),
    ("I see DNS_PROBE_FINISHED_NXDOMAIN", EntityKind.ERROR, "DNS_PROBE_FINISHED_NXDOMAIN",
     "DNS_PROBE_FINISHED_NXDOMAIN"),
    ("it died with java.lang.NullPointerException at start", EntityKind.ERROR,
     "java.lang.NullPointerException", "java.lang.NullPointerException"),
    ("NullPointerException every time", EntityKind.ERROR, "NullPointerException",
     "NullPointerException"),
    ("TypeError: x is undefined", EntityKind.ERROR, "TypeError", "TypeError"),
    ("the server returned HTTP 503", EntityKind.ERROR, "HTTP 503", "503"),
    ("I got a 502 Bad Gateway page", EntityKind.ERROR, "502 Bad Gateway", "502"),
    ('it says "Payment declined" every time', EntityKind.ERROR, '"Payment declined"',
     "Payment declined"),
    ("the message 'invalid password' shows up", EntityKind.ERROR, "'invalid password'",
     "invalid password"),
    ("it shows “Something went wrong” and stops", EntityKind.ERROR, "“Something went wrong”",
     "Something went wrong"),
    ("curl fails with ECONNREFUSED", EntityKind.ERROR, "ECONNREFUSED", "ECONNREFUSED"),
    ("I'm on v2.3.1 now", EntityKind.VERSION, "v2.3.1", "2.3.1"),
    ("since version 14.2 of the app", EntityKind.VERSION, "version 14.2", "14.2"),
    ("after the update to iOS 17", EntityKind.VERSION, "iOS 17", "iOS 17"),
    ("my phone runs ios 17.1.2", EntityKind.VERSION, "ios 17.1.2", "ios 17.1.2"),
    ("on Windows 11 it fails", EntityKind.VERSION, "Windows 11", "Windows 11"),
    ("build 4512 is installed", EntityKind.VERSION, "build 4512", "4512"),
    ("I updated to 2.4-beta yesterday", EntityKind.VERSION, "updated to 2.4-beta", "2.4-beta"),
    ("where is order #A12345?", EntityKind.ORDER_ID, "order #A12345", "A12345"),
    ("my order number is 123-4567", EntityKind.ORDER_ID, "order number is 123-4567",
     "123-4567"),
    ("order no. 98765 is late", EntityKind.ORDER_ID, "order no. 98765", "98765"),
    ("Order ID: XK-2231 shows shipped", EntityKind.ORDER_ID, "Order ID: XK-2231", "XK-2231"),
    ("order A12345 never arrived", EntityKind.ORDER_ID, "order A12345", "A12345"),
    ("you charged me $49.99 twice", EntityKind.AMOUNT, "$49.99", "49.99 USD"),
    ("it was 49,99 EUR", EntityKind.AMOUNT, "49,99 EUR", "49.99 EUR"),
    ("the plan costs USD 120", EntityKind.AMOUNT, "USD 120", "120 USD"),
    ("a charge of €1.234,56 appeared", EntityKind.AMOUNT, "€1.234,56", "1234.56 EUR"),
    ("I paid £20 for it", EntityKind.AMOUNT, "£20", "20 GBP"),
    ("the invoice says 1,250.00 usd", EntityKind.AMOUNT, "1,250.00 usd", "1250.00 USD"),
    ("it cost 20 dollars", EntityKind.AMOUNT, "20 dollars", "20 USD"),
    ("I was billed 49,99 € again", EntityKind.AMOUNT, "49,99 €", "49.99 EUR"),
    ("I need it fixed by Friday", EntityKind.DEADLINE, "by Friday", "by Friday"),
    ("please call before 5pm", EntityKind.DEADLINE, "before 5pm", "before 5pm"),
    ("the launch is tomorrow", EntityKind.DEADLINE, "tomorrow", "tomorrow"),
    ("answer within 24 hours please", EntityKind.DEADLINE, "within 24 hours",
     "within 24 hours"),
    ("within two business days", EntityKind.DEADLINE, "within two business days",
     "within two business days"),
    ("the contract ends 2024-06-01", EntityKind.DEADLINE, "2024-06-01", "2024-06-01"),
    ("no later than 2024-06-01T17:00Z", EntityKind.DEADLINE, "no later than 2024-06-01T17:00Z",
     "no later than 2024-06-01T17:00Z"),
    ("fix it by end of day", EntityKind.DEADLINE, "by end of day", "by end of day"),
    ("by tomorrow at 9am please", EntityKind.DEADLINE, "by tomorrow at 9am",
     "by tomorrow at 9am"),
    ("the office is open until 17:00", EntityKind.DEADLINE, "until 17:00", "until 17:00"),
    ("the invoice is due Monday", EntityKind.DEADLINE, "due Monday", "due Monday"),
    ("I need it by May 3", EntityKind.DEADLINE, "by May 3", "by May 3"),
    ("pay by the 15th", EntityKind.DEADLINE, "by the 15th", "by the 15th"),
]


@pytest.mark.parametrize(("message", "kind", "text", "value"), POSITIVE_CASES,
                         ids=[case[0] for case in POSITIVE_CASES])
def test_entity_found(message: str, kind: EntityKind, text: str, value: str) -> None:
    found = [(entity.kind, entity.text, entity.value) for entity in extract_entities(message, 0)]

    assert (kind, text, value) in found


@pytest.mark.parametrize(("message", "kind", "text", "value"), POSITIVE_CASES,
                         ids=[case[0] for case in POSITIVE_CASES])
def test_entity_span_points_at_text(message: str, kind: EntityKind, text: str,
                                    value: str) -> None:
    entity = next(item for item in extract_entities(message, 7) if item.text == text)

    assert message[entity.span[0] : entity.span[1]] == text
    assert entity.turn_index == 7


# ---------------------------------------------------------------------------------------------
# Entities: negative cases
# ---------------------------------------------------------------------------------------------

NEGATIVE_CASES = [
    # (message, kind that must not be found)
    ("I made an error in my order", EntityKind.ERROR),
    ("this release is error-free", EntityKind.ERROR),
    ("Error", EntityKind.ERROR),
    ("we have 504 users now", EntityKind.ERROR),
    ("set MAX_VALUE and HTTP_PROXY first", EntityKind.ERROR),
    ("errors 3 times a day", EntityKind.ERROR),
    ("Exception handling is fine", EntityKind.ERROR),
    ('they said "great service" to me', EntityKind.ERROR),
    ("it's fine and that's it, can't complain", EntityKind.ERROR),
    ("v2 of the plan is better", EntityKind.VERSION),
    ("the 2.3.1 release notes", EntityKind.VERSION),
    ("version control is hard", EntityKind.VERSION),
    ("the windows are broken", EntityKind.VERSION),
    ("I rate it 3.5 stars", EntityKind.VERSION),
    ("in order to pay I need help", EntityKind.ORDER_ID),
    ("an order of magnitude more", EntityKind.ORDER_ID),
    ("I want to order 1000 units", EntityKind.ORDER_ID),
    ("order #1 was fine", EntityKind.ORDER_ID),
    ("I ordered 3 items", EntityKind.ORDER_ID),
    ("we have 120 users", EntityKind.AMOUNT),
    ("version 1.2 is out", EntityKind.AMOUNT),
    ("2 pounds of flour", EntityKind.AMOUNT),
    ("order A12345", EntityKind.AMOUNT),
    ("USDA 5 grade beef", EntityKind.AMOUNT),
    ("number 12345 only", EntityKind.AMOUNT),
    ("by the way, hello", EntityKind.DEADLINE),
    ("send it by email", EntityKind.DEADLINE),
    ("I've seen this before.", EntityKind.DEADLINE),
    ("it worked until now", EntityKind.DEADLINE),
    ("within the app it fails", EntityKind.DEADLINE),
    ("today's update broke it", EntityKind.DEADLINE),
    ("goodbye and thanks", EntityKind.DEADLINE),
    ("the date 2024-13-45 is wrong", EntityKind.DEADLINE),
    ("the TV is in standby mode", EntityKind.DEADLINE),
    ("rated by 5 people", EntityKind.DEADLINE),
    ("by 2024-02-30 at the latest", EntityKind.DEADLINE),
    ("order number 123-4567", EntityKind.DEADLINE),
]


@pytest.mark.parametrize(("message", "kind"), NEGATIVE_CASES,
                         ids=[case[0] for case in NEGATIVE_CASES])
def test_entity_not_found(message: str, kind: EntityKind) -> None:
    assert kinds_found(message, kind) == []


# ---------------------------------------------------------------------------------------------
# Entities: overlaps and conversations
# ---------------------------------------------------------------------------------------------


def test_overlap_keeps_longest_error() -> None:
    assert [entity.text for entity in extract_entities("HTTP error 502 again", 0)] == [
        "HTTP error 502"]


def test_overlap_keeps_prefixed_deadline() -> None:
    assert [entity.text for entity in extract_entities("pay by 2024-06-01 please", 0)] == [
        "by 2024-06-01"]


def test_entities_come_in_text_order() -> None:
    message = "By tomorrow: refund $10 for order #AB1234 (Error 500 on v1.2)"

    kinds = [entity.kind for entity in extract_entities(message, 0)]

    assert kinds == [EntityKind.DEADLINE, EntityKind.AMOUNT, EntityKind.ORDER_ID,
                     EntityKind.ERROR, EntityKind.VERSION]


def test_example_customer_entities(example: Conversation) -> None:
    found = [(entity.kind, entity.text, entity.turn_index)
             for entity in extract_conversation_entities(example)]

    assert found == [(EntityKind.DEADLINE, "today", 2)]


def test_example_assistant_entities(example: Conversation) -> None:
    found = extract_conversation_entities(example, roles=(Role.ASSISTANT,))

    assert [(entity.kind, entity.value, entity.turn_index) for entity in found] == [
        (EntityKind.AMOUNT, "480.00 EUR", 1),
        (EntityKind.DEADLINE, "within 5 business days", 1),
    ]


def test_uss_sgd_amount_with_thousands(uss: dict[str, Conversation]) -> None:
    found = extract_conversation_entities(uss["uss-sgd-0749"], roles=(Role.ASSISTANT,))

    assert "13832.79 USD" in [entity.value for entity in found]


def test_uss_mwoz_arrival_deadline(uss: dict[str, Conversation]) -> None:
    found = extract_conversation_entities(uss["uss-mwoz-0100"],
                                          roles=(Role.CUSTOMER, Role.ASSISTANT))

    assert "by 15:45" in [entity.text for entity in found]


def test_uss_has_no_false_error_version_or_order(uss: dict[str, Conversation]) -> None:
    # The USS dialogues book restaurants, trains and hotels: none contains an error code, a
    # product version or an order id, so every such match would be a false positive.
    unexpected = {EntityKind.ERROR, EntityKind.VERSION, EntityKind.ORDER_ID}
    found = [
        (conversation.id, entity.text)
        for conversation in uss.values()
        for entity in extract_conversation_entities(conversation,
                                                    roles=(Role.CUSTOMER, Role.ASSISTANT))
        if entity.kind in unexpected
    ]

    assert found == []


def test_uss_entity_spans_match_turn_text(uss: dict[str, Conversation]) -> None:
    mismatched = [
        (conversation.id, entity.turn_index, entity.text)
        for conversation in uss.values()
        for entity in extract_conversation_entities(conversation,
                                                    roles=(Role.CUSTOMER, Role.ASSISTANT))
        if conversation.turns[entity.turn_index].text[entity.span[0]:entity.span[1]]
        != entity.text
    ]

    assert mismatched == []


# ---------------------------------------------------------------------------------------------
# Suggested steps
# ---------------------------------------------------------------------------------------------

INSTRUCTIONS = [
    "Please restart the app.",
    "Try clearing your cache.",
    "Go to Settings > Privacy.",
    "Click the blue button at the bottom.",
    "Clear your cache and cookies.",
    "1. Open Settings",
    "2) Settings > Privacy > Clear data",
    "Step 3: Tap Privacy",
    "You can reset your password from the login page.",
    "I suggest that you reinstall the app.",
    "Could you try logging out and back in?",
    "First, turn off the router.",
    "Then, wait 30 seconds and plug it back in.",
    "Make sure Bluetooth is on.",
    "- Update to the latest version",
]

NOT_INSTRUCTIONS = [
    "I can see two payments of 480.00 EUR on 2 May.",
    "Please hold while I check.",
    "Please let me know if that helps.",
    "Let me check that for you.",
    "Check-in is at 3pm.",
    "Check in time is between 2:00 PM and 10:00 PM.",
    "Thank you for using our system.",
    "Please wait while I look into it.",
    "Go ahead and describe the problem.",
    "You should check out Citizen Kane.",
    "Contact number is 01223 812660.",
    "Please confirm: a table for 2 at 6 pm.",
    "I will try to find it.",
    "Duplicate charges are usually reversed within 5 business days.",
]


@pytest.mark.parametrize("sentence", INSTRUCTIONS)
def test_instruction_detected(sentence: str) -> None:
    assert is_instruction(sentence) is True


@pytest.mark.parametrize("sentence", NOT_INSTRUCTIONS)
def test_non_instruction_ignored(sentence: str) -> None:
    assert is_instruction(sentence) is False


def test_steps_from_assistant_turns_only() -> None:
    conversation = Conversation.model_validate({"id": "c1", "turns": [
        {"role": "customer", "text": "Try harder. The app crashes."},
        {"role": "assistant", "text": "Sorry about that. Please restart the app.\n"
                                      "1. Open Settings\n2. Tap Storage"},
        {"role": "customer", "text": "Still broken."},
        {"role": "assistant", "text": "Please  restart the app. Then clear your cache."},
    ]})

    steps = [(step.turn_index, step.text) for step in suggested_steps(conversation)]

    assert steps == [(1, "Please restart the app."), (1, "1. Open Settings"),
                     (1, "2. Tap Storage"), (3, "Then clear your cache.")]


def test_step_span_points_at_text() -> None:
    conversation = Conversation.model_validate({"id": "c1", "turns": [
        {"role": "customer", "text": "Help"},
        {"role": "assistant", "text": "I see. Go to Settings and tap Reset."},
    ]})

    step = suggested_steps(conversation)[0]

    assert conversation.turns[1].text[step.span[0] : step.span[1]] == step.text


def test_uss_mwoz_suggested_step(uss: dict[str, Conversation]) -> None:
    steps = [step.text for step in suggested_steps(uss["uss-mwoz-0469"])]

    assert "Try requesting a NEW time or day." in steps


def test_example_has_no_suggested_steps(example: Conversation) -> None:
    assert suggested_steps(example) == []
