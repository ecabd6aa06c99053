"""Tests of the live service over HTTP: per-turn scoring, escalation, auth, limits, restarts."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.auth import generate_api_key
from serving.notify import verify_signature
from serving.scorer import Scorer
from serving.service import EscalationService
from serving.settings import load_settings
from serving.state import RedisStateStore
from tests.conftest import TrainedBundle

KEY, KEY_HASH = generate_api_key()
HEADERS = {"X-API-Key": KEY}
SECRET = "s" * 32
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def scorer(trained_bundle: TrainedBundle) -> Scorer:
    return Scorer(trained_bundle.path)


def _service(trained_bundle: TrainedBundle, scorer: Scorer, tmp_path: Path,
             **overrides: Any) -> EscalationService:
    settings = load_settings(
        {}, bundle=trained_bundle.path, api_key_hashes=(KEY_HASH,),
        database_url=overrides.pop("database_url", f"sqlite:///{tmp_path / 'log.db'}"),
        **overrides,
    )
    return EscalationService(settings, scorer=scorer)


@pytest.fixture()
def client(trained_bundle: TrainedBundle, scorer: Scorer, tmp_path: Path) -> Iterator[TestClient]:
    service = _service(trained_bundle, scorer, tmp_path)
    with TestClient(create_app(service)) as test_client:
        yield test_client


def _turn(role: str, text: str, **fields: Any) -> dict[str, Any]:
    return {"role": role, "text": text, **fields}


def _post(client: TestClient, conversation_id: str, body: dict[str, Any],
          headers: dict[str, str] = HEADERS) -> Any:
    return client.post(f"/v1/conversations/{conversation_id}/turns", json=body, headers=headers)


# ------------------------------------------------------------------------------- per turn


def test_turn_returns_decision_and_probabilities(client: TestClient) -> None:
    response = _post(client, "c-plain", _turn("customer", "Hi, where is my parcel?"))

    assert response.status_code == 200
    body = response.json()
    assert body["turn_index"] == 0
    assert 0.0 <= body["escalation_probability"] <= 1.0
    assert set(body["sentiment"]) == {"negative", "neutral", "positive"}
    assert body["decision"]["tier"] in {"none", "rapid"}
    assert body["status"] in {"active", "escalated"}


def test_turn_indices_increase(client: TestClient) -> None:
    _post(client, "c-order", _turn("customer", "Hello"))
    response = _post(client, "c-order", _turn("assistant", "Hi! How can I help?",
                                               confidence=0.95))

    assert response.json()["turn_index"] == 1
    assert response.json()["sentiment"] is None


def test_urgent_request_escalates_with_routing(client: TestClient) -> None:
    first = _post(client, "c-urgent", {
        **_turn("customer", "This is urgent: I was charged twice and need a refund today"),
        "customer": {"customer_id": "cus_1", "name": "Ada", "vip": False},
    })
    body = first.json()

    assert body["decision"]["tier"] == "immediate"
    assert body["status"] == "escalated"
    assert body["newly_escalated"] is True
    assert body["routing"]["status"] in {"assigned", "queued"}
    assert body["handoff_url"] == "/v1/conversations/c-urgent/handoff"
    assert body["sla_deadline"] is not None
    assert body["customer_messages"]["escalation_notice"]
    assert {reason["code"] for reason in body["decision"]["reasons"]} >= {
        "urgent_keyword", "billing_dispute"}


def test_handoff_package_json_and_text(client: TestClient) -> None:
    _post(client, "c-package", _turn("customer", "Error 504 when I pay, order #A12345. Urgent!"))

    package = client.get("/v1/conversations/c-package/handoff", headers=HEADERS)
    text = client.get("/v1/conversations/c-package/handoff?format=text", headers=HEADERS)

    assert package.status_code == 200
    assert package.json()["conversation_id"] == "c-package"
    assert text.status_code == 200
    assert "c-package" in text.text or "immediate" in text.text.lower()


def test_get_conversation_summary(client: TestClient) -> None:
    _post(client, "c-summary", _turn("customer", "Hello there"))

    response = client.get("/v1/conversations/c-summary", headers=HEADERS)

    assert response.status_code == 200
    assert response.json()["turn_count"] == 1
    assert len(response.json()["history"]) == 1


def test_unknown_conversation_is_404(client: TestClient) -> None:
    response = client.get("/v1/conversations/nobody", headers=HEADERS)

    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_closed_conversation_rejects_turns(client: TestClient) -> None:
    _post(client, "c-closed", _turn("customer", "Thanks, bye"))
    assert client.post("/v1/conversations/c-closed/close", headers=HEADERS).status_code == 200

    response = _post(client, "c-closed", _turn("customer", "One more thing"))

    assert response.status_code == 409
    assert "closed" in response.json()["detail"]


def test_outcome_is_recorded(client: TestClient) -> None:
    _post(client, "c-outcome", _turn("customer", "I want to talk to a human"))

    response = client.post("/v1/conversations/c-outcome/outcome", headers=HEADERS,
                           json={"escalated": True, "resolved": True, "csat": 4,
                                 "handle_seconds": 240})

    assert response.status_code == 200
    service: EscalationService = client.app.state.service
    assert service.log.outcome_for("c-outcome").csat == 4


def test_escalate_moves_one_level_up(client: TestClient) -> None:
    _post(client, "c-level", _turn("customer", "The app crashes with error code E42, urgent"))

    response = client.post("/v1/conversations/c-level/escalate", headers=HEADERS)

    assert response.status_code == 200
    assert response.json()["level"] in {"L2", "L3", "L4", 2, 3, 4}


def test_stateless_score_still_works(client: TestClient) -> None:
    conversation = {"id": "stateless", "turns": [_turn("customer", "Where is my order?")]}

    response = client.post("/v1/score", json=conversation, headers=HEADERS)

    assert response.status_code == 200
    assert response.json()["conversation_id"] == "stateless"


def test_prediction_log_has_every_turn(client: TestClient) -> None:
    _post(client, "c-log", _turn("customer", "Hello"))
    _post(client, "c-log", _turn("assistant", "Hi", confidence=0.9))
    service: EscalationService = client.app.state.service

    turns = service.log.turns_for("c-log")

    assert [turn.turn_index for turn in turns] == [0, 1]
    assert turns[0].text == "Hello"


# ------------------------------------------------------------------------ auth and limits


def test_missing_key_is_401(client: TestClient) -> None:
    response = _post(client, "c-auth", _turn("customer", "hi"), headers={})

    assert response.status_code == 401


def test_wrong_key_is_401(client: TestClient) -> None:
    response = _post(client, "c-auth", _turn("customer", "hi"), headers={"X-API-Key": "nope"})

    assert response.status_code == 401


def test_bearer_key_accepted(client: TestClient) -> None:
    response = _post(client, "c-bearer", _turn("customer", "hi"),
                     headers={"Authorization": f"Bearer {KEY}"})

    assert response.status_code == 200


def test_probes_need_no_key(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    assert b"escalation_request_seconds" in client.get("/metrics").content


def test_unknown_field_named(client: TestClient) -> None:
    response = _post(client, "c-field", {**_turn("customer", "hi"), "mood": "angry"})

    assert response.status_code == 422
    assert "mood" in json.dumps(response.json())


def test_text_over_limit_names_limit(client: TestClient) -> None:
    response = _post(client, "c-long", _turn("customer", "x" * 8_001))

    assert response.status_code == 422
    assert "8000" in json.dumps(response.json())


def test_body_over_limit_is_413(trained_bundle: TrainedBundle, scorer: Scorer,
                                tmp_path: Path) -> None:
    service = _service(trained_bundle, scorer, tmp_path, max_body_bytes=2_048)
    with TestClient(create_app(service)) as small:
        response = _post(small, "c-big", _turn("customer", "y" * 4_000))

    assert response.status_code == 413
    assert "2048 bytes" in response.json()["detail"]


def test_turn_limit_names_limit(trained_bundle: TrainedBundle, scorer: Scorer,
                                tmp_path: Path) -> None:
    service = _service(trained_bundle, scorer, tmp_path, max_turns=2)
    with TestClient(create_app(service)) as small:
        _post(small, "c-many", _turn("customer", "one"))
        _post(small, "c-many", _turn("customer", "two"))
        response = _post(small, "c-many", _turn("customer", "three"))

    assert response.status_code == 422
    assert "limit of 2 turns" in response.json()["detail"]


def test_timestamp_going_backwards_rejected(client: TestClient) -> None:
    _post(client, "c-time", _turn("customer", "a", timestamp="2026-01-01T10:00:00Z"))
    response = _post(client, "c-time", _turn("customer", "b", timestamp="2026-01-01T09:00:00Z"))

    assert response.status_code == 409
    assert "timestamp" in response.json()["detail"]


def test_settings_without_key_refused() -> None:
    from serving.errors import SettingsError

    with pytest.raises(SettingsError, match="ESCALATION_API_KEY_HASHES"):
        load_settings({})


# ---------------------------------------------------------------- restarts and shared state


def test_restarted_worker_rescores_stored_turns(trained_bundle: TrainedBundle, scorer: Scorer,
                                                tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    with TestClient(create_app(_service(trained_bundle, scorer, tmp_path,
                                        database_url=database))) as first:
        _post(first, "c-restart", _turn("customer", "My invoice is wrong"))
        expected = _post(first, "c-restart", _turn("customer", "It is still wrong")).json()

    with TestClient(create_app(_service(trained_bundle, scorer, tmp_path,
                                        database_url=database))) as second:
        summary = second.get("/v1/conversations/c-restart", headers=HEADERS).json()
        assert summary["turn_count"] == 2
        assert summary["escalation_probability"] == pytest.approx(
            expected["escalation_probability"], abs=1e-6)


def _redis_available() -> bool:
    return RedisStateStore(REDIS_URL).ping()


@pytest.mark.skipif(not _redis_available(), reason="no Redis at 127.0.0.1:6379")
def test_two_workers_share_state_through_redis(trained_bundle: TrainedBundle, scorer: Scorer,
                                               tmp_path: Path) -> None:
    conversation_id = f"c-redis-{uuid.uuid4().hex}"
    options = {"redis_url": REDIS_URL, "database_url": f"sqlite:///{tmp_path / 'r.db'}"}
    first = _service(trained_bundle, scorer, tmp_path, **options)
    second = _service(trained_bundle, scorer, tmp_path, **options)
    try:
        with TestClient(create_app(first)) as one, TestClient(create_app(second)) as two:
            _post(one, conversation_id, _turn("customer", "Hello, my router is broken"))
            response = _post(two, conversation_id, _turn("customer", "It keeps rebooting"))
            assert response.json()["turn_index"] == 1
            assert len(response.json()["rule_matches"]) >= 0
    finally:
        first.store.delete(conversation_id)


def _postgres_available() -> bool:
    from sqlalchemy import create_engine, text

    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:  # noqa: BLE001 - any failure means unavailable
        return False


@pytest.mark.skipif(not _postgres_available(), reason="no PostgreSQL at 127.0.0.1:5432")
def test_service_logs_to_postgres(trained_bundle: TrainedBundle, scorer: Scorer,
                                  tmp_path: Path) -> None:
    conversation_id = f"c-pg-{uuid.uuid4().hex}"
    service = _service(trained_bundle, scorer, tmp_path, database_url=POSTGRES_URL)
    with TestClient(create_app(service)) as client:
        _post(client, conversation_id, _turn("customer", "Urgent: refund me"))

    turns = service.log.turns_for(conversation_id)
    assert len(turns) == 1
    assert turns[0].tier.value == "immediate"


# --------------------------------------------------------------------------- webhooks


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802 - the http.server hook name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_escalation_sends_signed_webhook(trained_bundle: TrainedBundle, scorer: Scorer,
                                         tmp_path: Path) -> None:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    try:
        service = _service(trained_bundle, scorer, tmp_path, webhook_urls=(url,),
                           webhook_secret=SECRET, webhook_base_delay_seconds=0.05)
        with TestClient(create_app(service)) as client:
            _post(client, "c-hook", _turn("customer", "Emergency! I need a manager now"))
        # Shutdown flushes the outbox, so the event has arrived by now.
    finally:
        server.shutdown()

    assert len(_Receiver.received) == 1
    headers, body = _Receiver.received[0]
    signature = headers.get("X-Escalation-Signature") or headers.get("x-escalation-signature")
    verify_signature(SECRET, signature, body)
    event = json.loads(body)
    assert event["type"] == "conversation.escalated"
    assert event["conversation_id"] == "c-hook"
    assert event["data"]["package"]["conversation_id"] == "c-hook"


# ---------------------------------------------------------------------------- reload


def test_reload_under_concurrent_requests(trained_bundle: TrainedBundle, scorer: Scorer,
                                          tmp_path: Path) -> None:
    service = _service(trained_bundle, scorer, tmp_path)
    failures: list[int] = []
    with TestClient(create_app(service)) as client:
        def send(worker: int) -> None:
            for index in range(6):
                response = _post(client, f"c-reload-{worker}",
                                 _turn("customer", f"message {index} about my bill"))
                if response.status_code != 200:
                    failures.append(response.status_code)

        threads = [threading.Thread(target=send, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        reloaded = client.post("/v1/admin/reload", headers=HEADERS,
                               json={"bundle": str(trained_bundle.path)})
        for thread in threads:
            thread.join()

    assert reloaded.status_code == 200
    assert failures == []


# ------------------------------------------------------------------ review regressions


def test_turn_before_started_at_rejected(client: TestClient) -> None:
    response = _post(client, "c-start", {
        **_turn("customer", "I was charged twice", timestamp="2024-01-01T00:00:00Z"),
        "started_at": "2025-01-01T00:00:00Z",
    })

    assert response.status_code == 409
    assert "'started_at'" in response.json()["detail"]


def test_closed_status_survives_restart(trained_bundle: TrainedBundle, scorer: Scorer,
                                        tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'closed.db'}"
    with TestClient(create_app(_service(trained_bundle, scorer, tmp_path,
                                        database_url=database))) as first:
        _post(first, "c-closed-restart", _turn("customer", "Thanks, all good"))
        first.post("/v1/conversations/c-closed-restart/close", headers=HEADERS)

    with TestClient(create_app(_service(trained_bundle, scorer, tmp_path,
                                        database_url=database))) as second:
        response = _post(second, "c-closed-restart", _turn("customer", "Hello again"))

    assert response.status_code == 409


def test_escalation_survives_restart(trained_bundle: TrainedBundle, scorer: Scorer,
                                     tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'escalated.db'}"
    with TestClient(create_app(_service(trained_bundle, scorer, tmp_path,
                                        database_url=database))) as first:
        _post(first, "c-esc-restart", _turn("customer", "Urgent: I need a refund now"))

    with TestClient(create_app(_service(trained_bundle, scorer, tmp_path,
                                        database_url=database))) as second:
        summary = second.get("/v1/conversations/c-esc-restart", headers=HEADERS).json()
        moved = second.post("/v1/conversations/c-esc-restart/escalate", headers=HEADERS)

    assert summary["status"] == "escalated"
    assert summary["routing"] is not None
    assert summary["handoff_url"] == "/v1/conversations/c-esc-restart/handoff"
    assert moved.status_code == 200


def test_package_rebuilt_when_tier_rises(client: TestClient) -> None:
    _post(client, "c-rise", {**_turn("customer", "Hi, a question about my plan"),
                             "customer": {"vip": True}})
    before = client.get("/v1/conversations/c-rise/handoff", headers=HEADERS).json()
    _post(client, "c-rise", _turn("customer", "This is urgent, I need a manager now!"))
    after = client.get("/v1/conversations/c-rise/handoff", headers=HEADERS).json()

    assert before["urgency"]["tier"] == "scheduled"
    assert after["urgency"]["tier"] == "immediate"
    assert after["package_id"] != before["package_id"]


def test_reload_rejects_bad_body(client: TestClient) -> None:
    wrong_type = client.post("/v1/admin/reload", headers=HEADERS, json={"bundle": 5})
    typo = client.post("/v1/admin/reload", headers=HEADERS, json={"bundel": "/x"})
    missing = client.post("/v1/admin/reload", headers=HEADERS, json={"bundle": "/no/bundle"})

    assert wrong_type.status_code == 422
    assert typo.status_code == 422
    assert "bundel" in json.dumps(typo.json())
    assert missing.status_code == 422
    assert "stays in use" in missing.json()["detail"]


def test_chunked_body_over_limit_is_413(trained_bundle: TrainedBundle, scorer: Scorer,
                                        tmp_path: Path) -> None:
    service = _service(trained_bundle, scorer, tmp_path, max_body_bytes=2_048)
    payload = json.dumps(_turn("customer", "z" * 4_000)).encode()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(payload), 512):
            yield payload[start:start + 512]

    with TestClient(create_app(service)) as small:
        response = small.post("/v1/conversations/c-chunked/turns", content=chunks(),
                              headers={**HEADERS, "content-type": "application/json"})

    assert response.status_code == 413


def test_invalid_value_is_echoed(client: TestClient) -> None:
    response = _post(client, "c-role", _turn("bot", "hello"))

    assert response.status_code == 422
    assert "'bot'" in json.dumps(response.json())


def test_unreachable_redis_is_503(trained_bundle: TrainedBundle, scorer: Scorer,
                                  tmp_path: Path) -> None:
    service = _service(trained_bundle, scorer, tmp_path, redis_url="redis://127.0.0.1:1/0")
    with TestClient(create_app(service)) as client:
        response = _post(client, "c-redis-down", _turn("customer", "hello"))
        ready = client.get("/readyz")

    assert response.status_code == 503
    assert "REDIS_URL" in response.json()["detail"]
    assert ready.status_code == 503
