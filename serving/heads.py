"""ONNX heads: the scikit-learn classifiers of training, run with onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from serving.errors import BundleError

# skl2onnx names the outputs of a classifier exported with zipmap=False like this.
PROBABILITY_OUTPUT = "probabilities"


class Head:
    """One classifier head: features in, class probabilities out."""

    def __init__(self, path: Path, *, intra_op_threads: int | None = None) -> None:
        if not path.is_file():
            raise BundleError(f"head model {path} not found; run `escalation train` to build "
                              "a bundle")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if intra_op_threads is not None:
            options.intra_op_num_threads = intra_op_threads
        self.path = path
        self.session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.n_features = int(inputs[0].shape[1])
        outputs = {output.name: output for output in self.session.get_outputs()}
        if PROBABILITY_OUTPUT not in outputs:
            raise BundleError(f"head model {path} has outputs {sorted(outputs)}, expected "
                              f"{PROBABILITY_OUTPUT!r}; export it with zipmap=False")
        self.n_classes = int(outputs[PROBABILITY_OUTPUT].shape[1])

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Return the [n_samples, n_classes] probabilities for a [n_samples, n_features] array."""
        matrix = np.ascontiguousarray(features, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise ValueError(f"head {self.path.name} expects [n, {self.n_features}] features, "
                             f"got shape {list(matrix.shape)}")
        if matrix.shape[0] == 0:
            return np.zeros((0, self.n_classes), dtype=np.float32)
        (probabilities,) = self.session.run([PROBABILITY_OUTPUT], {self.input_name: matrix})
        return np.asarray(probabilities, dtype=np.float32)
