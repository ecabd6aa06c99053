"""Speed and memory benchmark of the live scoring service against a naive re-scoring path.

Run it from the repository root:

    .venv/bin/python -m benchmarks.service_speed [--quick] [--samples N] [--output-json PATH]

It prints the figures and, as the last line of output, one JSON object with every figure and
the pass/fail of each target. docs/benchmarks.md records a full run and explains the method.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from itertools import chain, cycle
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np

import serving  # noqa: F401  (switches telemetry off before onnxruntime or torch load)
from serving.bundle import find_latest_bundle
from serving.decision import decide
from serving.errors import EscalationError
from serving.features import conversation_feature_matrix
from serving.live import apply_turn, new_state
from serving.rules import match_conversation
from serving.schema import Conversation, Role, Turn
from serving.scorer import ESCALATION_CLASS, Scorer
from serving.signals import message_signals
from serving.state import LiveState

logger = logging.getLogger("benchmarks.service_speed")

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
DATA_SEED = 13

# Turn numbers count from 1: "turn 20" is the 20th turn, timed with 19 turns already applied.
TIMED_TURNS = (5, 20, 50)
SCRIPT_TURNS = max(TIMED_TURNS)
# The naive path's throughput is checked against the target at this turn. It is measured at
# the other timed turns too, to show how its cost grows.
NAIVE_TARGET_TURN = 20

# Targets the figures are checked against.
TARGET_P99_MS = 10.0
TARGET_TURN50_TO_TURN5 = 1.2
TARGET_NAIVE_SPEEDUP = 40.0
TARGET_COLD_START_SECONDS = 1.5
TARGET_RSS_MB = 250.0

# A phase counts as disturbed when other processes used more than this share of the CPUs,
# because its figures are then not those of an idle machine.
DISTURBED_OTHER_CPU_SHARE = 0.1

BYTES_PER_MB = 1_000_000
SERVER_READY_TIMEOUT_SECONDS = 120.0
SERVER_STOP_TIMEOUT_SECONDS = 30.0
READY_POLL_SECONDS = 0.01
HTTP_TIMEOUT_SECONDS = 60.0
SERVER_ENVIRONMENT_PREFIXES = ("ESCALATION_",)
SERVER_ENVIRONMENT_NAMES = ("DATABASE_URL", "REDIS_URL")


class BenchmarkError(RuntimeError):
    """A measurement could not be taken; the message names the step and the cause."""


# ---------------------------------------------------------------------------- run plan


@dataclass(frozen=True)
class RunPlan:
    """How much of each measurement to run."""

    bundle: Path
    samples: int
    naive_samples: int
    warmup_conversations: int
    client_counts: tuple[int, ...]
    throughput_seconds: float
    throughput_max_turns: int
    cold_starts: int
    quick: bool


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.service_speed",
        description="Measure per-turn latency, throughput, cold start and memory of the live "
        "scoring service, in process and over HTTP, against a naive path that re-scores the "
        "whole conversation with sentence-transformers on torch at every turn.",
    )
    parser.add_argument("--bundle", type=Path, default=None,
                        help="bundle folder to benchmark; default: the newest under models/")
    parser.add_argument("--samples", type=int, default=None,
                        help="conversations timed at each of turns 5, 20 and 50, in process, "
                        "over HTTP and on the naive path; default 200, or 10 with --quick")
    parser.add_argument("--quick", action="store_true",
                        help="run a small smoke check (about 30 s on an idle 2-core machine): "
                        "10 samples, 2 s throughput runs with 1 and 4 clients, one cold start")
    parser.add_argument("--output-json", type=Path, default=None, metavar="PATH",
                        help="also write the JSON object of the last output line to PATH")
    return parser.parse_args(argv)


def make_plan(arguments: argparse.Namespace) -> RunPlan:
    """Turn the parsed options into a run plan, checking the values."""
    bundle = arguments.bundle or find_latest_bundle(REPOSITORY_ROOT / "models")
    if not (bundle / "manifest.json").is_file():
        raise BenchmarkError(f"--bundle {bundle}: no manifest.json in that folder; pass a "
                             "bundle folder such as models/escalation-<date>")
    samples = arguments.samples if arguments.samples is not None else \
        (10 if arguments.quick else 200)
    if samples < 2:
        raise BenchmarkError(f"--samples {samples} is invalid; use 2 or more so that a p99 "
                             "can be computed")
    if arguments.quick:
        return RunPlan(bundle=bundle, samples=samples, naive_samples=samples,
                       warmup_conversations=1, client_counts=(1, 4), throughput_seconds=2.0,
                       throughput_max_turns=400, cold_starts=1, quick=True)
    return RunPlan(bundle=bundle, samples=samples, naive_samples=samples,
                   warmup_conversations=3, client_counts=(1, 4, 8), throughput_seconds=15.0,
                   throughput_max_turns=20_000, cold_starts=3, quick=False)


# ---------------------------------------------------------------------------- machine and load


def machine_description() -> dict[str, Any]:
    """Return the CPU, memory, OS and library versions of this machine."""
    cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown")
    flags_line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    vector_flags = sorted(flag for flag in flags_line.split(":", 1)[-1].split()
                          if flag in {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
    return {
        "cpu_model": model,
        "cpu_flags": vector_flags,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_total_mb": round(_meminfo_kb("MemTotal") * 1024 / BYTES_PER_MB),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": {name: _version(name) for name in (
            "onnxruntime", "tokenizers", "numpy", "fastapi", "uvicorn", "httpx", "SQLAlchemy",
            "torch", "sentence-transformers", "transformers")},
    }


def _meminfo_kb(key: str) -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchmarkError(f"/proc/meminfo has no {key} line")


def _os_name() -> str:
    release = Path("/etc/os-release")
    if release.is_file():
        for line in release.read_text(encoding="utf-8").splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    return platform.platform()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class CpuSample:
    """Machine-wide and own CPU time at one moment, in seconds."""

    wall: float
    load_1min: float
    machine_busy: float
    machine_steal: float
    own: float


class LoadMonitor:
    """Measure, per phase, how much CPU other processes on the machine used.

    Busy time comes from /proc/stat (user, nice, system, irq, softirq). Own time is that of
    this process, its finished children and the running server. The rest is other load.
    """

    def __init__(self) -> None:
        self.server_pid: int | None = None
        self.phases: list[dict[str, Any]] = []
        self._ticks = os.sysconf("SC_CLK_TCK")

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Record the load of the machine while the body runs."""
        logger.info("phase %s started", name)
        before = self.sample()
        yield
        after = self.sample()
        wall = after.wall - before.wall
        other = (after.machine_busy - before.machine_busy) - (after.own - before.own)
        self.phases.append({
            "phase": name,
            "seconds": round(wall, 2),
            "load_1min_before": before.load_1min,
            "load_1min_after": after.load_1min,
            "own_cpus": round((after.own - before.own) / wall, 2) if wall else None,
            "other_cpus": round(other / wall, 2) if wall else None,
            "steal_cpus": round((after.machine_steal - before.machine_steal) / wall, 2)
            if wall else None,
        })
        logger.info("phase %s finished in %.1f s", name, wall)

    def sample(self) -> CpuSample:
        """Read the machine-wide and own CPU time now."""
        fields = Path("/proc/stat").read_text(encoding="utf-8").splitlines()[0].split()[1:]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value
                                                                    in fields[:8])
        own_usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN)]
        own = sum(usage.ru_utime + usage.ru_stime for usage in own_usage)
        if self.server_pid is not None:
            own += process_cpu_seconds(self.server_pid, self._ticks)
        return CpuSample(
            wall=time.perf_counter(),
            load_1min=os.getloadavg()[0],
            machine_busy=(user + nice + system + irq + softirq) / self._ticks,
            machine_steal=steal / self._ticks,
            own=own,
        )


def process_cpu_seconds(pid: int, ticks_per_second: int) -> float:
    """Return the user plus system CPU seconds of a running process, 0 if it has exited."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
    except FileNotFoundError:
        return 0.0
    # Fields after the command name, which may contain spaces, start at field 3 (state);
    # utime and stime are fields 14 and 15.
    after_name = text.rsplit(")", 1)[1].split()
    return (int(after_name[11]) + int(after_name[12])) / ticks_per_second


def disturbed_phases(phases: list[dict[str, Any]]) -> list[str]:
    """Return the names of the phases during which other processes used a notable CPU share."""
    usable = len(os.sched_getaffinity(0))
    return [phase["phase"] for phase in phases
            if phase["other_cpus"] is not None
            and phase["other_cpus"] > DISTURBED_OTHER_CPU_SHARE * usable]


# ---------------------------------------------------------------------------- conversations


def build_scripts(conversations: Sequence[Conversation], count: int) -> list[list[Turn]]:
    """Return `count` conversation scripts of 50 turns made of real USS turns.

    Each script concatenates whole test dialogues, starting at a different dialogue per
    script, and puts a customer message at turns 5, 20 and 50 so that every timed turn runs
    the encoder. The timed messages rotate across the three positions, so turns 5, 20 and 50
    are timed on the same set of messages.
    """
    dialogues = [[_without_labels(turn) for turn in conversation.turns]
                 for conversation in conversations if conversation.turns]
    if not dialogues:
        raise BenchmarkError("the test split has no conversations with turns")
    timed_pool = _timed_messages(dialogues, max(count, len(TIMED_TURNS)))

    scripts = []
    for sample in range(count):
        filler = _filler_turns(dialogues, start=sample % len(dialogues))
        timed = {number - 1: timed_pool[(sample + slot) % len(timed_pool)]
                 for slot, number in enumerate(TIMED_TURNS)}
        scripts.append([timed[index] if index in timed else next(filler)
                        for index in range(SCRIPT_TURNS)])
    return scripts


def _without_labels(turn: Turn) -> Turn:
    # A live platform sends no ground-truth labels.
    return turn.model_copy(update={"labels": None})


def _timed_messages(dialogues: list[list[Turn]], count: int) -> list[Turn]:
    customer_turns = [turn for dialogue in dialogues for turn in dialogue
                      if turn.role is Role.CUSTOMER]
    order = np.random.default_rng(DATA_SEED).permutation(len(customer_turns))
    return [customer_turns[index] for index in order[:count]]


def _filler_turns(dialogues: list[list[Turn]], start: int) -> Iterator[Turn]:
    rotated = dialogues[start:] + dialogues[:start]
    return cycle(chain.from_iterable(rotated))


def load_test_conversations() -> list[Conversation]:
    """Return the USS test split that training holds out (seed 13)."""
    from pipelines.train.data import load_training_data

    return load_training_data(seed=DATA_SEED).conversations["test"]


# ---------------------------------------------------------------------------- clients


@dataclass(frozen=True)
class TurnOutcome:
    """Probability and escalation flag of one scored turn, as a client reads them back."""

    probability: float
    newly_escalated: bool


class TurnClient(Protocol):
    """A client that scores the next turn of a conversation."""

    def send(self, conversation_id: str, turn: Turn) -> TurnOutcome: ...

    def close(self) -> None: ...


class InProcessClient:
    """Score turns with `apply_turn` in this process, keeping the state of one conversation.

    This is the per-turn path of `EscalationService.append_turn` without the state store,
    the prediction log and the escalation side effects.
    """

    def __init__(self, scorer: Scorer) -> None:
        self.scorer = scorer
        self._conversation_id: str | None = None
        self._state: LiveState | None = None

    def send(self, conversation_id: str, turn: Turn) -> TurnOutcome:
        if conversation_id != self._conversation_id or self._state is None:
            self._conversation_id = conversation_id
            self._state = new_state(conversation_id)
        result = apply_turn(self.scorer, self._state, turn)
        return TurnOutcome(result.escalation_probability, result.newly_escalated)

    def close(self) -> None:
        self._state = None


class HttpClient:
    """Score turns through the service's HTTP API with one keep-alive connection."""

    def __init__(self, base_url: str) -> None:
        self._client = httpx.Client(base_url=base_url, timeout=HTTP_TIMEOUT_SECONDS)

    def send(self, conversation_id: str, turn: Turn) -> TurnOutcome:
        response = self._client.post(f"/v1/conversations/{conversation_id}/turns",
                                     json=turn.model_dump(mode="json", exclude_none=True))
        if response.status_code != 200:
            raise BenchmarkError(f"POST turn of conversation {conversation_id} returned HTTP "
                                 f"{response.status_code}: {response.text[:300]}")
        body = response.json()
        return TurnOutcome(float(body["escalation_probability"]), bool(body["newly_escalated"]))

    def close(self) -> None:
        self._client.close()


# ---------------------------------------------------------------------------- latency


def _per_timed_turn() -> dict[int, list[float]]:
    return {number: [] for number in TIMED_TURNS}


@dataclass
class LatencyRun:
    """Latencies (seconds) and probabilities of the timed turns of a set of conversations.

    `escalating_turns` contains the latency of every turn, timed or not, that escalated its
    conversation. Over HTTP that turn also routes and builds the handoff package.
    """

    by_turn: dict[int, list[float]] = field(default_factory=_per_timed_turn)
    probabilities_by_turn: dict[int, list[float]] = field(default_factory=_per_timed_turn)
    escalations_by_turn: dict[int, int] = field(
        default_factory=lambda: {number: 0 for number in TIMED_TURNS})
    escalating_turns: list[float] = field(default_factory=list)


def time_turns(client: TurnClient, scripts: Sequence[list[Turn]], prefix: str) -> LatencyRun:
    """Drive each script as one conversation and time turns 5, 20 and 50 of each."""
    run = LatencyRun()
    for sample, script in enumerate(scripts):
        conversation_id = f"{prefix}-{sample}"
        for index, turn in enumerate(script):
            started = time.perf_counter()
            outcome = client.send(conversation_id, turn)
            elapsed = time.perf_counter() - started
            _record_turn(run, index + 1, elapsed, outcome)
    return run


def _record_turn(run: LatencyRun, number: int, elapsed: float, outcome: TurnOutcome) -> None:
    if outcome.newly_escalated:
        run.escalating_turns.append(elapsed)
    if number in run.by_turn:
        run.by_turn[number].append(elapsed)
        run.probabilities_by_turn[number].append(outcome.probability)
        run.escalations_by_turn[number] += int(outcome.newly_escalated)


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """Return p50, p99, mean and max in milliseconds, and the sample count."""
    if not seconds:
        return {"samples": 0, "p50_ms": None, "p99_ms": None, "mean_ms": None, "max_ms": None}
    values = np.asarray(seconds, dtype=np.float64) * 1000
    p50, p99 = np.percentile(values, [50, 99])
    return {"samples": len(values), "p50_ms": round(float(p50), 3),
            "p99_ms": round(float(p99), 3), "mean_ms": round(float(values.mean()), 3),
            "max_ms": round(float(values.max()), 3)}


def latency_figures(run: LatencyRun) -> dict[str, Any]:
    """Return the summary of each timed turn, the turn 50 / turn 5 ratio and escalations."""
    figures: dict[str, Any] = {
        f"turn_{number}": {**summarize(run.by_turn[number]),
                           "newly_escalated": run.escalations_by_turn[number]}
        for number in TIMED_TURNS
    }
    first, last = TIMED_TURNS[0], TIMED_TURNS[-1]
    figures["p50_ratio_turn_50_to_5"] = round(
        figures[f"turn_{last}"]["p50_ms"] / figures[f"turn_{first}"]["p50_ms"], 3)
    figures["conversations_escalated"] = len(run.escalating_turns)
    figures["escalating_turns"] = summarize(run.escalating_turns)
    return figures


# ---------------------------------------------------------------------------- throughput


class TurnBudget:
    """A shared count of turns that the client threads may still send."""

    def __init__(self, turns: int) -> None:
        self._left = turns
        self._lock = threading.Lock()

    def take(self) -> bool:
        """Take one turn from the budget, returning False when it is spent."""
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def measure_throughput(
    make_client: Callable[[], TurnClient],
    scripts: Sequence[list[Turn]],
    clients: int,
    seconds: float,
    max_turns: int,
    label: str,
) -> dict[str, Any]:
    """Run `clients` threads, each driving its own conversations, and return turns/second.

    Every thread sends every turn of its scripts, customer and assistant alike, as a support
    platform does. The run stops at `seconds` or after `max_turns` turns, whichever is first.
    """
    budget = TurnBudget(max_turns)
    start_barrier = threading.Barrier(clients + 1, timeout=HTTP_TIMEOUT_SECONDS)
    token = uuid.uuid4().hex[:8]
    deadline_holder: list[float] = []

    def drive(index: int) -> tuple[int, int]:
        client = make_client()
        try:
            start_barrier.wait()
            return _drive_until_deadline(client, scripts, index, clients, deadline_holder[0],
                                         budget, f"{label}-{clients}-{token}-{index}")
        finally:
            client.close()

    with ThreadPoolExecutor(max_workers=clients) as pool:
        futures = [pool.submit(drive, index) for index in range(clients)]
        deadline_holder.append(time.perf_counter() + seconds)
        start_barrier.wait()
        started = time.perf_counter()
        per_client = [future.result() for future in futures]
        elapsed = time.perf_counter() - started

    turns = sum(sent for sent, _ in per_client)
    customer_turns = sum(customer for _, customer in per_client)
    return {"clients": clients, "seconds": round(elapsed, 2), "turns": turns,
            "customer_turn_share": round(customer_turns / turns, 3) if turns else None,
            "turns_per_second": round(turns / elapsed, 1) if elapsed else None}


def _drive_until_deadline(client: TurnClient, scripts: Sequence[list[Turn]], index: int,
                          clients: int, deadline: float, budget: TurnBudget,
                          prefix: str) -> tuple[int, int]:
    turns = 0
    customer_turns = 0
    conversation = 0
    while True:
        script = scripts[(index + conversation * clients) % len(scripts)]
        conversation_id = f"{prefix}-{conversation}"
        for turn in script:
            if time.perf_counter() >= deadline or not budget.take():
                return turns, customer_turns
            client.send(conversation_id, turn)
            turns += 1
            customer_turns += int(turn.role is Role.CUSTOMER)
        conversation += 1


# ---------------------------------------------------------------------------- memory of a state


def measure_state_memory(scorer: Scorer, scripts: Sequence[list[Turn]]) -> dict[str, Any]:
    """Estimate the Python heap that one 50-turn conversation state uses, with tracemalloc.

    Two states are built and the second one's increment is reported, so one-time caches
    filled by the first conversation are not counted.
    """
    gc.collect()
    tracemalloc.start()
    try:
        states = []
        traced = []
        for sample, script in enumerate(scripts[:2]):
            state = new_state(f"bench-memory-{sample}")
            for turn in script:
                apply_turn(scorer, state, turn)
            states.append(state)
            gc.collect()
            traced.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    last = states[-1]
    return {
        "turns": last.turn_count,
        "customer_turns": last.feature_state.customer_turns,
        "python_heap_bytes": traced[-1] - traced[-2],
        "json_bytes": len(last.to_json().encode("utf-8")),
    }


# ---------------------------------------------------------------------------- the server


class ServerProcess:
    """`escalation serve` in a subprocess on 127.0.0.1, with a private SQLite prediction log."""

    def __init__(self, bundle: Path, database_path: Path, log_path: Path) -> None:
        self.bundle = bundle
        self.database_url = f"sqlite:///{database_path}"
        self.log_path = log_path
        self.port = _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """Process id of the running server."""
        if self.process is None:
            raise BenchmarkError("the server was not started")
        return self.process.pid

    def start(self) -> float:
        """Start the server and return the seconds from process start to the first ready
        /readyz response."""
        command = [sys.executable, "-m", "pipelines.cli", "serve", "--bundle", str(self.bundle),
                   "--host", "127.0.0.1", "--port", str(self.port)]
        log = self.log_path.open("ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(command, cwd=REPOSITORY_ROOT, env=self._environment(),
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self._wait_ready()
        return time.perf_counter() - started

    def _environment(self) -> dict[str, str]:
        # The server must not pick up Redis, another database or API keys from the shell.
        environment = {name: value for name, value in os.environ.items()
                       if not name.startswith(SERVER_ENVIRONMENT_PREFIXES)
                       and name not in SERVER_ENVIRONMENT_NAMES}
        environment["ESCALATION_AUTH_DISABLED"] = "true"
        environment["DATABASE_URL"] = self.database_url
        return environment

    def _wait_ready(self) -> None:
        deadline = time.perf_counter() + SERVER_READY_TIMEOUT_SECONDS
        with httpx.Client(base_url=self.base_url, timeout=1.0) as client:
            while time.perf_counter() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise BenchmarkError(f"the server exited with code {self.process.returncode} "
                                         f"before it was ready; its log:\n{self._log_tail()}")
                try:
                    if client.get("/readyz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(READY_POLL_SECONDS)
        self.stop()
        raise BenchmarkError(f"the server was not ready within {SERVER_READY_TIMEOUT_SECONDS} s; "
                             f"its log:\n{self._log_tail()}")

    def memory(self) -> dict[str, float]:
        """Return the server's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
        status = Path(f"/proc/{self.pid}/status").read_text(encoding="utf-8")
        values = {}
        for line in status.splitlines():
            key, _, rest = line.partition(":")
            if key in {"VmRSS", "VmHWM"}:
                values[key] = round(int(rest.split()[0]) * 1024 / BYTES_PER_MB, 1)
        return {"rss_mb": values["VmRSS"], "peak_rss_mb": values["VmHWM"]}

    def loads_torch(self) -> bool:
        """Return whether a torch library is mapped into the server process."""
        maps = Path(f"/proc/{self.pid}/maps").read_text(encoding="utf-8")
        return "libtorch" in maps

    def live_conversations(self) -> int:
        """Return the number of conversation states the server holds, from /metrics."""
        response = httpx.get(self.base_url + "/metrics", timeout=HTTP_TIMEOUT_SECONDS)
        for line in response.text.splitlines():
            if line.startswith("escalation_live_conversations "):
                return int(float(line.split()[1]))
        raise BenchmarkError("/metrics has no escalation_live_conversations gauge")

    def stop(self) -> None:
        """Stop the server with SIGINT (graceful shutdown), killing it after a timeout."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=SERVER_STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            logger.warning("server %d did not stop within %.0f s; killing it", self.pid,
                           SERVER_STOP_TIMEOUT_SECONDS)
            self.process.kill()
            self.process.wait()

    def _log_tail(self) -> str:
        lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(lines[-30:])


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------- naive path


class NaiveScorer:
    """The first version a data scientist writes: re-score the whole conversation each turn.

    At every customer turn it embeds every customer message so far with sentence-transformers
    on torch (fp32, batch size 32) and runs the bundle's sentiment and frustration heads on
    all of them. It then matches the rules over the whole conversation, builds the feature
    matrix of every customer turn with `conversation_feature_matrix`, runs the escalation head
    on all rows and decides on the last row. The heads are the bundle's ONNX exports because
    the scikit-learn estimators are not saved. They take well under a millisecond either way.
    """

    def __init__(self, scorer: Scorer) -> None:
        from pipelines.export.encoder import load_sentence_transformer

        self.model = load_sentence_transformer()
        self.heads = scorer.heads
        self.policy = scorer.policy
        self.thresholds = scorer.thresholds

    def score_last_turn(self, conversation: Conversation) -> float:
        """Re-score the whole conversation and return P(escalation) at its last turn."""
        texts = [conversation.turns[index].text for index in conversation.customer_turn_indices()]
        embeddings = self.model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
        signals = message_signals(np.asarray(embeddings, dtype=np.float32),
                                  self.heads["sentiment"], self.heads["frustration"])
        matches = match_conversation(conversation, self.policy)
        features = conversation_feature_matrix(conversation, signals, matches)
        probabilities = self.heads["escalation"].predict_proba(features)[:, ESCALATION_CLASS]
        probability = float(probabilities[-1])
        decide(probability, len(conversation.turns) - 1, matches, self.thresholds)
        return probability


def time_naive(naive: NaiveScorer, scripts: Sequence[list[Turn]],
               turn_number: int) -> tuple[list[float], list[float]]:
    """Time the naive path at `turn_number` of each script, returning seconds and probabilities.

    The conversations are built and validated before the clock starts, so the naive path is
    not charged for parsing the request.
    """
    conversations = [Conversation(id=f"bench-naive-{sample}", turns=script[:turn_number])
                     for sample, script in enumerate(scripts)]
    seconds = []
    probabilities = []
    for conversation in conversations:
        started = time.perf_counter()
        probabilities.append(naive.score_last_turn(conversation))
        seconds.append(time.perf_counter() - started)
    return seconds, probabilities


# ---------------------------------------------------------------------------- the run


def run_in_process(plan: RunPlan, scripts: list[list[Turn]],
                   monitor: LoadMonitor) -> tuple[dict[str, Any], LatencyRun, Scorer]:
    """Measure apply_turn latency, in-process throughput and the memory of one state."""
    scorer = Scorer(plan.bundle)
    if scorer.manifest.encoder.variant != "int8":
        logger.warning("bundle %s has the %s encoder; the targets assume int8",
                       scorer.manifest.name, scorer.manifest.encoder.variant)

    with monitor.phase("in-process latency"):
        time_turns(InProcessClient(scorer), scripts[:plan.warmup_conversations],
                   "bench-warmup")
        run = time_turns(InProcessClient(scorer), scripts, "bench-inproc")
    with monitor.phase("in-process throughput"):
        throughput = [measure_throughput(lambda: InProcessClient(scorer), scripts, clients,
                                         plan.throughput_seconds, plan.throughput_max_turns,
                                         "bench-inproc-load")
                      for clients in plan.client_counts]
    with monitor.phase("state memory"):
        state_memory = measure_state_memory(scorer, scripts)

    figures = {
        "encoder": scorer.manifest.encoder.variant,
        "latency": latency_figures(run),
        "throughput": throughput,
        "state_memory": state_memory,
    }
    return figures, run, scorer


def run_http(plan: RunPlan, scripts: list[list[Turn]], monitor: LoadMonitor) -> dict[str, Any]:
    """Measure cold start, memory, per-turn latency and throughput of `escalation serve`."""
    with tempfile.TemporaryDirectory(prefix="escalation-bench-") as folder:
        workdir = Path(folder)
        with monitor.phase("cold start"):
            cold_starts, server = _cold_starts(plan, workdir, monitor)
        try:
            return _measure_running_server(plan, scripts, server, cold_starts, monitor)
        finally:
            server.stop()
            monitor.server_pid = None


def _cold_starts(plan: RunPlan, workdir: Path,
                 monitor: LoadMonitor) -> tuple[list[float], ServerProcess]:
    # The first start creates and migrates a new SQLite database. Later starts reuse it, as a
    # restarted worker does. The last server stays up for the other measurements.
    seconds = []
    for attempt in range(plan.cold_starts):
        server = ServerProcess(plan.bundle, workdir / "escalation.db", workdir / "server.log")
        seconds.append(server.start())
        monitor.server_pid = server.pid
        if attempt < plan.cold_starts - 1:
            server.stop()
            monitor.server_pid = None
    return seconds, server


def _measure_running_server(plan: RunPlan, scripts: list[list[Turn]], server: ServerProcess,
                            cold_starts: list[float], monitor: LoadMonitor) -> dict[str, Any]:
    memory_at_ready = server.memory()
    with monitor.phase("HTTP warm-up"):
        client = HttpClient(server.base_url)
        time_turns(client, scripts[:plan.warmup_conversations], "bench-http-warmup")
    memory_after_warmup = {**server.memory(), "live_conversations": server.live_conversations()}

    with monitor.phase("HTTP latency"):
        run = time_turns(client, scripts, f"bench-http-{uuid.uuid4().hex[:8]}")
        client.close()
    with monitor.phase("HTTP throughput"):
        throughput = [measure_throughput(lambda: HttpClient(server.base_url), scripts, clients,
                                         plan.throughput_seconds, plan.throughput_max_turns,
                                         "bench-http-load")
                      for clients in plan.client_counts]
    memory_after_throughput = {**server.memory(),
                               "live_conversations": server.live_conversations()}

    added = memory_after_throughput["live_conversations"] - \
        memory_after_warmup["live_conversations"]
    growth = memory_after_throughput["rss_mb"] - memory_after_warmup["rss_mb"]
    return {
        "cold_start_seconds": [round(value, 3) for value in cold_starts],
        "cold_start_median_seconds": round(statistics.median(cold_starts), 3),
        "server_loads_torch": server.loads_torch(),
        "memory_at_ready": memory_at_ready,
        "memory_after_warmup": memory_after_warmup,
        "memory_after_throughput": memory_after_throughput,
        "rss_growth_per_conversation_mb": round(growth / added, 3) if added > 0 else None,
        "latency": latency_figures(run),
        "throughput": throughput,
    }


def run_naive(plan: RunPlan, scripts: list[list[Turn]], scorer: Scorer,
              product: LatencyRun, monitor: LoadMonitor) -> dict[str, Any]:
    """Measure the naive path at turns 5, 20 and 50 and compare it with apply_turn."""
    with monitor.phase("naive path"):
        import torch

        naive = NaiveScorer(scorer)
        for warmup_script in scripts[:plan.warmup_conversations]:
            naive.score_last_turn(Conversation(id="bench-naive-warmup",
                                               turns=warmup_script[:NAIVE_TARGET_TURN]))
        figures: dict[str, Any] = {"torch_threads": torch.get_num_threads(),
                                   "target_turn": NAIVE_TARGET_TURN}
        for number in TIMED_TURNS:
            seconds, probabilities = time_naive(naive, scripts[:plan.naive_samples], number)
            figures[f"turn_{number}"] = _naive_comparison(
                seconds, probabilities, product.by_turn[number],
                product.probabilities_by_turn[number])
    figures["speedup"] = figures[f"turn_{NAIVE_TARGET_TURN}"]["speedup"]
    return figures


def _naive_comparison(naive_seconds: list[float], naive_probabilities: list[float],
                      product_seconds: list[float],
                      product_probabilities: list[float]) -> dict[str, Any]:
    # Throughput of one caller is the inverse of the mean latency.
    naive_rate = len(naive_seconds) / sum(naive_seconds)
    product_rate = len(product_seconds) / sum(product_seconds)
    paired = np.asarray(product_probabilities[:len(naive_probabilities)])
    differences = np.abs(paired - np.asarray(naive_probabilities))
    return {
        "latency": summarize(naive_seconds),
        "naive_turns_per_second": round(naive_rate, 2),
        "product_turns_per_second": round(product_rate, 1),
        "speedup": round(product_rate / naive_rate, 1),
        "probability_max_abs_difference": round(float(differences.max()), 4),
        "probability_mean_abs_difference": round(float(differences.mean()), 4),
    }


def check_targets(in_process: dict[str, Any], http: dict[str, Any],
                  naive: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Compare the figures with the targets."""
    latency = in_process["latency"]
    worst_p99 = max(latency[f"turn_{number}"]["p99_ms"] for number in TIMED_TURNS)
    checks = {
        "in_process_p99_ms": (worst_p99, TARGET_P99_MS, "<="),
        "in_process_p50_ratio_turn_50_to_5": (latency["p50_ratio_turn_50_to_5"],
                                              TARGET_TURN50_TO_TURN5, "<="),
        f"speedup_over_naive_at_turn_{NAIVE_TARGET_TURN}": (naive["speedup"],
                                                            TARGET_NAIVE_SPEEDUP, ">="),
        "cold_start_median_seconds": (http["cold_start_median_seconds"],
                                      TARGET_COLD_START_SECONDS, "<="),
        "server_rss_after_warmup_mb": (http["memory_after_warmup"]["rss_mb"], TARGET_RSS_MB,
                                       "<="),
        "server_rss_after_throughput_mb": (http["memory_after_throughput"]["rss_mb"],
                                           TARGET_RSS_MB, "<="),
    }
    return {name: {"value": value, "target": f"{operator} {target}",
                   "pass": value <= target if operator == "<=" else value >= target}
            for name, (value, target, operator) in checks.items()}


# ---------------------------------------------------------------------------- output


def print_report(result: dict[str, Any]) -> None:
    """Print the figures as readable lines."""
    machine = result["machine"]
    print(f"machine: {machine['cpu_model']}, {machine['usable_cpus']} CPUs, "
          f"{machine['memory_total_mb']} MB RAM, {machine['os']}, Python {machine['python']}, "
          f"onnxruntime {machine['versions']['onnxruntime']}")
    print(f"bundle: {result['bundle']} ({result['in_process']['encoder']} encoder), "
          f"{result['samples']} samples per timed turn")

    _print_latency("in process, apply_turn", result["in_process"]["latency"])
    _print_latency("HTTP, POST /v1/conversations/{id}/turns", result["http"]["latency"])
    _print_throughput("in process", result["in_process"]["throughput"])
    _print_throughput("HTTP", result["http"]["throughput"])

    for number in TIMED_TURNS:
        naive = result["naive"][f"turn_{number}"]
        print(f"naive path at turn {number}: {naive['naive_turns_per_second']} turns/s "
              f"(p50 {naive['latency']['p50_ms']} ms), product "
              f"{naive['product_turns_per_second']} turns/s, speedup {naive['speedup']}x; "
              f"|P(naive) - P(product)| max {naive['probability_max_abs_difference']}")
    http = result["http"]
    print(f"cold start to ready: {http['cold_start_seconds']} s "
          f"(median {http['cold_start_median_seconds']} s)")
    for label in ("memory_at_ready", "memory_after_warmup", "memory_after_throughput"):
        memory = http[label]
        print(f"server {label.replace('_', ' ')}: RSS {memory['rss_mb']} MB, "
              f"peak {memory['peak_rss_mb']} MB, "
              f"{memory.get('live_conversations', 0)} conversations in state")
    print(f"server RSS growth per conversation held in state: "
          f"{http['rss_growth_per_conversation_mb']} MB")
    state = result["in_process"]["state_memory"]
    print(f"one {state['turns']}-turn state: {state['python_heap_bytes']} bytes of Python heap "
          f"(tracemalloc), {state['json_bytes']} bytes as JSON")

    for phase in result["load"]:
        print(f"load during {phase['phase']}: {phase['seconds']} s, load average "
              f"{phase['load_1min_before']:.2f} -> {phase['load_1min_after']:.2f}, this "
              f"benchmark {phase['own_cpus']} CPUs, other processes {phase['other_cpus']} CPUs")
    if result["disturbed_phases"]:
        print(f"WARNING: other processes used more than {DISTURBED_OTHER_CPU_SHARE:.0%} of the "
              f"CPUs during {', '.join(result['disturbed_phases'])}; rerun on an idle machine "
              "before trusting the pass/fail below")
    for name, check in result["targets"].items():
        print(f"{'PASS' if check['pass'] else 'FAIL'} {name}: {check['value']} "
              f"(target {check['target']})")


def _print_latency(title: str, latency: dict[str, Any]) -> None:
    print(f"{title}: per-turn latency")
    for number in TIMED_TURNS:
        figures = latency[f"turn_{number}"]
        print(f"  turn {number:>2}: p50 {figures['p50_ms']:.2f} ms, p99 {figures['p99_ms']:.2f} "
              f"ms, max {figures['max_ms']:.2f} ms ({figures['samples']} samples, "
              f"{figures['newly_escalated']} escalated at that turn)")
    escalating = latency["escalating_turns"]
    print(f"  p50 turn 50 / turn 5: {latency['p50_ratio_turn_50_to_5']}; "
          f"{latency['conversations_escalated']} conversations escalated, escalating turn p50 "
          f"{escalating['p50_ms']} ms, max {escalating['max_ms']} ms")


def _print_throughput(title: str, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(f"{title} throughput, {row['clients']} client(s): {row['turns_per_second']} "
              f"turns/s ({row['turns']} turns in {row['seconds']} s, "
              f"{row['customer_turn_share']} customer turns)")


def run(plan: RunPlan) -> dict[str, Any]:
    """Run every measurement in order and return all figures."""
    monitor = LoadMonitor()
    started = datetime.now(UTC)
    conversations = load_test_conversations()
    scripts = build_scripts(conversations, plan.samples)

    in_process, product_run, scorer = run_in_process(plan, scripts, monitor)
    http = run_http(plan, scripts, monitor)
    # torch loads last, so its threads and memory cannot disturb the other measurements.
    naive = run_naive(plan, scripts, scorer, product_run, monitor)

    return {
        "benchmark": "service_speed",
        "started_at": started.isoformat(timespec="seconds"),
        "duration_seconds": round((datetime.now(UTC) - started).total_seconds(), 1),
        "command": " ".join([_shown_executable(), "-m", "benchmarks.service_speed",
                             *sys.argv[1:]]),
        "quick": plan.quick,
        "bundle": plan.bundle.name,
        "samples": plan.samples,
        "machine": machine_description(),
        "in_process": in_process,
        "http": http,
        "naive": naive,
        "load": monitor.phases,
        "disturbed_phases": disturbed_phases(monitor.phases),
        "load_average_end": list(os.getloadavg()),
        "targets": check_targets(in_process, http, naive),
    }


def _shown_executable() -> str:
    executable = Path(sys.executable)
    if executable.is_relative_to(REPOSITORY_ROOT):
        return str(executable.relative_to(REPOSITORY_ROOT))
    return str(executable)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark, print the report and the JSON line, and return the exit code."""
    arguments = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Loading a scorer logs at INFO; only this benchmark's progress is wanted here.
    for name in ("serving", "pipelines", "sentence_transformers", "httpx"):
        logging.getLogger(name).setLevel(logging.WARNING)

    try:
        plan = make_plan(arguments)
        logger.info("load average at start: %s", os.getloadavg())
        result = run(plan)
    except (BenchmarkError, EscalationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print_report(result)
    line = json.dumps(result, separators=(",", ":"))
    if arguments.output_json is not None:
        arguments.output_json.parent.mkdir(parents=True, exist_ok=True)
        arguments.output_json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
