"""Export fitted scikit-learn heads to ONNX and prove the export gives the same probabilities."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType

from serving.errors import ExportParityError
from serving.heads import Head

logger = logging.getLogger(__name__)

INPUT_NAME = "features"
# Probabilities from onnxruntime must match scikit-learn to this absolute difference.
PARITY_TOLERANCE = 1e-4
TARGET_OPSET = 17


def export_head(
    estimator: Any, n_features: int, path: Path, check_rows: np.ndarray, *, name: str
) -> float:
    """Convert `estimator` to ONNX at `path` and return the max probability difference.

    Raises ExportParityError when onnxruntime's probabilities on `check_rows` (held-out rows)
    differ from scikit-learn's by more than PARITY_TOLERANCE; the file is then removed.
    """
    onnx_model = convert_sklearn(
        estimator,
        name=name,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        target_opset={"": TARGET_OPSET, "ai.onnx.ml": 3},
        options={id(estimator): {"zipmap": False}},
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_model.SerializeToString())

    rows = np.ascontiguousarray(check_rows, dtype=np.float32)
    expected = estimator.predict_proba(rows)
    actual = Head(path).predict_proba(rows)
    difference = float(np.max(np.abs(expected - actual))) if len(rows) else 0.0
    if difference > PARITY_TOLERANCE:
        worst = int(np.unravel_index(np.argmax(np.abs(expected - actual)), expected.shape)[0])
        path.unlink()
        raise ExportParityError(
            f"ONNX export of head {name!r} differs from scikit-learn by {difference:.2e} "
            f"(row {worst} of the held-out check rows; allowed {PARITY_TOLERANCE:.0e}); the "
            "estimator contains a step skl2onnx converts wrongly, keep scalers outside "
            "CalibratedClassifierCV and use sigmoid calibration"
        )
    logger.info("exported head %s to %s: max |p_onnx - p_sklearn| = %.2e on %d rows",
                name, path.name, difference, len(rows))
    return difference
