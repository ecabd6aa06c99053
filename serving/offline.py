"""Environment switches that keep every library used here offline and silent."""

from __future__ import annotations

import os

# onnxruntime 1.32 sends telemetry on Linux unless ORT_DISABLE_TELEMETRY is set, and DO_NOT_TRACK
# does not stop it. MLflow has its own switch, and the Hugging Face hub must not be asked for
# weights.
OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "ORT_DISABLE_TELEMETRY": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


def disable_telemetry() -> None:
    """Set the offline switches in this process before onnxruntime, MLflow or the hub load."""
    for key, value in OFFLINE_ENVIRONMENT.items():
        os.environ[key] = value
