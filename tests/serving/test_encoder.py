"""Tests of the onnxruntime sentence encoder on the real exported all-MiniLM-L6-v2 graphs."""

from __future__ import annotations

import csv
import gzip
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from tokenizers import Tokenizer

from serving.encoder import Encoder
from serving.errors import BundleError

REPOSITORY = Path(__file__).resolve().parents[2]
GOEMOTIONS_DEV = REPOSITORY / "data" / "raw" / "goemotions" / "dev.tsv.gz"

# Each of these words is one word piece in the all-MiniLM-L6-v2 vocabulary, so a prefix of N
# words is exactly N word pieces and ends on a word boundary.
ONE_PIECE_WORDS = ("the", "order", "never", "arrived", "and", "nobody", "answered", "my", "mail")


@pytest.fixture(scope="module")
def fp32_encoder(encoder_dir: Path) -> Encoder:
    return Encoder(encoder_dir / "encoder.onnx", encoder_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def int8_encoder(encoder_dir: Path) -> Encoder:
    return Encoder(encoder_dir / "encoder.int8.onnx", encoder_dir / "tokenizer.json")


@pytest.fixture(scope="module")
def tokenizer(encoder_dir: Path) -> Tokenizer:
    loaded = Tokenizer.from_file(str(encoder_dir / "tokenizer.json"))
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


@pytest.fixture(scope="module")
def comments() -> list[str]:
    with gzip.open(GOEMOTIONS_DEV, "rt", encoding="utf-8", newline="") as stream:
        return [row[0] for row in itertools.islice(csv.reader(stream, delimiter="\t"), 100)]


def _long_text(word_count: int) -> str:
    return " ".join(itertools.islice(itertools.cycle(ONE_PIECE_WORDS), word_count))


def _max_abs_diff(first: np.ndarray, second: np.ndarray) -> float:
    return float(np.max(np.abs(first - second)))


def test_one_piece_words_are_single_tokens(tokenizer: Tokenizer) -> None:
    for word in ONE_PIECE_WORDS:
        assert len(tokenizer.encode(word, add_special_tokens=False).ids) == 1, word


def test_dimension_is_384(fp32_encoder: Encoder, int8_encoder: Encoder) -> None:
    assert fp32_encoder.dimension == 384
    assert int8_encoder.dimension == 384


def test_encode_returns_float32_rows(fp32_encoder: Encoder, comments: list[str]) -> None:
    embeddings = fp32_encoder.encode(comments[:10])

    assert embeddings.shape == (10, 384)
    assert embeddings.dtype == np.float32


@pytest.mark.parametrize("variant", ["fp32", "int8"])
def test_encode_rows_are_unit_length(variant: str, fp32_encoder: Encoder, int8_encoder: Encoder,
                                     comments: list[str]) -> None:
    encoder = fp32_encoder if variant == "fp32" else int8_encoder
    texts = [*comments, "", "😡😡😡", _long_text(1_000)]

    norms = np.linalg.norm(encoder.encode(texts), axis=1)

    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


def test_encode_empty_list_returns_no_rows(fp32_encoder: Encoder) -> None:
    embeddings = fp32_encoder.encode([])

    assert embeddings.shape == (0, 384)
    assert embeddings.dtype == np.float32


def test_encode_empty_string_gives_finite_vector(fp32_encoder: Encoder) -> None:
    embedding = fp32_encoder.encode([""])[0]

    assert np.all(np.isfinite(embedding))
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)


def test_encode_empty_string_differs_from_text(fp32_encoder: Encoder) -> None:
    empty, text = fp32_encoder.encode(["", "I want a refund"])

    assert float(empty @ text) < 0.9


def test_padding_does_not_change_fp32_embedding(fp32_encoder: Encoder) -> None:
    short = "I want a refund."
    alone = fp32_encoder.encode([short])[0]

    padded = fp32_encoder.encode([short, _long_text(200)])[0]

    assert _max_abs_diff(alone, padded) < 1e-5


def test_order_restored_after_length_sort(encoder_dir: Path, comments: list[str]) -> None:
    encoder = Encoder(encoder_dir / "encoder.onnx", encoder_dir / "tokenizer.json", batch_size=3)
    # Lengths out of order, with a duplicate and an empty string, across several batches.
    texts = [_long_text(120), "ok", comments[0], "", _long_text(30), "ok", comments[1], "hi there"]

    batched = encoder.encode(texts)

    for row, text in enumerate(texts):
        alone = encoder.encode([text])[0]
        assert _max_abs_diff(batched[row], alone) < 1e-5, row


def test_batch_size_does_not_change_fp32_output(encoder_dir: Path, fp32_encoder: Encoder,
                                                comments: list[str]) -> None:
    one_at_a_time = Encoder(encoder_dir / "encoder.onnx", encoder_dir / "tokenizer.json",
                            batch_size=1)

    assert _max_abs_diff(one_at_a_time.encode(comments[:40]), fp32_encoder.encode(comments[:40])) \
        < 1e-5


def test_long_text_truncated_to_first_254_pieces(fp32_encoder: Encoder,
                                                 tokenizer: Tokenizer) -> None:
    long_text = _long_text(1_000)
    # 254 word pieces plus [CLS] and [SEP] fill the 256 positions.
    prefix = _long_text(254)
    assert len(tokenizer.encode(prefix).ids) == 256

    long_embedding, prefix_embedding = fp32_encoder.encode([long_text, prefix])

    assert _max_abs_diff(long_embedding, prefix_embedding) < 1e-5


def test_long_text_differs_from_shorter_prefix(fp32_encoder: Encoder) -> None:
    long_embedding, short_embedding = fp32_encoder.encode([_long_text(1_000), _long_text(200)])

    assert _max_abs_diff(long_embedding, short_embedding) > 1e-3


def test_max_length_setting_truncates_earlier(encoder_dir: Path) -> None:
    encoder = Encoder(encoder_dir / "encoder.onnx", encoder_dir / "tokenizer.json",
                      max_length=16)

    long_embedding, prefix_embedding = encoder.encode([_long_text(40), _long_text(14)])

    assert _max_abs_diff(long_embedding, prefix_embedding) < 1e-5


def test_intra_op_threads_setting_gives_same_output(encoder_dir: Path, fp32_encoder: Encoder,
                                                    comments: list[str]) -> None:
    single_thread = Encoder(encoder_dir / "encoder.onnx", encoder_dir / "tokenizer.json",
                            intra_op_threads=1)

    assert _max_abs_diff(single_thread.encode(comments[:20]), fp32_encoder.encode(comments[:20])) \
        < 1e-5


def test_encode_rejects_single_string(fp32_encoder: Encoder) -> None:
    with pytest.raises(TypeError, match="Wrap it in a list"):
        fp32_encoder.encode("I want a refund")


def test_encode_rejects_non_string_item(fp32_encoder: Encoder) -> None:
    with pytest.raises(TypeError, match="item 1 is NoneType"):
        fp32_encoder.encode(["fine", None])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("setting", "value"),
    [("max_length", 1), ("max_length", 513), ("batch_size", 0), ("intra_op_threads", 0)],
)
def test_invalid_setting_rejected(encoder_dir: Path, setting: str, value: int) -> None:
    with pytest.raises(ValueError, match=f"{setting} {value} is invalid"):
        Encoder(encoder_dir / "encoder.onnx", encoder_dir / "tokenizer.json",
                **{setting: value})


def test_missing_model_raises_bundle_error(encoder_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "encoder.onnx"

    with pytest.raises(BundleError) as raised:
        Encoder(missing, encoder_dir / "tokenizer.json")

    assert str(missing) in str(raised.value)
    assert "escalation export" in str(raised.value)


def test_missing_tokenizer_raises_bundle_error(encoder_dir: Path, tmp_path: Path) -> None:
    missing = tmp_path / "tokenizer.json"

    with pytest.raises(BundleError) as raised:
        Encoder(encoder_dir / "encoder.onnx", missing)

    assert str(missing) in str(raised.value)
    assert "escalation export" in str(raised.value)


def test_corrupt_model_raises_bundle_error(encoder_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "encoder.onnx"
    corrupt.write_bytes((encoder_dir / "encoder.onnx").read_bytes()[:4_096])

    with pytest.raises(BundleError, match="could not be loaded by onnxruntime"):
        Encoder(corrupt, encoder_dir / "tokenizer.json")


def test_corrupt_tokenizer_raises_bundle_error(encoder_dir: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "tokenizer.json"
    corrupt.write_text((encoder_dir / "tokenizer.json").read_text(encoding="utf-8")[:500],
                       encoding="utf-8")

    with pytest.raises(BundleError, match="could not be loaded"):
        Encoder(encoder_dir / "encoder.onnx", corrupt)


def test_graph_with_other_inputs_raises_bundle_error(encoder_dir: Path, tmp_path: Path) -> None:
    # A valid ONNX model that is not an encoder: one float input copied to the output.
    graph = helper.make_graph(
        [helper.make_node("Identity", ["features"], ["sentence_embedding"])],
        "not-an-encoder",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 384])],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", 384])],
    )
    path = tmp_path / "identity.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))

    with pytest.raises(BundleError, match=r"has inputs \['features'\]"):
        Encoder(path, encoder_dir / "tokenizer.json")


def test_encoder_module_imports_no_training_libraries() -> None:
    probe = (
        "import sys, serving.encoder; "
        "print(sorted(name for name in ('torch', 'transformers', 'sentence_transformers', "
        "'sklearn', 'pandas', 'mlflow') if name in sys.modules))"
    )

    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True, cwd=REPOSITORY)

    assert result.stdout.strip() == "[]"
