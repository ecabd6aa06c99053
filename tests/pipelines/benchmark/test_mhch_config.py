"""Tests of the `encoder.kind` choice in the training configuration."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipelines.train.config import DEFAULT_CONFIG, load_train_config
from pipelines.train.tokens import settings_from_config


def _config_with_encoder(tmp_path: Path, encoder: dict[str, object]) -> Path:
    data = yaml.safe_load(DEFAULT_CONFIG.read_text(encoding="utf-8"))
    data["encoder"] = {**data["encoder"], **encoder}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_default_config_uses_minilm() -> None:
    config = load_train_config()

    assert config.encoder.kind == "minilm"
    assert config.encoder.tokens.ngram_max == 2


def test_tokens_kind_is_read_with_settings(tmp_path: Path) -> None:
    path = _config_with_encoder(tmp_path, {"kind": "tokens", "tokens": {
        "analyzer": "char_wb", "ngram_min": 2, "ngram_max": 4, "min_df": 1}})
    config = load_train_config(path)
    settings = settings_from_config(config.encoder.tokens)

    assert config.encoder.kind == "tokens"
    assert settings.analyzer == "char_wb"
    assert settings.ngram_range == (2, 4)
    assert settings.min_df == 1


def test_unknown_kind_names_key_and_value(tmp_path: Path) -> None:
    path = _config_with_encoder(tmp_path, {"kind": "bert"})

    with pytest.raises(ValueError, match=r"key 'encoder\.kind'.*'minilm' or 'tokens'.*'bert'"):
        load_train_config(path)


def test_unknown_analyzer_is_rejected(tmp_path: Path) -> None:
    path = _config_with_encoder(tmp_path, {"tokens": {"analyzer": "char"}})

    with pytest.raises(ValueError, match=r"key 'encoder\.tokens\.analyzer'"):
        load_train_config(path)


def test_reversed_ngram_range_is_rejected(tmp_path: Path) -> None:
    path = _config_with_encoder(tmp_path, {"tokens": {"ngram_min": 3, "ngram_max": 1}})

    with pytest.raises(ValueError, match="ngram_min 3 is greater than ngram_max 1"):
        load_train_config(path)


def test_invalid_token_pattern_is_rejected(tmp_path: Path) -> None:
    path = _config_with_encoder(tmp_path, {"tokens": {"token_pattern": "(unclosed"}})

    with pytest.raises(ValueError, match="not a valid regular expression"):
        load_train_config(path)


def test_checked_in_tokens_config_trains_the_token_encoder() -> None:
    config = load_train_config(DEFAULT_CONFIG.parent / "train-tokens.yaml")

    assert config.encoder.kind == "tokens"
    assert config.encoder.tokens.projection_dimension == 384


def test_tokens_projection_width_is_checked(tmp_path: Path) -> None:
    path = _config_with_encoder(tmp_path, {"kind": "tokens",
                                           "tokens": {"projection_dimension": 100}})

    with pytest.raises(ValueError, match=r"invalid: encoder\.tokens\.projection_dimension is "
                                         r"100; with encoder\.kind tokens it must be 384"):
        load_train_config(path)
