"""Tests of webhook signing and of outbox delivery to a real HTTP receiver on 127.0.0.1."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import Engine

from serving.errors import SignatureError, WebhookConfigError
from serving.notify import (
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    EventType,
    OutboxWorker,
    RetryPolicy,
    WebhookSettings,
    enqueue_notification,
    signature_header,
    verify_signature,
)
from serving.store import OutboxEvent, PredictionLog, create_store_engine, upgrade_database
from tests.serving.test_store import BACKENDS, empty_database

SECRET = "test-secret-0123456789abcdef"
BODY = '{"id":"k-1","type":"conversation.escalated","data":{"tier":"immediate"}}'
# Tiny waits keep retries within milliseconds; the worker code path is the production one.
FAST_RETRY = RetryPolicy(base_delay_seconds=0.02, factor=2.0, max_delay_seconds=0.1,
                         max_attempts=20, jitter=0.0)
WAIT_SECONDS = 10.0


# ------------------------------------------------------------------------------ receiver


@dataclass(frozen=True)
class Request:
    """One POST the receiver got, with the status of its response."""

    idempotency_key: str
    body: bytes
    signature_valid: bool
    status: int


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 that records each POST and responds with `status_for(n)`.

    `n` counts requests from 0. Signatures are checked as a real receiver would, with
    `verify_signature` on the raw body.
    """

    def __init__(self, port: int = 0, status_for: Callable[[int], int] = lambda n: 200) -> None:
        self.status_for = status_for
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        # A short poll interval lets shutdown() return quickly instead of after 0.5 s.
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/escalation?token=private"

    def start(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def accepted(self) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if 200 <= request.status < 300]

    def _record(self, key: str, body: bytes, signature: str) -> int:
        try:
            verify_signature(SECRET, signature, body)
            valid = True
        except SignatureError:
            valid = False
        with self._lock:
            status = self.status_for(len(self.requests))
            self.requests.append(Request(key, body, valid, status))
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - name fixed by http.server
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver._record(self.headers.get(IDEMPOTENCY_HEADER, ""), body,
                                          self.headers.get(SIGNATURE_HEADER, ""))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


def free_port() -> int:
    """Return a loopback port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A receiver that accepts every request."""
    server = WebhookReceiver().start()
    yield server
    server.stop()


# ------------------------------------------------------------------------------ database


@pytest.fixture(params=BACKENDS)
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a migrated database on each backend."""
    with empty_database(request.param, tmp_path) as url:
        upgrade_database(url)
        yield url


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    store_engine = create_store_engine(database)
    yield store_engine
    store_engine.dispose()


@pytest.fixture
def log(engine: Engine) -> PredictionLog:
    return PredictionLog(engine)


def settings(url: str, retry: RetryPolicy = FAST_RETRY, poll: float = 0.01) -> WebhookSettings:
    return WebhookSettings(urls=(url,), secret=SECRET, timeout_seconds=2.0, retry=retry,
                           poll_interval_seconds=poll, batch_size=10, lease_seconds=60.0)


def enqueue(log: PredictionLog, url: str, count: int) -> list[str]:
    event_ids: list[str] = []
    for number in range(count):
        event_ids += enqueue_notification(log, EventType.ESCALATED, f"conv-{number}",
                                          {"package": {"number": number}}, [url])
    return event_ids


def run_until_settled(worker: OutboxWorker, log: PredictionLog) -> None:
    """Call run_once until no event is pending, failing after WAIT_SECONDS."""
    deadline = time.monotonic() + WAIT_SECONDS
    while log.pending_count() and time.monotonic() < deadline:
        if worker.run_once() == 0:
            time.sleep(0.01)
    assert log.pending_count() == 0, "events still pending after the wait"


def stored_event(log: PredictionLog, event_id: str) -> OutboxEvent:
    event = log.event(event_id)
    if event is None:
        raise AssertionError(f"event {event_id} not found in the outbox")
    return event


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition(), "condition not reached within the wait"


# ------------------------------------------------------------------------------ signing


def test_signature_round_trip() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)

    assert verify_signature(SECRET, header, BODY.encode(), now=1_700_000_010) == 1_700_000_000


def test_signature_header_format() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)

    timestamp, signature = header.split(",")
    assert timestamp == "t=1700000000"
    assert signature.startswith("v1=")
    assert len(signature) == len("v1=") + 64


def test_signature_tampered_body_rejected() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    tampered = BODY.replace("immediate", "scheduled")

    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify_signature(SECRET, header, tampered, now=1_700_000_000)


def test_signature_old_timestamp_rejected() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)

    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(SECRET, header, BODY, now=1_700_000_000 + 301)


def test_signature_future_timestamp_rejected() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)

    with pytest.raises(SignatureError, match="tolerance"):
        verify_signature(SECRET, header, BODY, now=1_700_000_000 - 301)


def test_signature_wrong_secret_rejected() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)

    with pytest.raises(SignatureError):
        verify_signature("another-secret-0123456789", header, BODY, now=1_700_000_000)


def test_signature_timestamp_is_signed() -> None:
    header = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    moved = header.replace("t=1700000000", "t=1700000100")

    with pytest.raises(SignatureError, match="no v1 signature matches"):
        verify_signature(SECRET, moved, BODY, now=1_700_000_100)


@pytest.mark.parametrize("header", ["", "v1=abc", "t=abc,v1=abc", "t=1,t=2,v1=abc", "t=1"])
def test_signature_malformed_header_rejected(header: str) -> None:
    with pytest.raises(SignatureError, match="malformed"):
        verify_signature(SECRET, header, BODY, now=1)


def test_signature_accepts_any_of_rotated_secrets() -> None:
    old = signature_header("old-secret-0123456789abcdef", BODY, timestamp=1_700_000_000)
    new = signature_header(SECRET, BODY, timestamp=1_700_000_000)
    both = f"{old},{new.split(',')[1]}"

    assert verify_signature(SECRET, both, BODY, now=1_700_000_000) == 1_700_000_000


# ------------------------------------------------------------------------------ settings


def test_retry_delays_grow_then_cap() -> None:
    policy = RetryPolicy(base_delay_seconds=1.0, factor=2.0, max_delay_seconds=10.0, jitter=0.0)

    delays = [policy.delay_seconds(attempt) for attempt in range(1, 7)]

    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_retry_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(base_delay_seconds=8.0, factor=2.0, max_delay_seconds=8.0, jitter=0.25)
    rng = random.Random(7)

    delays = [policy.delay_seconds(1, rng) for _ in range(200)]

    assert min(delays) >= 6.0
    assert max(delays) <= 8.0
    assert len(set(delays)) > 100


@pytest.mark.parametrize("fields", [
    {"base_delay_seconds": -1.0},
    {"factor": 0.5},
    {"max_attempts": 0},
    {"jitter": 1.5},
    {"base_delay_seconds": 10.0, "max_delay_seconds": 5.0},
])
def test_retry_policy_invalid_rejected(fields: dict[str, float]) -> None:
    with pytest.raises(WebhookConfigError, match="retry"):
        RetryPolicy(**fields)  # type: ignore[arg-type]


def test_settings_short_secret_rejected() -> None:
    with pytest.raises(WebhookConfigError, match="secret"):
        WebhookSettings(urls=("http://127.0.0.1:9/a",), secret="short")


def test_settings_non_http_url_rejected() -> None:
    with pytest.raises(WebhookConfigError, match="urls"):
        WebhookSettings(urls=("ftp://127.0.0.1/a",), secret=SECRET)


def test_settings_lease_shorter_than_batch_rejected() -> None:
    with pytest.raises(WebhookConfigError, match="lease_seconds"):
        WebhookSettings(urls=(), secret=SECRET, timeout_seconds=10.0, batch_size=10,
                        lease_seconds=60.0)


def test_settings_repr_hides_secret() -> None:
    assert SECRET not in repr(WebhookSettings(urls=(), secret=SECRET))


# ------------------------------------------------------------------------------ enqueue


def test_enqueue_body_envelope(log: PredictionLog) -> None:
    occurred = datetime(2025, 4, 1, 9, 0, tzinfo=UTC)

    [event_id] = enqueue_notification(log, "conversation.rerouted", "conv-env",
                                      {"team": "billing"}, ["http://127.0.0.1:9/a"],
                                      idempotency_key="key-env", occurred_at=occurred)

    event = stored_event(log, event_id)
    assert json.loads(event.body) == {"id": "key-env", "type": "conversation.rerouted",
                                      "conversation_id": "conv-env",
                                      "occurred_at": "2025-04-01T09:00:00+00:00",
                                      "data": {"team": "billing"}}


def test_enqueue_unknown_event_type_rejected(log: PredictionLog) -> None:
    with pytest.raises(ValueError, match="conversation.escalated"):
        enqueue_notification(log, "conversation.closed", "conv-x", {}, ["http://127.0.0.1:9/a"])


def test_enqueue_without_urls_writes_nothing(log: PredictionLog) -> None:
    assert enqueue_notification(log, EventType.ESCALATED, "conv-x", {}, []) == []
    assert log.pending_count() == 0


def test_worker_requires_secret(log: PredictionLog) -> None:
    with pytest.raises(WebhookConfigError, match="secret"):
        OutboxWorker(log, WebhookSettings(urls=(), secret=""))


# ------------------------------------------------------------------------------ delivery


def test_delivery_signed_with_stable_key(log: PredictionLog, receiver: WebhookReceiver) -> None:
    [event_id] = enqueue(log, receiver.url, 1)
    worker = OutboxWorker(log, settings(receiver.url))

    assert worker.run_once() == 1
    worker.stop(flush=False)

    [request] = receiver.requests
    event = stored_event(log, event_id)
    assert request.signature_valid
    assert request.idempotency_key == event.idempotency_key
    assert request.body == event.body.encode()
    assert event.status == "delivered"
    assert event.last_status_code == 200


def test_receiver_down_then_up_gets_each_event_once(log: PredictionLog) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    event_ids = enqueue(log, url, 5)
    worker = OutboxWorker(log, settings(url))
    worker.start()
    wait_for(lambda: all(stored_event(log, event_id).attempts >= 2
                         for event_id in event_ids))
    receiver = WebhookReceiver(port=port).start()
    try:
        wait_for(lambda: log.pending_count() == 0)
        worker.stop(flush=True, timeout=5)
    finally:
        receiver.stop()

    accepted = receiver.accepted()
    assert len(accepted) == 5
    assert len({request.idempotency_key for request in accepted}) == 5
    assert all(request.signature_valid for request in accepted)
    assert {stored_event(log, event_id).status for event_id in event_ids} == {"delivered"}


def test_unavailable_receiver_retried_until_delivered(log: PredictionLog) -> None:
    receiver = WebhookReceiver(status_for=lambda n: 503 if n < 2 else 200).start()
    try:
        [event_id] = enqueue(log, receiver.url, 1)
        run_until_settled(OutboxWorker(log, settings(receiver.url)), log)
    finally:
        receiver.stop()

    event = stored_event(log, event_id)
    assert [request.status for request in receiver.requests] == [503, 503, 200]
    assert len({request.idempotency_key for request in receiver.requests}) == 1
    assert event.attempts == 3
    assert event.status == "delivered"


def test_failing_receiver_leads_to_dead_letter(log: PredictionLog) -> None:
    receiver = WebhookReceiver(status_for=lambda n: 500).start()
    retry = RetryPolicy(base_delay_seconds=0.01, max_delay_seconds=0.02, max_attempts=3,
                        jitter=0.0)
    try:
        [event_id] = enqueue(log, receiver.url, 1)
        run_until_settled(OutboxWorker(log, settings(receiver.url, retry)), log)
    finally:
        receiver.stop()

    [letter] = log.dead_letters()
    assert len(receiver.requests) == 3
    assert letter.event_id == event_id
    assert letter.attempts == 3
    assert letter.status_code == 500
    assert letter.error.startswith("HTTP 500")


@pytest.mark.parametrize("status", [400, 404, 410])
def test_client_error_is_dead_at_once(log: PredictionLog, status: int) -> None:
    receiver = WebhookReceiver(status_for=lambda n: status).start()
    try:
        enqueue(log, receiver.url, 1)
        run_until_settled(OutboxWorker(log, settings(receiver.url)), log)
    finally:
        receiver.stop()

    [letter] = log.dead_letters()
    assert len(receiver.requests) == 1
    assert letter.attempts == 1
    assert letter.status_code == status


@pytest.mark.parametrize("status", [408, 429])
def test_timeout_and_rate_limit_statuses_retried(log: PredictionLog, status: int) -> None:
    receiver = WebhookReceiver(status_for=lambda n: status if n == 0 else 200).start()
    try:
        enqueue(log, receiver.url, 1)
        run_until_settled(OutboxWorker(log, settings(receiver.url)), log)
    finally:
        receiver.stop()

    assert [request.status for request in receiver.requests] == [status, 200]
    assert log.dead_letters() == []


def test_connection_refused_error_recorded(log: PredictionLog) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    [event_id] = enqueue(log, url, 1)
    worker = OutboxWorker(log, settings(url))

    worker.run_once()
    worker.stop(flush=False)

    event = stored_event(log, event_id)
    assert event.status == "pending"
    assert event.last_error is not None
    assert "ConnectError" in event.last_error


def test_restart_delivers_events_left_pending(database: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    first_engine = create_store_engine(database)
    first_log = PredictionLog(first_engine)
    enqueue(first_log, url, 3)
    first_worker = OutboxWorker(first_log, settings(url))
    first_worker.run_once()
    first_worker.stop(flush=False)
    first_engine.dispose()

    receiver = WebhookReceiver(port=port).start()
    second_engine = create_store_engine(database)
    try:
        second_log = PredictionLog(second_engine)
        pending_before = second_log.pending_count()
        run_until_settled(OutboxWorker(second_log, settings(url)), second_log)
    finally:
        second_engine.dispose()
        receiver.stop()

    accepted = receiver.accepted()
    assert first_worker.retry_count == 3
    assert pending_before == 3
    assert len(accepted) == 3
    assert len({request.idempotency_key for request in accepted}) == 3
    assert sorted(json.loads(request.body)["conversation_id"] for request in accepted) == [
        "conv-0", "conv-1", "conv-2"]


def test_stop_with_flush_delivers_due_events(log: PredictionLog,
                                             receiver: WebhookReceiver) -> None:
    worker = OutboxWorker(log, settings(receiver.url, poll=30.0))
    worker.start()
    # Let the first poll find an empty outbox, so the thread sleeps through the enqueue.
    time.sleep(0.2)
    enqueue(log, receiver.url, 4)

    started = time.monotonic()
    worker.stop(flush=True, timeout=10)

    assert len(receiver.accepted()) == 4
    assert log.pending_count() == 0
    assert time.monotonic() - started < 5
    assert not worker.running


def test_stop_without_flush_leaves_events_pending(log: PredictionLog,
                                                  receiver: WebhookReceiver) -> None:
    worker = OutboxWorker(log, settings(receiver.url, poll=30.0))
    worker.start()
    time.sleep(0.2)
    enqueue(log, receiver.url, 2)

    worker.stop(flush=False, timeout=10)

    assert receiver.requests == []
    assert log.pending_count() == 2


def test_background_worker_delivers(log: PredictionLog, receiver: WebhookReceiver) -> None:
    worker = OutboxWorker(log, settings(receiver.url))
    worker.start()
    try:
        enqueue(log, receiver.url, 3)
        wait_for(lambda: len(receiver.accepted()) == 3)
    finally:
        worker.stop(flush=True, timeout=5)

    assert worker.delivered_count == 3
    assert log.pending_count() == 0


def test_worker_cannot_restart_after_stop(log: PredictionLog) -> None:
    worker = OutboxWorker(log, settings("http://127.0.0.1:9/a"))
    worker.start()
    worker.stop(flush=False)

    with pytest.raises(RuntimeError, match="stopped"):
        worker.start()


def test_event_committed_with_decision_transaction(log: PredictionLog,
                                                   receiver: WebhookReceiver) -> None:
    with pytest.raises(RuntimeError), log.transaction() as unit:
        enqueue_notification(unit, EventType.ESCALATED, "conv-tx", {}, [receiver.url])
        raise RuntimeError("the decision failed after the enqueue")

    worker = OutboxWorker(log, settings(receiver.url))
    assert worker.run_once() == 0
    worker.stop(flush=False)
    assert receiver.requests == []
