"""Negation-aware phrase matching over chat messages, used by the escalation rules.

Phrase syntax, as written in the policy YAML:

- Words are separated by spaces and match across any run of whitespace or hyphens, so
  "fed up" also matches "fed  up" and "fed-up".
- `a|b|c` in a word slot matches any one of the alternatives: "speak|talk to a manager".
- A slot ending in `?` is optional: "talk to a|an? human" matches "talk to human" too. Optional
  slots may not be first or last, because a phrase is anchored on word boundaries at both ends.
- A word ending in `*` matches any ending: "crash*" matches crash, crashes and crashed.
- An apostrophe matches ', ’, ‘, ʼ, ` or ´, or nothing, so "don't" also matches "dont".
- Matching is case-insensitive and on word boundaries: "api" does not match inside "rapid".

A match is negated when a negation cue ("not", "don't", "no need", ...) occurs among the few
tokens before it in the same clause, or a post-cue ("not needed", ...) among the few tokens
after it. Clauses end at . , ; : ! ? brackets, line breaks and words such as "but". A phrase
that contains a negation itself ("not working") is matched whole, so its own "not" never
negates it. Pseudo-cues ("can't get", "why can't") contain a negation word but express that
the customer wants the thing, so the cue words inside them are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

APOSTROPHES = "'’‘ʼ`´"

# Between the words of a phrase: whitespace (including non-breaking spaces) or hyphens.
_SEPARATOR = r"[\s\-]+"

_TOKEN = re.compile(rf"\w+(?:[{APOSTROPHES}]\w+)*")

_BREAK_PUNCTUATION = r"[.,;:!?()\[\]{}\n\r]"

# Negation scope is a few tokens wide, so looking further back than this many characters
# for a clause break never changes the result and keeps long messages cheap.
LOOKBACK_CHARS = 200

_NEVER = re.compile(r"(?!)")


@dataclass(frozen=True)
class KeywordHit:
    """One phrase occurrence: the policy entry that matched and where it sits in the text."""

    phrase: str
    start: int
    end: int
    text: str


def validate_phrase(phrase: str) -> str:
    """Raise ValueError unless `phrase` follows the phrase syntax; return it unchanged."""
    phrase_pattern(phrase)
    return phrase


def phrase_pattern(phrase: str) -> str:
    """Translate a policy phrase into a regular expression anchored on word boundaries."""
    slots = phrase.split()
    if not slots:
        raise ValueError("phrase is empty; write one or more words")

    optional = [slot.endswith("?") for slot in slots]
    if optional[0] or optional[-1]:
        raise ValueError(
            f"phrase {phrase!r}: an optional word (ending in '?') cannot be first or last; "
            "list the phrase once with and once without that word instead"
        )

    pieces: list[str] = []
    for index, slot in enumerate(slots):
        body = slot[:-1] if optional[index] else slot
        alternatives = "|".join(_word_pattern(word, phrase) for word in body.split("|"))
        group = f"(?:{alternatives})"
        if index == 0:
            pieces.append(group)
        elif optional[index]:
            pieces.append(f"(?:{_SEPARATOR}{group})?")
        else:
            pieces.append(f"{_SEPARATOR}{group}")
    return rf"(?<!\w){''.join(pieces)}(?!\w)"


def _word_pattern(word: str, phrase: str) -> str:
    if not word:
        raise ValueError(f"phrase {phrase!r}: empty alternative in a word slot; "
                         "write words separated by single '|' characters")
    if not any(character.isalnum() for character in word):
        raise ValueError(f"phrase {phrase!r}: word {word!r} has no letter or digit")

    parts: list[str] = []
    for position, character in enumerate(word):
        last = position == len(word) - 1
        if character in APOSTROPHES:
            parts.append(f"[{APOSTROPHES}]?")
        elif character == "*" and last:
            parts.append(r"\w*")
        elif character in "*?":
            raise ValueError(f"phrase {phrase!r}: {character!r} in {word!r} is allowed only at "
                             "the end of a word ('*' for any ending, '?' for an optional word)")
        else:
            parts.append(re.escape(character))
    return "".join(parts)


def compile_phrases(phrases: Iterable[str]) -> re.Pattern[str]:
    """Compile phrases into one case-insensitive alternation; never matches when empty."""
    patterns = [phrase_pattern(phrase) for phrase in phrases]
    if not patterns:
        return _NEVER
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


class NegationDetector:
    """Negation check for phrase matches: cues before and post-cues after, in one clause.

    NOTE: the check is lexical, without a parse. A cue further back than `window_tokens`
    tokens is missed ("I don't think I need a refund" fires), and a cue in the window that
    negates another word still counts.
    """

    def __init__(
        self,
        cues: Sequence[str],
        post_cues: Sequence[str],
        pseudo_cues: Sequence[str],
        clause_breaks: Sequence[str],
        window_tokens: int,
    ) -> None:
        if window_tokens < 1:
            raise ValueError(f"window_tokens is {window_tokens}; it must be at least 1")
        self._cues = compile_phrases(cues)
        self._post_cues = compile_phrases(post_cues)
        self._pseudo_cues = compile_phrases(pseudo_cues)
        break_words = compile_phrases(clause_breaks)
        break_alternatives = [_BREAK_PUNCTUATION]
        if break_words is not _NEVER:
            break_alternatives.append(break_words.pattern)
        self._breaks = re.compile("|".join(break_alternatives), re.IGNORECASE)
        self._window_tokens = window_tokens

    def is_negated(self, text: str, start: int, end: int) -> bool:
        """Return whether the match text[start:end] is negated within its clause."""
        return self._negated_before(text, start, end) or self._negated_after(text, end)

    def _negated_before(self, text: str, start: int, end: int) -> bool:
        clause_start = self._last_break_end(text, max(0, start - LOOKBACK_CHARS), start)

        # The scope runs to the end of the match because a pseudo-cue such as "can't get" may
        # end inside it ("I can't get a human" where the phrase is "get a human").
        scope = self._mask_pseudo_cues(text[clause_start:end])
        before = scope[: start - clause_start]

        tokens = list(_TOKEN.finditer(before))
        if not tokens:
            return False
        window_start = tokens[-min(self._window_tokens, len(tokens))].start()
        return self._cues.search(before, window_start) is not None

    def _negated_after(self, text: str, end: int) -> bool:
        clause_end = self._first_break_start(text, end, min(len(text), end + LOOKBACK_CHARS))
        after = text[end:clause_end]

        tokens = list(_TOKEN.finditer(after))
        if not tokens:
            return False
        window_end = tokens[min(self._window_tokens, len(tokens)) - 1].end()
        return self._post_cues.search(after, 0, window_end) is not None

    def _last_break_end(self, text: str, low: int, high: int) -> int:
        clause_start = low
        for found in self._breaks.finditer(text, low, high):
            clause_start = found.end()
        return clause_start

    def _first_break_start(self, text: str, low: int, high: int) -> int:
        found = self._breaks.search(text, low, high)
        return found.start() if found else high

    def _mask_pseudo_cues(self, scope: str) -> str:
        return self._pseudo_cues.sub(lambda found: " " * len(found.group()), scope)


class KeywordMatcher:
    """Matcher for the non-negated occurrences of a list of policy phrases in a text."""

    def __init__(self, phrases: Sequence[str], negation: NegationDetector | None = None) -> None:
        self._phrases = [(phrase, re.compile(phrase_pattern(phrase), re.IGNORECASE))
                         for phrase in phrases]
        self._any = compile_phrases(phrases)
        self._negation = negation

    def find(self, text: str) -> list[KeywordHit]:
        """Return the non-negated hits in text order.

        Overlapping hits are resolved leftmost-longest before negation is checked, so a
        negated long phrase ("talk to a human") also hides the shorter ones inside it
        ("a human"), which would otherwise escape the negation window.
        """
        if self._any.search(text) is None:
            return []

        hits = self._leftmost_longest(text)
        if self._negation is None:
            return hits
        negation = self._negation
        return [hit for hit in hits if not negation.is_negated(text, hit.start, hit.end)]

    def _leftmost_longest(self, text: str) -> list[KeywordHit]:
        candidates = [
            KeywordHit(phrase, found.start(), found.end(), found.group())
            for phrase, pattern in self._phrases
            for found in pattern.finditer(text)
            if found.end() > found.start()
        ]
        candidates.sort(key=lambda hit: (hit.start, hit.start - hit.end))

        selected: list[KeywordHit] = []
        covered_until = 0
        for hit in candidates:
            if hit.start >= covered_until:
                selected.append(hit)
                covered_until = hit.end
        return selected
