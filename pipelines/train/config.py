"""Training configuration, read from YAML and validated before any work starts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from serving.features import EMBEDDING_DIMENSION
from serving.token_encoder import DEFAULT_TOKEN_PATTERN

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "train.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenEncoderConfig(_Section):
    """TF-IDF n-gram encoder for texts in any language or of opaque token ids.

    `projection_dimension` is the number of TruncatedSVD components fitted on the training
    texts; `escalation train` needs 384, the embedding width of the escalation features.
    """

    analyzer: Literal["word", "char_wb"] = "word"
    ngram_min: int = Field(default=1, ge=1, le=10)
    ngram_max: int = Field(default=2, ge=1, le=10)
    min_df: int = Field(default=2, ge=1)
    max_features: int | None = Field(default=None, gt=0)
    sublinear_tf: bool = True
    lowercase: bool = True
    token_pattern: str = DEFAULT_TOKEN_PATTERN
    projection_dimension: int = Field(default=EMBEDDING_DIMENSION, ge=0)

    @model_validator(mode="after")
    def _check_ngram_range(self) -> TokenEncoderConfig:
        if self.ngram_min > self.ngram_max:
            raise ValueError(f"ngram_min {self.ngram_min} is greater than ngram_max "
                             f"{self.ngram_max}; use ngram_min <= ngram_max")
        try:
            re.compile(self.token_pattern)
        except re.error as error:
            raise ValueError(f"token_pattern {self.token_pattern!r} is not a valid regular "
                             f"expression ({error})") from None
        return self


class EncoderConfig(_Section):
    """Text encoder that the heads are trained on and served with.

    `kind` minilm is the English sentence encoder all-MiniLM-L6-v2, exported to ONNX in the
    `variant` int8 or fp32. `kind` tokens is the language-agnostic TF-IDF encoder set in
    `tokens`, for other languages and for corpora of token ids.
    """

    kind: Literal["minilm", "tokens"] = "minilm"
    variant: str = Field(default="int8", pattern="^(int8|fp32)$")
    max_length: int = Field(default=256, gt=0, le=512)
    tokens: TokenEncoderConfig = TokenEncoderConfig()


class HeadConfig(_Section):
    """Regularisation grid and data cap of a per-message head."""

    c_grid: list[float] = Field(min_length=1)
    calibration_folds: int = Field(default=3, ge=2)
    max_train_examples: int = Field(default=0, ge=0)


class EscalationConfig(_Section):
    """Label definition, grid and threshold targets of the escalation head."""

    horizon: int = Field(default=2, ge=0)
    dissatisfied_rating: int = Field(default=2, ge=1, le=4)
    c_grid: list[float] = Field(min_length=1)
    calibration_folds: int = Field(default=5, ge=2)
    prepare_recall: float = Field(default=0.8, gt=0.0, le=1.0)
    max_conversation_alert_rate: float = Field(default=0.2, gt=0.0, le=1.0)
    splits: str = "uss"
    max_train_conversations: int = Field(default=0, ge=0)


class MlflowConfig(_Section):
    """Experiment and registered model names."""

    experiment: str = "escalation-scoring"
    registered_model: str = "escalation-scoring"


class TrainConfig(_Section):
    """Everything `escalation train` needs besides the data."""

    seed: int = 13
    encoder: EncoderConfig = EncoderConfig()
    sentiment: HeadConfig
    frustration: HeadConfig
    escalation: EscalationConfig
    mlflow: MlflowConfig = MlflowConfig()

    @model_validator(mode="after")
    def _check_token_projection(self) -> TrainConfig:
        # The escalation features hold one column per embedding dimension, so the token
        # encoder must project onto exactly that many.
        projection = self.encoder.tokens.projection_dimension
        if self.encoder.kind == "tokens" and projection != EMBEDDING_DIMENSION:
            raise ValueError(f"encoder.tokens.projection_dimension is {projection}; with "
                             f"encoder.kind tokens it must be {EMBEDDING_DIMENSION}, the "
                             "embedding width of the escalation features")
        return self


def load_train_config(path: str | Path | None = None) -> TrainConfig:
    """Read and validate a training configuration; None reads the checked-in default."""
    path = Path(path) if path is not None else DEFAULT_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"training configuration {path} not found; pass an existing "
                                f"YAML file or leave --config out to use {DEFAULT_CONFIG}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"training configuration {path} is not valid YAML: {error}") from None
    try:
        return TrainConfig.model_validate(data or {})
    except ValidationError as error:
        problems = "; ".join(_describe_problem(detail)
                             for detail in error.errors(include_url=False))
        raise ValueError(f"training configuration {path} is invalid: {problems}") from None


def _describe_problem(detail: Any) -> str:
    # A check across sections has no key of its own, and its input is the whole file.
    if not detail["loc"]:
        return str(detail["msg"]).removeprefix("Value error, ")
    key = ".".join(str(part) for part in detail["loc"])
    return f"key '{key}': {detail['msg']} (got {detail.get('input')!r})"
