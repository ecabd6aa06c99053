"""Tests of the API served by a real uvicorn process, and of the stateless score route."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from serving.auth import generate_api_key
from tests.conftest import REPOSITORY, TrainedBundle

EXAMPLE = REPOSITORY / "data" / "examples" / "conversation.jsonl"


def _example() -> dict:
    return json.loads(EXAMPLE.read_text().splitlines()[0])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _request(port: int, path: str, body: dict | None, key: str | None) -> tuple[int, dict]:
    headers = {"content-type": "application/json"}
    if key is not None:
        headers["X-API-Key"] = key
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode() if body else None,
        headers=headers, method="POST" if body is not None else "GET",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_served_over_real_http(trained_bundle: TrainedBundle, tmp_path: Path) -> None:
    key, digest = generate_api_key()
    port = _free_port()
    environment = {**os.environ, "ESCALATION_API_KEY_HASHES": digest,
                   "DATABASE_URL": f"sqlite:///{tmp_path / 'log.db'}"}
    command = [sys.executable, "-m", "pipelines.cli", "serve", "--bundle",
               str(trained_bundle.path), "--port", str(port)]
    server = subprocess.Popen(command, cwd=REPOSITORY, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(port, server)
        scored = _request(port, "/v1/score", _example(), key)
        unauthorised = _request(port, "/v1/score", _example(), None)
        turn = _request(port, "/v1/conversations/http-1/turns",
                        {"role": "customer", "text": "I need a human, this is urgent"}, key)
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0].decode()

    assert scored[0] == 200
    assert scored[1]["bundle"] == trained_bundle.path.name
    assert unauthorised[0] == 401
    assert turn[0] == 200
    assert turn[1]["status"] == "escalated"
    assert "service stopped" in output
    assert "I need a human" not in output


def _wait_until_ready(port: int, server: subprocess.Popen[bytes], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"server exited early: {server.stdout.read().decode()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"server did not answer on port {port} within {timeout} s")
