"""Text encoder of a bundle: the MiniLM ONNX graph or the language-agnostic token encoder.

Everything downstream of the encoder (the heads, the embedding features, reasons and similar
cases) reads dense L2-normalised rows of `dimension` columns, so either kind serves a bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from serving.bundle import EncoderSpec
from serving.encoder import Encoder
from serving.errors import BundleError
from serving.token_encoder import SETTINGS_FILE, load_token_encoder


class TextEncoder(Protocol):
    """Interface of a bundle encoder: texts in, float32 rows of shape [n, dimension] out."""

    @property
    def dimension(self) -> int:
        """Width of each encoded row."""
        ...

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode `texts` in input order."""
        ...


def load_text_encoder(
    bundle_dir: Path,
    spec: EncoderSpec,
    *,
    batch_size: int | None = None,
    intra_op_threads: int | None = None,
) -> TextEncoder:
    """Load the encoder a bundle's manifest describes.

    `batch_size` overrides the manifest's for the MiniLM graph (benchmarks batch on purpose);
    the token encoder encodes each text alone, so its output never depends on the batch.
    """
    if spec.kind == "minilm":
        if spec.tokenizer is None or spec.max_length is None:
            raise BundleError(f"bundle {bundle_dir}: the minilm encoder lacks its tokenizer or "
                              "max_length in the manifest; retrain the bundle")
        return Encoder(bundle_dir / spec.file, bundle_dir / spec.tokenizer,
                       max_length=spec.max_length,
                       batch_size=batch_size if batch_size is not None else spec.batch_size,
                       intra_op_threads=intra_op_threads)

    if spec.file != SETTINGS_FILE:
        raise BundleError(f"bundle {bundle_dir}: the tokens encoder file is {spec.file!r}, "
                          f"expected {SETTINGS_FILE!r}; retrain the bundle")
    encoder = load_token_encoder(bundle_dir, expected_arrays=spec.arrays)
    if encoder.dimension != spec.dimension:
        raise BundleError(f"bundle {bundle_dir}: the token encoder has {encoder.dimension} "
                          f"columns but the manifest says {spec.dimension}; retrain the bundle")
    return encoder
