"""Offline training, export, evaluation and corpus adapters of escalation-scoring."""

# Importing serving sets the offline and telemetry switches before any library is loaded.
import serving  # noqa: F401
