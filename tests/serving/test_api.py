"""Tests of the HTTP API against a real bundle, in process and through a real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.scorer import Scorer
from tests.conftest import REPOSITORY, TrainedBundle

EXAMPLE = REPOSITORY / "data" / "examples" / "conversation.jsonl"


@pytest.fixture(scope="module")
def client(trained_bundle: TrainedBundle) -> TestClient:
    return TestClient(create_app(Scorer(trained_bundle.path)))


def _example() -> dict:
    return json.loads(EXAMPLE.read_text().splitlines()[0])


def test_healthz_names_bundle(client: TestClient, trained_bundle: TrainedBundle) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "bundle": trained_bundle.path.name}


def test_score_returns_decision(client: TestClient) -> None:
    response = client.post("/v1/score", json=_example())

    assert response.status_code == 200
    body = response.json()
    assert body["conversation_id"] == _example()["id"]
    assert body["decision"]["tier"] in {"immediate", "rapid", "scheduled", "none"}
    assert body["turns"][0]["rule_matches"] is not None


def test_invalid_conversation_names_turn_and_field(client: TestClient) -> None:
    conversation = _example()
    conversation["turns"][1]["role"] = "bot"

    response = client.post("/v1/score", json=conversation)

    assert response.status_code == 422
    assert "turn 1, field 'role'" in response.json()["detail"][0]


def test_non_object_body_rejected(client: TestClient) -> None:
    response = client.post("/v1/score", json=[1, 2])

    assert response.status_code == 422


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_served_over_real_http(trained_bundle: TrainedBundle) -> None:
    port = _free_port()
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--bundle",
               str(trained_bundle.path), "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPOSITORY, env=dict(os.environ),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until_up(port, server)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/score", data=json.dumps(_example()).encode(),
            headers={"content-type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    finally:
        server.terminate()
        output = server.communicate(timeout=30)[0].decode()

    assert body["bundle"] == trained_bundle.path.name
    assert len(body["turns"]) >= 1
    assert "service stopped" in output


def _wait_until_up(port: int, server: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited early: {server.stdout.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"server did not answer on port {port} within {timeout} s")
