"""Live conversation state and where it is kept: in process (bounded LRU with TTL) or in Redis.

A state contains the running aggregates that the next turn needs (feature and rule counters, the
rule matches so far, the escalation status), so scoring a turn does not re-read the
conversation. The transcript is kept beside it as an append-only list, read only to build a
handoff package or to re-score after a restart.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from serving.errors import ConversationStateError
from serving.features import EMBEDDING_DIMENSION, FeatureState

logger = logging.getLogger(__name__)

STATE_FORMAT = 1


@dataclass
class LiveState:
    """Everything the service remembers about one live conversation between turns."""

    conversation_id: str
    channel: str | None = None
    started_at: str | None = None
    customer: dict[str, Any] | None = None
    turn_count: int = 0
    status: str = "active"
    feature_state: FeatureState = field(default_factory=FeatureState)
    rule_state: dict[str, Any] = field(default_factory=dict)
    matches: list[dict[str, Any]] = field(default_factory=list)
    suppressed_rules: list[str] = field(default_factory=list)
    suppressed_probability: float | None = None
    agent_joined: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)
    last_probability: float = 0.0
    last_decision: dict[str, Any] | None = None
    routing: dict[str, Any] | None = None
    package_id: str | None = None
    escalations: int = 0
    bundle: str | None = None
    last_timestamp: str | None = None
    escalated_tier: str | None = None
    updated_at: float = field(default_factory=time.time)

    def to_json(self) -> str:
        """Serialise the state; embeddings travel as base64 float32 to keep the JSON small."""
        data = self.__dict__.copy()
        rows = self.feature_state.previous_embeddings
        embeddings = np.stack(rows) if rows else np.zeros((0, EMBEDDING_DIMENSION), np.float32)
        feature = self.feature_state.to_dict(embeddings=False)
        feature["previous_embeddings_b64"] = base64.b64encode(
            np.ascontiguousarray(embeddings, dtype=np.float32).tobytes()).decode()
        data["feature_state"] = feature
        data["format"] = STATE_FORMAT
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> LiveState:
        """Rebuild a state written by `to_json`."""
        data = json.loads(text)
        if data.pop("format", None) != STATE_FORMAT:
            raise ConversationStateError(
                f"stored state of conversation {data.get('conversation_id')!r} has another "
                "format; it is re-scored from its stored turns"
            )
        feature = data.pop("feature_state")
        raw = base64.b64decode(feature.pop("previous_embeddings_b64"))
        matrix = np.frombuffer(raw, dtype=np.float32).reshape(-1, EMBEDDING_DIMENSION)
        feature["previous_embeddings"] = list(matrix.copy())
        return cls(feature_state=FeatureState.from_dict(feature), **data)


class StateStore(Protocol):
    """Storage of live states and their transcripts."""

    def get(self, conversation_id: str) -> LiveState | None: ...

    def put(self, state: LiveState) -> None: ...

    def append_turn(self, conversation_id: str, turn: dict[str, Any]) -> None: ...

    def turns(self, conversation_id: str) -> list[dict[str, Any]]: ...

    def delete(self, conversation_id: str) -> None: ...

    def lock(self, conversation_id: str) -> Any: ...

    def ping(self) -> bool: ...

    def size(self) -> int: ...


@dataclass
class _Entry:
    state: LiveState
    turns: list[dict[str, Any]]
    touched: float


class InProcessStateStore:
    """States in this process: the least recently used beyond `capacity` and idle ones expire.

    A restarted or second worker does not see these states; it re-scores the stored turns.
    """

    def __init__(self, capacity: int = 10_000, ttl_seconds: float = 86_400.0,
                 clock: Any = time.monotonic) -> None:
        self.capacity = capacity
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, conversation_id: str) -> LiveState | None:
        with self._guard:
            entry = self._live_entry(conversation_id)
            return entry.state if entry else None

    def put(self, state: LiveState) -> None:
        with self._guard:
            entry = self._live_entry(state.conversation_id)
            if entry is None:
                entry = _Entry(state, [], self._clock())
                self._entries[state.conversation_id] = entry
            entry.state = state
            entry.touched = self._clock()
            self._entries.move_to_end(state.conversation_id)
            self._evict()

    def append_turn(self, conversation_id: str, turn: dict[str, Any]) -> None:
        with self._guard:
            entry = self._live_entry(conversation_id)
            if entry is None:
                raise ConversationStateError(
                    f"conversation {conversation_id!r} has no state; store the state first")
            entry.turns.append(turn)

    def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        with self._guard:
            entry = self._live_entry(conversation_id)
            return list(entry.turns) if entry else []

    def delete(self, conversation_id: str) -> None:
        with self._guard:
            self._entries.pop(conversation_id, None)
            self._locks.pop(conversation_id, None)

    @contextmanager
    def lock(self, conversation_id: str) -> Iterator[None]:
        """Serialise requests on one conversation; other conversations proceed in parallel."""
        with self._guard:
            lock = self._locks.setdefault(conversation_id, threading.Lock())
        with lock:
            yield

    def ping(self) -> bool:
        return True

    def size(self) -> int:
        with self._guard:
            return len(self._entries)

    def _live_entry(self, conversation_id: str) -> _Entry | None:
        entry = self._entries.get(conversation_id)
        if entry is None:
            return None
        if self._clock() - entry.touched > self.ttl_seconds:
            logger.info("state of conversation %s expired after %.0f s idle", conversation_id,
                        self.ttl_seconds)
            del self._entries[conversation_id]
            return None
        return entry

    def _evict(self) -> None:
        while len(self._entries) > self.capacity:
            evicted, _ = self._entries.popitem(last=False)
            self._locks.pop(evicted, None)
            logger.info("state of conversation %s evicted (capacity %d)", evicted,
                        self.capacity)


class RedisStateStore:
    """States in Redis, shared by every worker; keys expire after `ttl_seconds` idle."""

    def __init__(self, url: str, ttl_seconds: float = 86_400.0,
                 prefix: str = "escalation") -> None:
        import redis

        self.url = url
        self.ttl = max(1, int(ttl_seconds))
        self.prefix = prefix
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)

    def _key(self, kind: str, conversation_id: str) -> str:
        return f"{self.prefix}:{kind}:{conversation_id}"

    def get(self, conversation_id: str) -> LiveState | None:
        raw = self.client.get(self._key("state", conversation_id))
        if raw is None:
            return None
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
            return LiveState.from_json(text)
        except (ConversationStateError, ValueError, KeyError, TypeError) as error:
            logger.warning("stored state of conversation %s is unreadable (%s); it will be "
                           "re-scored from its turns", conversation_id, type(error).__name__)
            return None

    def put(self, state: LiveState) -> None:
        pipeline = self.client.pipeline()
        pipeline.set(self._key("state", state.conversation_id), state.to_json(), ex=self.ttl)
        pipeline.expire(self._key("turns", state.conversation_id), self.ttl)
        pipeline.execute()

    def append_turn(self, conversation_id: str, turn: dict[str, Any]) -> None:
        key = self._key("turns", conversation_id)
        pipeline = self.client.pipeline()
        pipeline.rpush(key, json.dumps(turn, separators=(",", ":")))
        pipeline.expire(key, self.ttl)
        pipeline.execute()

    def turns(self, conversation_id: str) -> list[dict[str, Any]]:
        return [json.loads(item) for item in
                self.client.lrange(self._key("turns", conversation_id), 0, -1)]

    def delete(self, conversation_id: str) -> None:
        self.client.delete(self._key("state", conversation_id),
                           self._key("turns", conversation_id))

    def lock(self, conversation_id: str) -> Any:
        """Return a Redis lock, so two workers never apply turns of one conversation at once."""
        return self.client.lock(self._key("lock", conversation_id), timeout=30,
                                blocking_timeout=30)

    def ping(self) -> bool:
        import redis

        try:
            return bool(self.client.ping())
        except redis.RedisError as error:
            logger.warning("Redis at %s is unreachable: %s", _redact_url(self.url), error)
            return False

    def size(self) -> int:
        count = 0
        for _ in self.client.scan_iter(match=f"{self.prefix}:state:*", count=500):
            count += 1
        return count


def _redact_url(url: str) -> str:
    # redis://user:password@host -> redis://***@host, so passwords never reach the log.
    if "@" not in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
