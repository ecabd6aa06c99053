"""Shared fixtures: offline switches, a loopback-only network guard, and a small real bundle."""

from __future__ import annotations

import os

# Set before any test module imports onnxruntime, MLflow or the Hugging Face libraries.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "1"

import ipaddress  # noqa: E402
import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import pytest  # noqa: E402

REPOSITORY = Path(__file__).resolve().parent.parent
ARTIFACTS_DIR = REPOSITORY / "test-artifacts"

# ----------------------------------------------------------------------------- network guard

_blocked_connections: list[str] = []
_original_connect = socket.socket.connect
_original_connect_ex = socket.socket.connect_ex
_original_getaddrinfo = socket.getaddrinfo
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"}


def _is_loopback_host(host: Any) -> bool:
    if host is None:
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in LOOPBACK_NAMES or text == "":
        return True
    try:
        return ipaddress.ip_address(text.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check_address(family: int, address: Any) -> None:
    if family == getattr(socket, "AF_UNIX", None):
        return
    host = address[0] if isinstance(address, tuple) else address
    if not _is_loopback_host(host):
        _blocked_connections.append(f"{host!r}")
        raise ConnectionRefusedError(
            f"test network guard: connection to {host!r} blocked; the product must only talk "
            "to loopback"
        )


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    _check_address(self.family, address)
    return _original_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    _check_address(self.family, address)
    return _original_connect_ex(self, address)


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _is_loopback_host(host):
        _blocked_connections.append(f"lookup of {host!r}")
        raise socket.gaierror(f"test network guard: name lookup of {host!r} blocked")
    return _original_getaddrinfo(host, *args, **kwargs)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]
socket.getaddrinfo = _guarded_getaddrinfo


@pytest.fixture(autouse=True)
def _no_outside_network() -> Iterator[None]:
    """Fail any test during which code tried to reach a host other than loopback."""
    before = len(_blocked_connections)
    yield
    attempts = _blocked_connections[before:]
    assert not attempts, f"code under test tried to reach the network: {attempts}"


def blocked_connections() -> list[str]:
    """Return every blocked connection or lookup so far in this test session."""
    return list(_blocked_connections)


# ------------------------------------------------------------------------------ real bundle


@dataclass(frozen=True)
class TrainedBundle:
    """A bundle trained on a small real subset, with the MLflow store it was logged to."""

    path: Path
    tracking_uri: str
    run_id: str
    model_version: str
    metrics: dict[str, Any]
    work_dir: Path


SMALL_CAPS = {
    "messages": {"train": 3_000, "validation": 800, "test": 800},
    "conversations": {"train": 300, "validation": 80, "test": 60},
}


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Export the real MiniLM encoder (fp32 and int8) once per test session."""
    from pipelines.export.encoder_cache import prepare_encoder

    folder = tmp_path_factory.mktemp("work") / "encoder"
    prepare_encoder(folder, "int8", 256)
    return folder


@pytest.fixture(scope="session")
def trained_bundle(
    tmp_path_factory: pytest.TempPathFactory, encoder_dir: Path
) -> Iterator[TrainedBundle]:
    """Train, export, evaluate and register a bundle on a small real subset of the corpora."""
    yield from _train_small_bundle(tmp_path_factory, encoder_dir.parent, "minilm")


@pytest.fixture(scope="session")
def trained_tokens_bundle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainedBundle]:
    """The same small bundle with the language-agnostic token encoder instead of MiniLM."""
    work_dir = tmp_path_factory.mktemp("tokens-work")
    yield from _train_small_bundle(tmp_path_factory, work_dir, "tokens")


def _train_small_bundle(tmp_path_factory: pytest.TempPathFactory, work_dir: Path,
                        encoder_kind: str) -> Iterator[TrainedBundle]:
    from pipelines.train.config import load_train_config
    from pipelines.train.data import load_training_data
    from pipelines.train.run import TrainingData, train

    suffix = "" if encoder_kind == "minilm" else f"-{encoder_kind}"
    root = tmp_path_factory.mktemp(f"training-{encoder_kind}")
    tracking_uri = f"sqlite:///{root / 'mlflow.db'}"
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri

    config = load_train_config()
    config = config.model_validate({
        **config.model_dump(),
        "encoder": {**config.encoder.model_dump(), "kind": encoder_kind},
        "sentiment": {"c_grid": [2.0], "calibration_folds": 3, "max_train_examples": 0},
        "frustration": {"c_grid": [2.0], "calibration_folds": 3, "max_train_examples": 0},
        "escalation": {**config.escalation.model_dump(), "c_grid": [0.05],
                       "calibration_folds": 3},
        "mlflow": {"experiment": "tests", "registered_model": f"escalation-tests{suffix}"},
    })
    full = load_training_data(seed=config.seed)
    data = TrainingData(
        messages={role: rows[: SMALL_CAPS["messages"][role]]
                  for role, rows in full.messages.items()},
        conversations={role: rows[: SMALL_CAPS["conversations"][role]]
                       for role, rows in full.conversations.items()},
        fingerprint=full.fingerprint,
    )
    result = train(config, data, models_dir=root / "models", work_dir=work_dir,
                   bundle_name=f"escalation-test{suffix}")
    try:
        yield TrainedBundle(result.bundle_dir, tracking_uri, result.run_id,
                            result.model_version, result.metrics, work_dir)
    finally:
        if previous is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = previous
