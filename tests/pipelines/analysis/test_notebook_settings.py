"""Tests of pipelines.analysis.notebook_settings: bundle and sample size from the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.analysis.notebook_settings import (
    BUNDLE_VARIABLE,
    SAMPLE_VARIABLE,
    notebook_bundle,
    notebook_sample_size,
    sample_items,
)
from serving.errors import BundleError
from tests.conftest import TrainedBundle


def test_bundle_from_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv(BUNDLE_VARIABLE, str(tmp_path))
    assert notebook_bundle(tmp_path / "unused") == tmp_path


def test_bundle_variable_without_manifest(monkeypatch: pytest.MonkeyPatch,
                                          tmp_path: Path) -> None:
    monkeypatch.setenv(BUNDLE_VARIABLE, str(tmp_path))
    with pytest.raises(ValueError, match=f"{BUNDLE_VARIABLE}=.* is not a bundle folder"):
        notebook_bundle()


def test_bundle_newest_when_unset(monkeypatch: pytest.MonkeyPatch,
                                  trained_bundle: TrainedBundle) -> None:
    monkeypatch.delenv(BUNDLE_VARIABLE, raising=False)
    assert notebook_bundle(trained_bundle.path.parent) == trained_bundle.path


def test_bundle_none_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(BUNDLE_VARIABLE, raising=False)
    with pytest.raises(BundleError, match="no model bundle found"):
        notebook_bundle(tmp_path)


def test_sample_size_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SAMPLE_VARIABLE, raising=False)
    assert notebook_sample_size(7) == 7


@pytest.mark.parametrize(("value", "expected"), [("25", 25), (" 0 ", 0)])
def test_sample_size_from_variable(monkeypatch: pytest.MonkeyPatch, value: str,
                                   expected: int) -> None:
    monkeypatch.setenv(SAMPLE_VARIABLE, value)
    assert notebook_sample_size(7) == expected


@pytest.mark.parametrize("value", ["-3", "ten", "2.5"])
def test_sample_size_rejects_invalid(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(SAMPLE_VARIABLE, value)
    with pytest.raises(ValueError, match=f"{SAMPLE_VARIABLE}='{value}' is invalid"):
        notebook_sample_size(7)


def test_sample_items_keeps_order_and_seed() -> None:
    items = list(range(100))
    first = sample_items(items, 10, seed=3)
    assert len(first) == 10
    assert first == sorted(first)
    assert sample_items(items, 10, seed=3) == first
    assert sample_items(items, 10, seed=4) != first


@pytest.mark.parametrize("size", [0, 100, 250])
def test_sample_items_all(size: int) -> None:
    assert sample_items(list(range(100)), size, seed=1) == list(range(100))


def test_sample_items_rejects_negative() -> None:
    with pytest.raises(ValueError, match="sample size is -1"):
        sample_items([1, 2], -1, seed=1)
