"""Tests that serving stays free of training libraries and that nothing phones home."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPOSITORY

FORBIDDEN_AT_SERVING = ("torch", "sklearn", "pandas", "mlflow", "sentence_transformers",
                        "transformers")


def test_scorer_imports_no_training_library() -> None:
    code = (
        "import json, sys\n"
        "import serving.scorer, serving.api\n"
        f"print(json.dumps(sorted(name for name in {FORBIDDEN_AT_SERVING!r} "
        "if name in sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True,
                            text=True, check=True)

    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_importing_serving_disables_telemetry() -> None:
    code = (
        "import json, os\n"
        "import serving\n"
        "print(json.dumps({key: os.environ.get(key) for key in ("
        "'HF_HUB_OFFLINE', 'ORT_DISABLE_TELEMETRY', 'MLFLOW_DISABLE_TELEMETRY')}))\n"
    )
    environment = {key: value for key, value in os.environ.items()
                   if key not in {"HF_HUB_OFFLINE", "ORT_DISABLE_TELEMETRY",
                                  "MLFLOW_DISABLE_TELEMETRY"}}
    result = subprocess.run([sys.executable, "-c", code], cwd=REPOSITORY, capture_output=True,
                            text=True, check=True, env=environment)

    assert json.loads(result.stdout.strip()) == {
        "HF_HUB_OFFLINE": "1", "ORT_DISABLE_TELEMETRY": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def test_network_guard_blocks_outside_hosts() -> None:
    from tests import conftest

    before = len(conftest.blocked_connections())
    with pytest.raises(ConnectionRefusedError, match="blocked"), \
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(("192.0.2.1", 443))
    # The attempt above was intended; remove it so the autouse check passes.
    assert len(conftest.blocked_connections()) == before + 1
    conftest._blocked_connections.pop()


def test_network_guard_allows_loopback() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        with socket.create_connection(server.getsockname(), timeout=5):
            pass


def test_training_and_scoring_stay_on_loopback(trained_bundle: object) -> None:
    """Training, export, MLflow logging and evaluation ran under the guard in the fixture."""
    from tests import conftest

    assert conftest.blocked_connections() == []
