"""Throughput of the product's message path and of VADER on this machine, in messages per second."""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from pipelines.evaluate.vader import VaderBaseline
from serving.features import MessageSignals
from serving.scorer import Scorer
from serving.signals import message_signals
from serving.text_encoder import load_text_encoder

logger = logging.getLogger(__name__)

Result = TypeVar("Result")

# Texts per call of the batched path. 32 is the encoder's own default batch size.
DEFAULT_BATCH_SIZE = 32


@dataclass(frozen=True)
class Throughput:
    """Wall-clock and CPU time of one pass over a set of messages, calls only (no file reading).

    `cpu_seconds` counts every thread of this process, so it can exceed `seconds` when
    onnxruntime runs on several cores. A wall time well above the CPU time shows that other
    processes held the CPUs.
    """

    messages: int
    seconds: float
    cpu_seconds: float
    batch_size: int

    @property
    def messages_per_second(self) -> float:
        """Messages handled per second of wall-clock time, or nan for an empty pass."""
        return self.messages / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        """Return the figures as plain numbers for JSON and MLflow."""
        return {"messages": self.messages, "seconds": self.seconds,
                "cpu_seconds": self.cpu_seconds, "batch_size": self.batch_size,
                "messages_per_second": self.messages_per_second}


@dataclass(frozen=True)
class ProductRun:
    """The product's sentiment and frustration outputs per message, with their speed.

    `sentiment` has shape [n, 3] (negative, neutral, positive) and `frustration` shape [n].
    Both come from encoding one message per call, as the live service does. The outputs of the
    batched pass are kept apart in `batched_sentiment` and `batched_frustration`.
    """

    sentiment: np.ndarray
    frustration: np.ndarray
    single: Throughput
    batched_sentiment: np.ndarray
    batched_frustration: np.ndarray
    batched: Throughput


@dataclass(frozen=True)
class VaderRun:
    """VADER's compound score per message, shape [n], with its speed."""

    compound: np.ndarray
    single: Throughput


def time_in_batches(
    function: Callable[[list[str]], Sequence[Result]], texts: Sequence[str], batch_size: int
) -> tuple[list[Result], Throughput]:
    """Call `function` on consecutive slices of `batch_size` texts, in order, and time the calls.

    One untimed call on the first text comes first, because onnxruntime allocates its buffers
    on the first run. Returns the concatenated results, one per text, and the throughput.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size {batch_size} is invalid. Use 1 or more texts per call.")
    texts = list(texts)
    if texts:
        function(texts[:1])

    results: list[Result] = []
    elapsed = 0.0
    cpu = 0.0
    for start in range(0, len(texts), batch_size):
        chunk = texts[start:start + batch_size]
        began, cpu_began = time.perf_counter(), time.process_time()
        output = function(chunk)
        elapsed += time.perf_counter() - began
        cpu += time.process_time() - cpu_began
        results.extend(output)

    if len(results) != len(texts):
        raise RuntimeError(f"the timed function returned {len(results)} results for "
                           f"{len(texts)} texts, but it must return one per text")
    return results, Throughput(len(texts), elapsed, cpu, batch_size)


def measure_product(scorer: Scorer, texts: Sequence[str], batch_size: int) -> ProductRun:
    """Run the bundle's encoder and heads on every text, alone and then in batches.

    The single pass calls `Scorer.message_signals` with one text, the call the live service
    makes per customer turn. The batched pass uses a second encoder session on the same bundle
    files with `batch_size` texts per onnxruntime run.
    """
    logger.info("product pass one message at a time over %d messages (bundle %s)",
                len(texts), scorer.manifest.name)
    signals, single = time_in_batches(scorer.message_signals, texts, 1)

    logger.info("product pass in batches of %d over %d messages", batch_size, len(texts))
    batched_path = batched_signals_function(scorer, batch_size)
    batched_signals, batched = time_in_batches(batched_path, texts, batch_size)

    return ProductRun(
        sentiment=_sentiment_matrix(signals),
        frustration=np.asarray([signal.frustration for signal in signals], dtype=float),
        single=single,
        batched_sentiment=_sentiment_matrix(batched_signals),
        batched_frustration=np.asarray([signal.frustration for signal in batched_signals],
                                       dtype=float),
        batched=batched,
    )


def batched_signals_function(
    scorer: Scorer, batch_size: int
) -> Callable[[list[str]], list[MessageSignals]]:
    """Return a function that encodes texts `batch_size` at a time and runs the scorer's heads."""
    spec = scorer.manifest.encoder
    encoder = load_text_encoder(scorer.bundle_dir, spec, batch_size=batch_size)

    def run(texts: list[str]) -> list[MessageSignals]:
        return message_signals(encoder.encode(texts), scorer.heads["sentiment"],
                               scorer.heads["frustration"])

    return run


def measure_vader(vader: VaderBaseline, texts: Sequence[str]) -> VaderRun:
    """Compute VADER's compound score of each text, one text per call, and time it."""
    logger.info("VADER pass over %d messages", len(texts))

    def score(chunk: list[str]) -> list[float]:
        return [float(value) for value in vader.compound_scores(chunk)]

    compound, single = time_in_batches(score, texts, 1)
    return VaderRun(np.asarray(compound, dtype=float), single)


def machine_description() -> dict[str, Any]:
    """Describe where a speed figure was measured: CPU, cores, load, library versions."""
    import onnxruntime

    load = os.getloadavg()
    return {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "load_average_1min": round(load[0], 2),
        "system": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
    }


def _cpu_model() -> str:
    # /proc/cpuinfo exists on Linux only, and elsewhere platform.processor() is the best guess.
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _sentiment_matrix(signals: Sequence[MessageSignals]) -> np.ndarray:
    if not signals:
        return np.zeros((0, 3), dtype=float)
    return np.vstack([signal.sentiment for signal in signals]).astype(float)
