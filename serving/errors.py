"""Exceptions raised by escalation-scoring.

    EscalationError
    ├── SchemaError                 a conversation or file does not match the schema
    │   ├── ConversationValidationError
    │   └── ConversationFileError   every bad line of a JSON Lines file, with line numbers
    ├── PolicyError                 the rule policy YAML is invalid
    │   ├── ReasonConfigError       the reason descriptions YAML is invalid
    │   └── HandoffConfigError      the customer message or approach YAML is invalid
    ├── BundleError                 a model bundle cannot be served
    │   ├── BundleIntegrityError    a file is missing or its sha256 differs from the manifest
    │   ├── FeatureSchemaError      the feature names or order differ from this code's
    │   ├── TokenModelError         a token model folder's manifest is missing or malformed
    │   └── SimilarCaseIndexError   the similar-case files are missing, malformed or disagree
    ├── ExportParityError           an exported ONNX model disagrees with its source model
    ├── DatasetError                a raw corpus is missing or malformed
    ├── StoreError                  the prediction log database cannot be opened, migrated or used
    ├── WebhookConfigError          a webhook delivery setting is invalid
    ├── SignatureError              a webhook signature is malformed, expired or does not match
    ├── SettingsError               a service setting is invalid
    ├── ConversationStateError      a live conversation cannot take the request
    │   ├── LimitExceeded           a request exceeds a configured limit
    │   └── ConversationNotFound    no state and no stored turns for the id
    ├── ReportError                 a model report cannot be built from the bundle and data
    ├── RosterError                 a roster of teams and agents is invalid
    └── RoutingError                a routing request cannot be carried out
        ├── RoutingLookupError      the conversation or agent id is unknown to the router
        └── EscalationLimitError    the conversation is already at the top level, L4
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


class EscalationError(Exception):
    """Base class of every error this package raises on purpose."""


class SchemaError(EscalationError, ValueError):
    """Input does not match the conversation schema."""


class ConversationValidationError(SchemaError):
    """One conversation failed validation; `problems` lists every violation found."""

    def __init__(self, problems: Sequence[Any]) -> None:
        self.problems = list(problems)
        super().__init__(_join_problems(self.problems))


class ConversationFileError(SchemaError):
    """A JSON Lines file has bad lines; `problems` lists each with its line number."""

    # A file of a million bad lines should still give a readable message.
    MAX_LISTED = 50

    def __init__(self, path: Path, problems: Sequence[Any]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = sorted({problem.line_number for problem in self.problems})
        header = f"{path}: {len(lines)} invalid line(s), {len(self.problems)} problem(s); fix " \
            "them and run again, nothing was loaded"
        listed = _join_problems(self.problems[: self.MAX_LISTED])
        more = len(self.problems) - self.MAX_LISTED
        tail = f"\n... and {more} more" if more > 0 else ""
        super().__init__(f"{header}\n{listed}{tail}")


def _join_problems(problems: Sequence[Any]) -> str:
    return "\n".join(str(problem) for problem in problems)


class PolicyError(EscalationError, ValueError):
    """The rule policy is invalid; the message names the key and the value."""


class BundleError(EscalationError):
    """A model bundle is missing, corrupt or incompatible with this code."""


class BundleIntegrityError(BundleError):
    """A bundle file is missing or its sha256 differs from the manifest."""


class FeatureSchemaError(BundleError):
    """The bundle was trained on other features than this code computes."""


class ExportParityError(EscalationError):
    """An exported ONNX model gives other outputs than the model it was exported from."""


class DatasetError(EscalationError, ValueError):
    """A raw corpus is missing or does not have the documented format."""


class SettingsError(EscalationError, ValueError):
    """A service setting is invalid; the message names the environment variable."""


class ConversationStateError(EscalationError):
    """A live conversation cannot take the request in its current state."""


class ReasonConfigError(PolicyError):
    """The reason descriptions file is invalid; the message names the key and the value."""


class RosterError(EscalationError, ValueError):
    """The roster is invalid; `problems` lists each bad key path with its value."""

    def __init__(self, problems: str | Sequence[str]) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class RoutingError(EscalationError):
    """The router cannot carry out a request in its current state."""


class RoutingLookupError(RoutingError, LookupError):
    """No conversation or agent with the given id is known to the router."""


class EscalationLimitError(RoutingError):
    """A conversation at level L4 cannot be escalated further."""


class StoreError(EscalationError):
    """The prediction log database cannot be opened, migrated, read or written."""


class WebhookConfigError(EscalationError, ValueError):
    """A webhook delivery setting is invalid; the message names the setting and the value."""


class SignatureError(EscalationError, ValueError):
    """A webhook signature header is malformed, too old, or does not match the body."""


class HandoffConfigError(PolicyError):
    """The message templates or the approaches YAML is invalid; the message names the key."""


class SimilarCaseIndexError(BundleError):
    """The similar-case vector and case files are missing, malformed or do not agree."""


class LimitExceeded(ConversationStateError):
    """A request exceeds a configured limit; the message names the limit."""


class ConversationNotFound(ConversationStateError):
    """No state and no stored turns exist for the conversation id."""


class ReportError(EscalationError, ValueError):
    """A model report cannot be built: the data has no labels or the output is not writable."""


class TokenModelError(BundleError):
    """A token model folder has no manifest, or its manifest is malformed or of another kind."""
