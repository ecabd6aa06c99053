"""Training configuration, read from YAML and validated before any work starts."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "train.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderConfig(_Section):
    """Encoder variant that the heads are trained on and served with."""

    variant: str = Field(default="int8", pattern="^(int8|fp32)$")
    max_length: int = Field(default=256, gt=0, le=512)


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
        problems = "; ".join(
            f"key '{'.'.join(str(part) for part in detail['loc'])}': {detail['msg']} "
            f"(got {detail.get('input')!r})"
            for detail in error.errors(include_url=False)
        )
        raise ValueError(f"training configuration {path} is invalid: {problems}") from None
