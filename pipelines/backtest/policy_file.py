"""Write a copy of a rule policy YAML with new probability thresholds, keeping its comments."""

from __future__ import annotations

import logging
import textwrap
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import yaml

from pipelines.atomic import atomic_output
from serving.rules import DEFAULT_POLICY_PATH, policy_from_dict
from serving.yaml_loader import UniqueKeyLoader

logger = logging.getLogger(__name__)

# Header lines are wrapped to this width, because the packaged policy keeps lines under 100.
COMMENT_WIDTH = 96


def tuned_policy_text(source_text: str, thresholds: dict[str, float],
                      header: Sequence[str], *, source: str) -> str:
    """Return the policy text with `thresholds` set and `header` as leading comment lines.

    When the policy has a `thresholds` mapping with both keys, only their values are
    replaced, so every comment and the layout stay. Otherwise the policy is written out again
    from its parsed data, which drops its comments. The result is validated with the policy
    loader's own rules; PolicyError names any problem.
    """
    body = _replace_in_place(source_text, thresholds)
    if body is None:
        logger.info("policy %s has no thresholds block with both keys; rewriting it without "
                    "its comments", source)
        data = yaml.load(source_text, Loader=UniqueKeyLoader)
        data["thresholds"] = dict(thresholds)
        body = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)

    comments = "".join(f"# {part}\n" for line in header
                       for part in textwrap.wrap(line, COMMENT_WIDTH, break_long_words=False))
    text = comments + "\n" + body
    policy_from_dict(yaml.load(text, Loader=UniqueKeyLoader), source=f"tuned copy of {source}")
    return text


def read_policy_source(path: Path | None) -> tuple[str, str]:
    """Return the text of a policy file (None: the packaged default) and a name for reports."""
    resolved = path if path is not None else DEFAULT_POLICY_PATH
    return resolved.read_text(encoding="utf-8"), str(resolved)


def write_text_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, so a reader never sees half a file."""
    with atomic_output(path) as temporary:
        temporary.write_text(text, encoding="utf-8")


def format_threshold(value: float) -> str:
    """Return a float as a YAML 1.1 float literal that reads back as exactly `value`.

    PyYAML reads `1e-05` as a string, so exponents are spelled out in positional notation.
    """
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"


def _replace_in_place(source_text: str, thresholds: dict[str, float]) -> str | None:
    root = yaml.compose(source_text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return None
    block = next((value for key, value in root.value
                  if isinstance(key, yaml.ScalarNode) and key.value == "thresholds"), None)
    if not isinstance(block, yaml.MappingNode):
        return None
    scalars = {key.value: value for key, value in block.value
               if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode)}
    if any(name not in scalars for name in thresholds):
        return None

    text = source_text
    # Replace from the end of the file backwards, so earlier offsets stay valid.
    spans = sorted(((scalars[name].start_mark.index, scalars[name].end_mark.index, value)
                    for name, value in thresholds.items()), reverse=True)
    for start, end, value in spans:
        text = text[:start] + format_threshold(value) + text[end:]
    return text
