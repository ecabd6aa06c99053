"""Tests of the all-MiniLM-L6-v2 ONNX export against sentence-transformers on real texts."""

from __future__ import annotations

import csv
import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling

from pipelines.export.encoder import (
    FP32_FILE,
    FP32_MIN_COSINE,
    INT8_FILE,
    INT8_MIN_COSINE,
    MODEL_NAME,
    PARITY_SENTENCES,
    TOKENIZER_FILE,
    EncoderExport,
    check_pipeline,
    cosine_rows,
    export_encoder,
    load_sentence_transformer,
    measure_parity,
)
from serving.encoder import Encoder
from serving.errors import ExportParityError
from serving.hashing import sha256_file

REPOSITORY = Path(__file__).resolve().parents[2]
GOEMOTIONS_DEV = REPOSITORY / "data" / "raw" / "goemotions" / "dev.tsv.gz"
GOEMOTIONS_COUNT = 200


@pytest.fixture(scope="session")
def encoder_export(tmp_path_factory: pytest.TempPathFactory) -> EncoderExport:
    """Export the real encoder (fp32 and int8) once per test session."""
    return export_encoder(tmp_path_factory.mktemp("encoder-export"))


@pytest.fixture(scope="module")
def sentence_model() -> SentenceTransformer:
    return load_sentence_transformer()


@pytest.fixture(scope="module")
def real_texts() -> list[str]:
    """The first 200 GoEmotions dev comments plus three texts longer than 256 tokens."""
    with gzip.open(GOEMOTIONS_DEV, "rt", encoding="utf-8", newline="") as stream:
        rows = itertools.islice(csv.reader(stream, delimiter="\t"), GOEMOTIONS_COUNT)
        comments = [row[0] for row in rows]
    long_texts = [
        " ".join(comments[0:40]),
        " ".join(comments[40:80]),
        " ".join(comments[80:120]) * 3,
    ]
    return comments + long_texts


@pytest.fixture(scope="module")
def expected_embeddings(sentence_model: SentenceTransformer, real_texts: list[str]) -> np.ndarray:
    return sentence_model.encode(real_texts, batch_size=32, convert_to_numpy=True,
                                 normalize_embeddings=True, show_progress_bar=False)


def _encoder(export: EncoderExport, variant: str) -> Encoder:
    path = export.fp32_path if variant == "fp32" else export.int8_path
    assert path is not None
    return Encoder(path, export.tokenizer_path, max_length=export.max_length)


def test_real_texts_include_texts_over_256_tokens(real_texts: list[str],
                                                  sentence_model: SentenceTransformer) -> None:
    token_counts = [len(ids) for ids in sentence_model.tokenizer(real_texts[-3:])["input_ids"]]

    assert min(token_counts) > 256


def test_export_writes_files(encoder_export: EncoderExport) -> None:
    names = {path.name for path in encoder_export.fp32_path.parent.iterdir()}

    assert {FP32_FILE, INT8_FILE, TOKENIZER_FILE} <= names


def test_export_sha256_matches_files(encoder_export: EncoderExport) -> None:
    folder = encoder_export.fp32_path.parent

    assert set(encoder_export.sha256) == {FP32_FILE, INT8_FILE, TOKENIZER_FILE}
    for name, digest in encoder_export.sha256.items():
        assert sha256_file(folder / name) == digest, name


def test_export_records_model_settings(encoder_export: EncoderExport) -> None:
    assert encoder_export.model_name == MODEL_NAME
    assert encoder_export.embedding_dim == 384
    assert encoder_export.max_length == 256
    assert encoder_export.opset == 17
    assert encoder_export.parity_sentence_count == len(PARITY_SENTENCES)


def test_export_records_parity_within_thresholds(encoder_export: EncoderExport) -> None:
    assert encoder_export.fp32_min_cosine >= FP32_MIN_COSINE
    assert encoder_export.int8_min_cosine is not None
    assert encoder_export.int8_min_cosine >= INT8_MIN_COSINE
    assert encoder_export.int8_mean_cosine is not None
    assert encoder_export.int8_mean_cosine >= encoder_export.int8_min_cosine


def test_fp32_matches_sentence_transformers_on_goemotions(
    encoder_export: EncoderExport, real_texts: list[str], expected_embeddings: np.ndarray
) -> None:
    actual = _encoder(encoder_export, "fp32").encode(real_texts)

    cosines = cosine_rows(expected_embeddings, actual)

    assert cosines.min() >= FP32_MIN_COSINE, int(np.argmin(cosines))


def test_int8_matches_sentence_transformers_on_goemotions(
    encoder_export: EncoderExport, real_texts: list[str], expected_embeddings: np.ndarray
) -> None:
    actual = _encoder(encoder_export, "int8").encode(real_texts)

    cosines = cosine_rows(expected_embeddings, actual)

    assert cosines.min() >= INT8_MIN_COSINE, int(np.argmin(cosines))


@pytest.mark.parametrize("file_name", [FP32_FILE, INT8_FILE])
def test_graph_output_is_pooled_embedding(encoder_export: EncoderExport, file_name: str) -> None:
    graph = onnx.load(str(encoder_export.fp32_path.parent / file_name)).graph

    assert [output.name for output in graph.output] == ["sentence_embedding"]
    output_type = graph.output[0].type.tensor_type
    assert output_type.elem_type == onnx.TensorProto.FLOAT
    dims = output_type.shape.dim
    assert len(dims) == 2
    assert dims[0].dim_param == "batch"
    assert dims[1].dim_value == 384


@pytest.mark.parametrize("file_name", [FP32_FILE, INT8_FILE])
def test_graph_inputs_are_dynamic_int64(encoder_export: EncoderExport, file_name: str) -> None:
    graph = onnx.load(str(encoder_export.fp32_path.parent / file_name)).graph

    assert [graph_input.name for graph_input in graph.input] == ["input_ids", "attention_mask"]
    for graph_input in graph.input:
        tensor_type = graph_input.type.tensor_type
        assert tensor_type.elem_type == onnx.TensorProto.INT64, graph_input.name
        assert [dim.dim_param for dim in tensor_type.shape.dim] == ["batch", "sequence"]


def test_int8_graph_quantizes_matmuls(encoder_export: EncoderExport) -> None:
    assert encoder_export.int8_path is not None
    graph = onnx.load(str(encoder_export.int8_path)).graph
    op_types = [node.op_type for node in graph.node]

    # 6 layers x (query, key, value, attention output, FFN output) are quantized.
    assert op_types.count("MatMulInteger") == 30
    # The 6 FFN input projections stay fp32 next to the 12 attention products Q·K and A·V.
    assert op_types.count("MatMul") == 18


def test_tokenizer_copy_truncates_at_256(encoder_export: EncoderExport) -> None:
    config = json.loads(encoder_export.tokenizer_path.read_text(encoding="utf-8"))

    assert config["truncation"]["max_length"] == 256


def test_tokenizer_copy_pads_to_longest(encoder_export: EncoderExport) -> None:
    config = json.loads(encoder_export.tokenizer_path.read_text(encoding="utf-8"))

    assert config["padding"]["strategy"] == "BatchLongest"


def test_check_pipeline_accepts_bundled_model(sentence_model: SentenceTransformer) -> None:
    check_pipeline(sentence_model)


def test_check_pipeline_rejects_cls_pooling(sentence_model: SentenceTransformer) -> None:
    model = SentenceTransformer(
        modules=[sentence_model[0], Pooling(384, pooling_mode="cls"), Normalize()], device="cpu"
    )

    with pytest.raises(ExportParityError, match=r"Pooling\(cls\)"):
        check_pipeline(model)


def test_check_pipeline_rejects_missing_normalize(sentence_model: SentenceTransformer) -> None:
    model = SentenceTransformer(modules=[sentence_model[0], sentence_model[1]], device="cpu")

    with pytest.raises(ExportParityError, match=r"\[Transformer, Pooling\(mean\)\]"):
        check_pipeline(model)


def test_measure_parity_names_variant_and_worst_sentence(
    encoder_export: EncoderExport, sentence_model: SentenceTransformer
) -> None:
    texts = list(PARITY_SENTENCES)
    expected = sentence_model.encode(texts, convert_to_numpy=True, normalize_embeddings=True,
                                     show_progress_bar=False)
    actual = _encoder(encoder_export, "int8").encode(texts)
    cosines = cosine_rows(expected, actual)
    worst = int(np.argmin(cosines))

    # int8 never reaches the fp32 threshold, so the check must fail on the real outputs.
    with pytest.raises(ExportParityError) as raised:
        measure_parity("int8", expected, actual, FP32_MIN_COSINE)

    message = str(raised.value)
    assert message.startswith("int8 parity failed")
    assert f"on sentence {worst} of {len(texts)}" in message
    assert f"{cosines[worst]:.5f}" in message


def test_measure_parity_rejects_shape_mismatch() -> None:
    expected = np.eye(3, 384, dtype=np.float32)

    with pytest.raises(ExportParityError, match="shape"):
        measure_parity("fp32", expected, expected[:2], FP32_MIN_COSINE)


def test_measure_parity_returns_figures() -> None:
    expected = np.eye(3, 384, dtype=np.float32)
    actual = expected.copy()
    actual[1, 2] = 0.1

    figures = measure_parity("fp32", expected, actual, 0.99)

    assert figures.worst_index == 1
    assert figures.min_cosine == pytest.approx(1 / np.sqrt(1.01))
    assert figures.sentence_count == 3


@pytest.mark.parametrize("opset", [13, 21])
def test_export_rejects_unsupported_opset(tmp_path: Path, opset: int) -> None:
    with pytest.raises(ValueError, match=f"opset {opset} is invalid"):
        export_encoder(tmp_path, opset=opset)


def test_export_without_quantize_removes_stale_int8(tmp_path: Path) -> None:
    stale = tmp_path / INT8_FILE
    stale.write_bytes(b"left over from an earlier export")

    result = export_encoder(tmp_path, quantize=False)

    assert not stale.exists()
    assert result.int8_path is None
    assert result.int8_min_cosine is None
    assert set(result.sha256) == {FP32_FILE, TOKENIZER_FILE}
