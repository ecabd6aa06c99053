"""Evaluation plots logged with each training run: calibration and precision-recall curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Equal-width bins, as the expected calibration error in metrics.py uses.
CALIBRATION_BINS = 15


def plot_binary_head(
    y_true: np.ndarray, probability: np.ndarray, *, title: str, threshold: float, path: Path
) -> Path:
    """Draw the reliability diagram and the precision-recall curve of a binary head to PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    figure, (calibration, curve) = plt.subplots(1, 2, figsize=(10, 4.2))

    edges = np.linspace(0.0, 1.0, CALIBRATION_BINS + 1)
    bins = np.clip(np.digitize(probability, edges[1:-1]), 0, CALIBRATION_BINS - 1)
    filled = [index for index in range(CALIBRATION_BINS) if np.any(bins == index)]
    mean_probability = [probability[bins == index].mean() for index in filled]
    positive_rate = [y_true[bins == index].mean() for index in filled]
    calibration.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect")
    calibration.plot(mean_probability, positive_rate, marker="o", label="head")
    calibration.set_xlabel("mean predicted probability")
    calibration.set_ylabel("observed positive rate")
    calibration.set_title(f"{title}: calibration")
    calibration.legend()

    precision, recall, thresholds = precision_recall_curve(y_true, probability)
    curve.plot(recall, precision)
    chosen = int(np.searchsorted(thresholds, threshold))
    if chosen < len(thresholds):
        curve.scatter([recall[chosen]], [precision[chosen]], color="red",
                      label=f"threshold {threshold:.2f}")
        curve.legend()
    curve.set_xlabel("recall")
    curve.set_ylabel("precision")
    curve.set_title(f"{title}: precision-recall")

    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
