"""Customer-facing messages of a handoff, rendered from templates per tier and reason.

Three messages are sent to the customer: an escalation notice when the handoff is decided,
a wait update with the expected wait in words, and the introduction of the agent who joins.
Templates live in `policies/messages.yaml` and use `str.format` placeholders from a fixed set,
checked when the file is loaded so that a typo fails at start-up and not in a live chat.
"""

from __future__ import annotations

import logging
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from serving.errors import HandoffConfigError
from serving.tiers import Reason, Tier
from serving.yaml_loader import UniqueKeyLoader

logger = logging.getLogger(__name__)

DEFAULT_MESSAGES_PATH = Path(__file__).resolve().parent / "policies" / "messages.yaml"

MESSAGE_KEYS: tuple[str, ...] = ("escalation_notice", "wait_update", "agent_introduction")
ALLOWED_PLACEHOLDERS: frozenset[str] = frozenset({"customer_name", "agent_name", "wait"})
FALLBACK_KEYS: tuple[str, ...] = ("customer_name", "agent_name")
HANDOFF_TIERS: tuple[Tier, ...] = (Tier.IMMEDIATE, Tier.RAPID, Tier.SCHEDULED)
DEFAULT_ENTRY = "default"
SUPPORTED_VERSION = 1
# Chat widgets show a few lines at most; a longer template is almost certainly a paste error.
MAX_TEMPLATE_CHARS = 600

_FORMATTER = string.Formatter()


class CustomerMessages(BaseModel):
    """The three messages shown to the customer during a handoff."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    escalation_notice: str
    wait_update: str
    agent_introduction: str


@dataclass(frozen=True)
class MessageTemplates:
    """Validated templates: per tier a default entry and reason overrides, plus fallbacks.

    A message is looked up in `tiers[tier][reason]`, then `reasons[reason]`, then
    `tiers[tier]["default"]`, and the first entry that has the message key wins.
    """

    source: str
    fallbacks: dict[str, str]
    reasons: dict[Reason, dict[str, str]]
    tiers: dict[Tier, dict[str, dict[str, str]]]

    def template(self, tier: Tier, reason: Reason | None, key: str) -> str:
        """Return the template used for `key` at this tier and reason."""
        tier_entries = self.tiers[tier]
        if reason is not None:
            for entry in (tier_entries.get(reason.value), self.reasons.get(reason)):
                if entry is not None and key in entry:
                    return entry[key]
        return tier_entries[DEFAULT_ENTRY][key]


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def customer_messages(
    tier: Tier,
    reason: Reason | None,
    *,
    wait_seconds: float | None,
    agent_name: str | None,
    customer_name: str | None,
    templates: MessageTemplates | None = None,
) -> CustomerMessages:
    """Render the escalation notice, wait update and agent introduction for one handoff.

    Without `wait_seconds` the tier's SLA is used as the estimate, because that is the wait
    the service commits to. A missing or blank name is replaced by the fallback text from
    the templates file. `templates` defaults to the packaged `policies/messages.yaml`.
    """
    if tier is Tier.NONE:
        raise ValueError("tier 'none' means no handoff is due, so there are no customer "
                         "messages; pass immediate, rapid or scheduled")
    templates = templates if templates is not None else default_message_templates()

    wait = tier.sla_seconds if wait_seconds is None else wait_seconds
    values = {
        "customer_name": _name_or_fallback(customer_name, templates, "customer_name"),
        "agent_name": _name_or_fallback(agent_name, templates, "agent_name"),
        "wait": describe_wait(float(wait if wait is not None else 0)),
    }
    rendered = {key: templates.template(tier, reason, key).format(**values)
                for key in MESSAGE_KEYS}
    return CustomerMessages(**rendered)


def _name_or_fallback(name: str | None, templates: MessageTemplates, key: str) -> str:
    if name is None or not name.strip():
        return templates.fallbacks[key]
    return name.strip()


def describe_wait(seconds: float) -> str:
    """Return a wait in words rounded to a unit a person would use, e.g. "about 2 minutes".

    Under a minute gives "less than a minute". Waits up to 15 minutes round to the minute,
    up to an hour to 5 minutes, up to a day to the hour, and longer ones to the day. Halves
    round up.
    """
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"wait of {seconds} seconds is invalid; pass a finite number >= 0")
    if seconds < 60:
        return "less than a minute"

    minutes = seconds / 60
    if minutes < 14.5:
        return _about(_round_half_up(minutes), "minute")
    if minutes < 57.5:
        return _about(5 * _round_half_up(minutes / 5), "minute")
    hours = minutes / 60
    if hours < 23.5:
        return _about(max(1, _round_half_up(hours)), "hour")
    return _about(_round_half_up(hours / 24), "day")


def _round_half_up(value: float) -> int:
    return math.floor(value + 0.5)


def _about(count: int, unit: str) -> str:
    return f"about {count} {unit}" + ("" if count == 1 else "s")


# ---------------------------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def default_message_templates() -> MessageTemplates:
    """Return the packaged templates, loaded and validated once per process."""
    return load_message_templates(DEFAULT_MESSAGES_PATH)


def load_message_templates(path: str | Path) -> MessageTemplates:
    """Read and validate a message templates YAML file.

    Raises HandoffConfigError naming the file and the key path of the first invalid entry.
    """
    source = f"message templates file {path}"
    data = read_policy_yaml(Path(path), source)
    templates = message_templates_from_dict(data, source)
    logger.info("loaded customer message templates from %s", path)
    return templates


def message_templates_from_dict(data: Any, source: str = "message templates") -> MessageTemplates:
    """Validate decoded message templates; `source` prefixes every error message."""
    root = _mapping(data, "(top level)", source, required={"version", "fallbacks", "tiers"},
                    allowed={"version", "fallbacks", "tiers", "reasons"})
    if root["version"] != SUPPORTED_VERSION:
        raise HandoffConfigError(f"{source}: key 'version' is {root['version']!r}; this code "
                                 f"reads version {SUPPORTED_VERSION}")

    fallbacks = _fallbacks(root["fallbacks"], source)
    reasons = _reason_entries(root.get("reasons") or {}, source)
    tiers = _tier_entries(root["tiers"], source)
    return MessageTemplates(source=source, fallbacks=fallbacks, reasons=reasons, tiers=tiers)


def _fallbacks(data: Any, source: str) -> dict[str, str]:
    fallbacks = _mapping(data, "fallbacks", source, required=set(FALLBACK_KEYS),
                         allowed=set(FALLBACK_KEYS))
    for key, value in fallbacks.items():
        if not isinstance(value, str) or not value.strip():
            raise HandoffConfigError(f"{source}: key 'fallbacks.{key}' is {value!r}; it must "
                                     "be a non-empty string")
    return dict(fallbacks)


def _reason_entries(data: Any, source: str) -> dict[Reason, dict[str, str]]:
    entries = _mapping(data, "reasons", source, required=set(),
                       allowed={reason.value for reason in Reason})
    return {Reason(name): _message_entry(entry, f"reasons.{name}", source, complete=False)
            for name, entry in entries.items()}


def _tier_entries(data: Any, source: str) -> dict[Tier, dict[str, dict[str, str]]]:
    names = {tier.value for tier in HANDOFF_TIERS}
    tiers = _mapping(data, "tiers", source, required=names, allowed=names)
    result: dict[Tier, dict[str, dict[str, str]]] = {}
    for tier_name, tier_data in tiers.items():
        path = f"tiers.{tier_name}"
        entries = _mapping(tier_data, path, source, required={DEFAULT_ENTRY},
                           allowed={DEFAULT_ENTRY} | {reason.value for reason in Reason})
        result[Tier(tier_name)] = {
            name: _message_entry(entry, f"{path}.{name}", source,
                                 complete=name == DEFAULT_ENTRY)
            for name, entry in entries.items()
        }
    return result


def _message_entry(data: Any, path: str, source: str, *, complete: bool) -> dict[str, str]:
    required = set(MESSAGE_KEYS) if complete else set()
    entry = _mapping(data, path, source, required=required, allowed=set(MESSAGE_KEYS))
    for key, template in entry.items():
        check_template(template, f"{path}.{key}", source)
    return dict(entry)


def check_template(template: Any, key_path: str, source: str = "message templates") -> None:
    """Raise HandoffConfigError unless `template` is a string whose placeholders are allowed.

    Placeholders are `str.format` fields named after ALLOWED_PLACEHOLDERS, with no
    conversion, format spec, attribute or index; literal braces are written "{{" and "}}".
    """
    where = f"{source}: template '{key_path}'"
    if not isinstance(template, str) or not template.strip():
        raise HandoffConfigError(f"{where} is {template!r}; it must be a non-empty string")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise HandoffConfigError(f"{where} has {len(template)} characters; the maximum is "
                                 f"{MAX_TEMPLATE_CHARS}")
    allowed = ", ".join("{" + name + "}" for name in sorted(ALLOWED_PLACEHOLDERS))
    try:
        fields = [(name, spec, conversion)
                  for _, name, spec, conversion in _FORMATTER.parse(template)
                  if name is not None]
    except ValueError as error:
        raise HandoffConfigError(f"{where} is not a valid format string ({error}); write "
                                 "literal braces as '{{' and '}}'") from None
    for name, spec, conversion in fields:
        if name not in ALLOWED_PLACEHOLDERS:
            placeholder = "{" + name + "}"
            raise HandoffConfigError(f"{where} uses the unknown placeholder {placeholder}; allowed "
                                     f"placeholders: {allowed}")
        if spec or conversion:
            raise HandoffConfigError(f"{where} gives placeholder {{{name}}} a conversion or "
                                     f"format spec; write it plainly as {{{name}}}")


def _mapping(
    data: Any, path: str, source: str, *, required: set[str], allowed: set[str]
) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise HandoffConfigError(f"{source}: key '{path}' is a {type(data).__name__}; it must "
                                 f"be a mapping with the keys {', '.join(sorted(allowed))}")
    prefix = "" if path == "(top level)" else f"{path}."
    for key in data:
        if key not in allowed:
            raise HandoffConfigError(f"{source}: unknown key '{prefix}{key}'; allowed keys "
                                     f"here: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(data))
    if missing:
        raise HandoffConfigError(f"{source}: key '{prefix}{missing[0]}' is missing; see "
                                 f"{DEFAULT_MESSAGES_PATH} for an example")
    return data


# ---------------------------------------------------------------------------------------------
# YAML
# ---------------------------------------------------------------------------------------------


def read_policy_yaml(path: Path, source: str) -> Any:
    """Read a YAML policy file with unique keys; raises HandoffConfigError naming `source`."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HandoffConfigError(f"{source}: file not found") from None
    except UnicodeDecodeError as error:
        raise HandoffConfigError(f"{source}: not UTF-8 text ({error.reason} at byte "
                                 f"{error.start}); save the file as UTF-8") from None
    except OSError as error:
        raise HandoffConfigError(f"{source}: cannot be read: {error.strerror}") from None

    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise HandoffConfigError(f"{source}: invalid YAML: {problem}{where}") from None
    if data is None:
        raise HandoffConfigError(f"{source}: file is empty")
    return data
