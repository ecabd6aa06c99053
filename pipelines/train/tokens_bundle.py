"""Train the token handoff model and write the folder `serving.token_model.TokenModel` loads."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.export.heads import export_head
from pipelines.train.tokens import TokenEncoderSettings, fit_token_encoder
from pipelines.train.tokens_head import FittedTokenHead, fit_token_head
from pipelines.train.tokens_table import TurnTable, turn_table
from serving.hashing import sha256_file
from serving.schema import Conversation
from serving.token_encoder import TokenEncoder
from serving.token_model import (
    HEAD_FILE,
    MANIFEST_FILE,
    TokenModelManifest,
    encoder_summary,
    write_manifest,
)

logger = logging.getLogger(__name__)

# Training rows on which the ONNX export must match scikit-learn; more rows only slow the export.
EXPORT_CHECK_ROWS = 200


@dataclass(frozen=True)
class TokenModelSettings:
    """Encoder and head settings of one token model."""

    encoder: TokenEncoderSettings = field(default_factory=TokenEncoderSettings)
    c: float = 3.0
    scaler: str = "none"
    calibration_folds: int = 3
    seed: int = 13


@dataclass(frozen=True)
class FittedTokenModel:
    """A fitted encoder and head, with the training rows they were fitted on."""

    encoder: TokenEncoder
    head: FittedTokenHead
    table: TurnTable
    settings: TokenModelSettings
    training_dialogues: int


def fit_token_model(conversations: Sequence[Conversation],
                    settings: TokenModelSettings) -> FittedTokenModel:
    """Fit the token encoder and the head on `conversations`, whose turns carry handoff labels.

    The head's threshold is chosen for max F1 on out-of-fold predictions of these dialogues.
    """
    if not conversations:
        raise ValueError("no training dialogues; the token model needs labelled conversations")
    encoder, _ = fit_token_encoder(
        [turn.text for conversation in conversations for turn in conversation.turns],
        settings.encoder, seed=settings.seed,
    )

    table = turn_table(conversations, encoder)
    head = fit_token_head(table.features, table.labels, table.conversation_ids, c=settings.c,
                          folds=settings.calibration_folds, seed=settings.seed,
                          scaler=settings.scaler)
    return FittedTokenModel(encoder, head, table, settings, len(conversations))


def save_token_model(fitted: FittedTokenModel, out_dir: Path, *,
                     threshold: float | None = None,
                     threshold_rule: str = "max F1 on out-of-fold training predictions") -> Path:
    """Write the encoder files, the ONNX head and the manifest into `out_dir`; return it.

    `threshold` replaces the head's fitted threshold when given, and `threshold_rule` records
    how it was chosen. Raises FileExistsError when `out_dir` already contains a manifest,
    because a half-overwritten folder would mix two models.
    """
    if (out_dir / MANIFEST_FILE).exists():
        raise FileExistsError(f"{out_dir} already contains a token model; pass a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    names = fitted.encoder.save(out_dir)
    n_features = len(fitted.table.feature_names)
    check_rows = fitted.table.features[:EXPORT_CHECK_ROWS].toarray()
    difference = export_head(fitted.head.estimator, n_features, out_dir / HEAD_FILE, check_rows,
                             name="token_handoff")
    names.append(HEAD_FILE)

    chosen = fitted.head.threshold if threshold is None else float(threshold)
    manifest = TokenModelManifest(
        feature_names=list(fitted.table.feature_names),
        threshold=chosen,
        files={name: sha256_file(out_dir / name) for name in names},
        encoder=encoder_summary(fitted.encoder),
        training=_training_details(fitted, difference, threshold_rule),
    )
    write_manifest(manifest, out_dir)
    logger.info("wrote token model %s: %d features, threshold %.4f, export difference %.2e",
                out_dir, n_features, chosen, difference)
    return out_dir


def train_token_model(conversations: Sequence[Conversation], out_dir: Path,
                      settings: TokenModelSettings) -> Path:
    """Fit a token model on labelled `conversations` and write its folder to `out_dir`."""
    return save_token_model(fit_token_model(conversations, settings), out_dir)


def _training_details(fitted: FittedTokenModel, export_difference: float,
                      threshold_rule: str) -> dict[str, Any]:
    settings = asdict(fitted.settings)
    settings["encoder"]["ngram_range"] = list(fitted.settings.encoder.ngram_range)
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "dialogues": fitted.training_dialogues,
        "turns": int(fitted.table.labels.shape[0]),
        "handoff_turns": int(np.sum(fitted.table.labels)),
        "settings": settings,
        "threshold_rule": threshold_rule,
        "fitted_threshold": fitted.head.threshold,
        "export_max_abs_difference": export_difference,
    }
