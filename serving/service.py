"""The live escalation service: per-turn scoring with state, routing, handoff and notifications.

`EscalationService` is what the HTTP API calls. It owns the pieces that live as long as the
process: the bundle-dependent runtime (swapped whole on reload), the state store, the router,
the prediction log and the outbox worker.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from serving.bundle import find_latest_bundle
from serving.decision import Decision
from serving.errors import (
    BundleError,
    ConversationNotFound,
    ConversationStateError,
    LimitExceeded,
    RoutingLookupError,
)
from serving.handoff import build_handoff_package, load_approaches, render_text
from serving.live import TurnResult, apply_turn, hand_back, new_state
from serving.messages import customer_messages
from serving.metrics import ServiceMetrics
from serving.notify import OutboxWorker, RetryPolicy, WebhookSettings, enqueue_notification
from serving.reasons import ReasonClassifier, load_reason_config
from serving.requests import OutcomeRequest, TurnRequest
from serving.roster import Level, load_roster, roster_from_dict
from serving.routing import Router, RoutingRequest, RoutingResult
from serving.rules import RuleMatch, load_policy
from serving.schema import Conversation, CustomerProfile, Turn
from serving.scorer import Scorer
from serving.settings import PROJECT_ROOT, Settings
from serving.similar import SimilarCaseIndex
from serving.state import InProcessStateStore, LiveState, RedisStateStore, StateStore
from serving.store.database import create_store_engine, upgrade_database
from serving.store.log import PredictionLog
from serving.store.records import Outcome
from serving.tiers import Reason, Tier

logger = logging.getLogger(__name__)

ESCALATED_EVENT = "conversation.escalated"
REROUTED_EVENT = "conversation.rerouted"
DEFAULT_ROSTER_PATH = Path(__file__).resolve().parent / "policies" / "roster.example.yaml"
# How often queued conversations are checked for overflow to their fallback team.
MAINTENANCE_INTERVAL_SECONDS = 1.0


@dataclass(frozen=True)
class Runtime:
    """Everything that depends on the bundle, swapped as one on reload."""

    scorer: Scorer
    reasons: ReasonClassifier
    similar: SimilarCaseIndex | None


class EscalationService:
    """Score live conversations turn by turn and hand escalated ones to the right agent."""

    def __init__(self, settings: Settings, *, scorer: Scorer | None = None) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.policy = load_policy(settings.policy)
        self._runtime_lock = threading.Lock()
        self._runtime = self._build_runtime(scorer)
        self.metrics.set_bundle(self._runtime.scorer.manifest.name)
        self.store: StateStore = (
            RedisStateStore(settings.redis_url, settings.state_ttl_seconds)
            if settings.redis_url else
            InProcessStateStore(settings.state_max_conversations, settings.state_ttl_seconds)
        )
        self.router = Router(load_roster(settings.roster or DEFAULT_ROSTER_PATH))
        self.approaches = load_approaches()

        self.engine = create_store_engine(settings.database_url)
        upgrade_database(settings.database_url)
        self.log = PredictionLog(self.engine, store_text=settings.store_text)
        # Without webhook URLs nothing is ever enqueued, so no worker is needed.
        self.outbox: OutboxWorker | None = None
        if settings.webhook_urls and settings.webhook_secret is not None:
            self.outbox = OutboxWorker(self.log, WebhookSettings(
                urls=settings.webhook_urls,
                secret=settings.webhook_secret.get_secret_value(),
                retry=RetryPolicy(base_delay_seconds=settings.webhook_base_delay_seconds,
                                  max_attempts=settings.webhook_max_attempts),
            ))
        self._stop = threading.Event()
        self._maintenance: threading.Thread | None = None

    # ------------------------------------------------------------------ life cycle

    def start(self) -> None:
        """Start the outbox worker and the queue maintenance thread."""
        if self.outbox is not None:
            self.outbox.start()
        self._stop.clear()
        self._maintenance = threading.Thread(target=self._maintain, name="queue-maintenance",
                                             daemon=True)
        self._maintenance.start()
        logger.info("escalation service started: bundle %s, state %s, %d webhook URL(s)",
                    self.runtime.scorer.manifest.name, type(self.store).__name__,
                    len(self.settings.webhook_urls))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop background work, delivering the due webhook events first."""
        self._stop.set()
        if self._maintenance is not None:
            self._maintenance.join(timeout)
        if self.outbox is not None:
            self.outbox.stop(flush=True, timeout=timeout)
        self.engine.dispose()
        logger.info("escalation service stopped")

    @property
    def runtime(self) -> Runtime:
        """The bundle-dependent parts in use now; a request keeps the one it started with."""
        return self._runtime

    def reload(self, bundle: Path | None = None) -> str:
        """Load and verify another bundle, then swap it in; requests in flight finish on the
        old one. Returns the new bundle's name."""
        path = bundle or self.settings.bundle or find_latest_bundle(PROJECT_ROOT / "models")
        scorer = Scorer(path, policy=self.policy)
        runtime = self._runtime_for(scorer)
        with self._runtime_lock:
            previous = self._runtime.scorer.manifest.name
            self._runtime = runtime
        self.metrics.set_bundle(scorer.manifest.name)
        logger.info("bundle reloaded: %s -> %s", previous, scorer.manifest.name)
        return scorer.manifest.name

    def _build_runtime(self, scorer: Scorer | None) -> Runtime:
        if scorer is None:
            path = self.settings.bundle or find_latest_bundle(PROJECT_ROOT / "models")
            scorer = Scorer(path, policy=self.policy)
        return self._runtime_for(scorer)

    def _runtime_for(self, scorer: Scorer) -> Runtime:
        try:
            reasons = ReasonClassifier.from_config(load_reason_config(), scorer.encoder.encode)
        except ValueError as error:
            # The descriptions are fine, so a failure here comes from the bundle's encoder.
            raise BundleError(f"bundle {scorer.manifest.name}: its encoder could not embed the "
                              f"reason descriptions ({error}); retrain the bundle") from None
        similar = None
        spec = scorer.manifest.similar_cases
        if spec is not None:
            similar = SimilarCaseIndex.from_files(scorer.bundle_dir / spec.vectors,
                                                  scorer.bundle_dir / spec.cases)
        return Runtime(scorer, reasons, similar)

    # ------------------------------------------------------------------ turns

    def append_turn(self, conversation_id: str, request: TurnRequest) -> dict[str, Any]:
        """Score one new turn of a live conversation and act on the decision."""
        started = time.perf_counter()
        runtime = self.runtime
        turn = request.turn()

        with self.store.lock(conversation_id):
            state = self._state_for(conversation_id, runtime, request)
            self._check_can_append(state, turn)
            result = apply_turn(runtime.scorer, state, turn)
            state.last_timestamp = turn.timestamp.isoformat() if turn.timestamp else \
                state.last_timestamp
            self.store.put(state)
            self.store.append_turn(conversation_id, turn.model_dump(mode="json",
                                                                   exclude_none=True))
            escalation = None
            try:
                if result.newly_escalated:
                    escalation = self._escalate(state, runtime, result.decision)
                elif state.status == "escalated" and _more_urgent(result.decision, state):
                    escalation = self._refresh_package(state, runtime, result.decision)
            except Exception:
                # The turn is scored and stored; record it before reporting the failure, so
                # a restart can still rebuild the conversation.
                logger.exception("escalation work for conversation %s, turn %d failed",
                                 conversation_id, result.turn_index)
                self.store.put(state)
                self._record_turn(conversation_id, turn, result, runtime,
                                  (time.perf_counter() - started) * 1000, None)
                raise
            self.store.put(state)

        latency_ms = (time.perf_counter() - started) * 1000
        self._record_turn(conversation_id, turn, result, runtime, latency_ms, escalation)
        self.metrics.decisions.labels(tier=result.decision.tier.value).inc()
        logger.info("conversation %s turn %d scored: tier %s, p=%.3f, %.1f ms",
                    conversation_id, result.turn_index, result.decision.tier.value,
                    result.escalation_probability, latency_ms)
        response = self._turn_response(state, result, turn)
        if escalation is not None and escalation.get("messages") is not None:
            # What the assistant should tell the customer now: notice, wait, agent introduction.
            response["customer_messages"] = escalation["messages"]
        return response

    def _state_for(self, conversation_id: str, runtime: Runtime,
                   request: TurnRequest) -> LiveState:
        state = self.store.get(conversation_id)
        if state is None:
            state = self._recover(conversation_id, runtime)
        if state is None:
            state = new_state(conversation_id, channel=request.channel,
                              started_at=request.started_at, customer=request.customer)
            self.store.put(state)
            return state
        if request.customer is not None:
            state.customer = request.customer.model_dump(mode="json")
        return state

    def _recover(self, conversation_id: str, runtime: Runtime) -> LiveState | None:
        """Rebuild a state lost with a restarted worker by re-scoring its stored turns once."""
        stored = self.log.transcript(conversation_id)
        if not stored:
            return None
        header = stored[0].get("conversation") or {}
        state = new_state(
            conversation_id, channel=header.get("channel"),
            started_at=datetime.fromisoformat(header["started_at"])
            if header.get("started_at") else None,
            customer=CustomerProfile.model_validate(header["customer"])
            if header.get("customer") else None,
        )
        self.store.put(state)
        for item in stored:
            turn = Turn.model_validate(item["turn"])
            apply_turn(runtime.scorer, state, turn)
            self.store.append_turn(conversation_id, turn.model_dump(mode="json",
                                                                   exclude_none=True))
            if turn.timestamp is not None:
                state.last_timestamp = turn.timestamp.isoformat()
        self._restore_status(state, stored)
        logger.info("conversation %s recovered from %d stored turns", conversation_id,
                    len(stored))
        return state

    def _restore_status(self, state: LiveState, stored: list[dict[str, Any]]) -> None:
        """Put back the escalation, routing and closure that the log recorded."""
        routing_rows = self.log.routing_for(state.conversation_id)
        packages = self.log.handoffs_for(state.conversation_id)
        if routing_rows and routing_rows[-1].status == "closed":
            state.status = "closed"
            return
        if any(item.get("escalated") for item in stored) or packages:
            state.status = "escalated"
            # Re-scoring marks the first escalating turn again; the tier comes from the package.
        if routing_rows:
            state.routing = dict(routing_rows[-1].payload)
        if packages:
            package = packages[-1].package
            state.package_id = package.get("package_id")
            state.escalated_tier = (package.get("urgency") or {}).get("tier", state.escalated_tier)

    def _check_can_append(self, state: LiveState, turn: Turn) -> None:
        if state.status == "closed":
            raise ConversationStateError(
                f"conversation {state.conversation_id!r} is closed; start a new conversation "
                "id for new messages")
        if state.turn_count >= self.settings.max_turns:
            raise LimitExceeded(
                f"conversation {state.conversation_id!r} reached the limit of "
                f"{self.settings.max_turns} turns (ESCALATION_MAX_TURNS)")
        previous = state.last_timestamp or state.started_at
        if turn.timestamp is not None and previous is not None and \
                _aware(turn.timestamp) < _aware(datetime.fromisoformat(previous)):
            before = "the previous turn" if state.last_timestamp else "'started_at'"
            raise ConversationStateError(
                f"conversation {state.conversation_id!r}, turn {state.turn_count}, field "
                f"'timestamp': {turn.timestamp.isoformat()} is earlier than {before} "
                f"({previous}); send turns in chronological order")

    # ------------------------------------------------------------------ escalation

    def _escalate(self, state: LiveState, runtime: Runtime,
                  decision: Decision) -> dict[str, Any]:
        conversation = self.transcript(state)
        score = runtime.scorer.score(conversation)
        matches = [RuleMatch.from_dict(match) for match in state.matches]
        embeddings = np.asarray(state.feature_state.previous_embeddings, dtype=np.float32)
        assessment = runtime.reasons.classify(matches, embeddings)

        routing = self.router.route(RoutingRequest(
            conversation_id=state.conversation_id,
            reason=assessment.reason,
            urgent=assessment.urgent,
            tier=decision.tier,
            customer=conversation.customer,
            billing_dispute=any(match.rule == "billing_dispute" for match in matches),
        ))
        package = build_handoff_package(
            conversation, score.turns, decision,
            routing=routing.to_dict(), embed=runtime.scorer.encoder.encode,
            similar_index=runtime.similar, approaches=self.approaches,
            bundle=runtime.scorer.manifest.name,
        )
        messages = customer_messages(
            decision.tier, assessment.reason, wait_seconds=routing.estimated_wait_seconds,
            agent_name=routing.agent_name,
            customer_name=conversation.customer.name if conversation.customer else None,
        )
        state.routing = routing.to_dict()
        state.package_id = package.package_id
        state.escalated_tier = decision.tier.value
        self.metrics.escalations.labels(reason=assessment.reason.value).inc()
        logger.info("conversation %s escalated: tier %s, reason %s, routing %s to %s",
                    state.conversation_id, decision.tier.value, assessment.reason.value,
                    routing.status, routing.agent_id or routing.team_id)
        return {
            "routing": routing,
            "assessment": assessment.to_dict(),
            "package": package,
            "messages": messages.model_dump(mode="json"),
        }

    def _refresh_package(self, state: LiveState, runtime: Runtime,
                         decision: Decision) -> dict[str, Any]:
        """Rebuild the handoff package when an escalated conversation becomes more urgent.

        The agent must see the new tier and the message that raised it; routing stays, since
        the conversation already has its agent or queue place.
        """
        conversation = self.transcript(state)
        score = runtime.scorer.score(conversation)
        package = build_handoff_package(
            conversation, score.turns, decision, routing=state.routing,
            embed=runtime.scorer.encoder.encode, similar_index=runtime.similar,
            approaches=self.approaches, bundle=runtime.scorer.manifest.name,
        )
        state.package_id = package.package_id
        state.escalated_tier = decision.tier.value
        logger.info("conversation %s became %s; handoff package %s rebuilt",
                    state.conversation_id, decision.tier.value, package.package_id)
        return {"routing": None, "package": package, "messages": None}

    def transcript(self, state: LiveState) -> Conversation:
        """Return the conversation so far from the stored turns of a state."""
        return Conversation.model_validate({
            "id": state.conversation_id,
            "channel": state.channel,
            "started_at": state.started_at,
            "customer": state.customer,
            "turns": self.store.turns(state.conversation_id),
        })

    def _record_turn(self, conversation_id: str, turn: Turn, result: TurnResult,
                     runtime: Runtime, latency_ms: float,
                     escalation: dict[str, Any] | None) -> None:
        with self.log.transaction() as log:
            log.record_turn(
                conversation_id, turn_index=result.turn_index, role=turn.role,
                text=turn.text, bundle=runtime.scorer.manifest.name,
                escalation_probability=result.escalation_probability,
                sentiment=result.sentiment, frustration=result.frustration,
                decision=result.decision, rule_matches=list(result.new_matches),
                latency_ms=latency_ms,
                turn_payload=self._turn_payload(conversation_id, turn, result.turn_index),
            )
            if escalation is None:
                return
            package = escalation["package"]
            log.record_handoff(conversation_id, package_id=package.package_id,
                               package=package.model_dump(mode="json"))
            routing: RoutingResult | None = escalation["routing"]
            if routing is None:
                return
            _record_routing(log, routing)
            enqueue_notification(log, ESCALATED_EVENT, conversation_id, {
                "decision": result.decision.to_dict(),
                "routing": routing.to_dict(),
                "messages": escalation["messages"],
                "package": package.model_dump(mode="json"),
            }, self.settings.webhook_urls)

    def _turn_payload(self, conversation_id: str, turn: Turn, turn_index: int) -> dict[str, Any]:
        payload: dict[str, Any] = {"turn": turn.model_dump(mode="json", exclude_none=True)}
        if turn_index == 0:
            state = self.store.get(conversation_id)
            if state is not None:
                payload["conversation"] = {"channel": state.channel,
                                           "started_at": state.started_at,
                                           "customer": state.customer}
        return payload

    def _turn_response(self, state: LiveState, result: TurnResult,
                       turn: Turn) -> dict[str, Any]:
        decision = result.decision
        moment = turn.timestamp or datetime.now(UTC)
        deadline = None
        if decision.sla_seconds is not None:
            deadline = (_aware(moment) + timedelta(seconds=decision.sla_seconds)).isoformat()
        response = {
            "conversation_id": state.conversation_id,
            "bundle": state.bundle,
            "status": state.status,
            **result.to_dict(),
            "sla_deadline": deadline,
            "routing": state.routing if state.status == "escalated" else None,
            "handoff_url": (f"/v1/conversations/{state.conversation_id}/handoff"
                            if state.package_id and state.status == "escalated" else None),
        }
        return response

    # ------------------------------------------------------------------ other routes

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """Return the state summary of a live conversation."""
        state = self._existing_state(conversation_id)
        return {
            "conversation_id": conversation_id,
            "status": state.status,
            "turn_count": state.turn_count,
            "bundle": state.bundle,
            "escalation_probability": state.last_probability,
            "decision": state.last_decision,
            "routing": state.routing,
            "handoff_url": (f"/v1/conversations/{conversation_id}/handoff"
                            if state.package_id else None),
            "history": state.history,
            "escalations": state.escalations,
        }

    def close(self, conversation_id: str) -> dict[str, Any]:
        """Close a conversation: free its agent slot and accept no more turns."""
        with self.store.lock(conversation_id):
            state = self._existing_state(conversation_id)
            state.status = "closed"
            self.store.put(state)
        # The closure is stored as the last routing row, so a worker that lost its state can still
        # tell that the conversation is closed.
        self.log.record_routing(conversation_id, status="closed", payload={"closed": True})
        self._release(conversation_id, None)
        logger.info("conversation %s closed", conversation_id)
        return {"conversation_id": conversation_id, "status": "closed"}

    def record_outcome(self, conversation_id: str, outcome: OutcomeRequest) -> dict[str, Any]:
        """Store how the conversation ended, for dashboards and retraining."""
        row = self.log.record_outcome(Outcome(
            conversation_id=conversation_id, escalated=outcome.escalated,
            resolved=outcome.resolved, csat=outcome.csat, agent_id=outcome.agent_id,
            handle_seconds=outcome.handle_seconds, notes=outcome.notes,
        ))
        self._release(conversation_id, outcome.handle_seconds)
        logger.info("outcome of conversation %s recorded (row %d)", conversation_id, row)
        return {"conversation_id": conversation_id, "recorded": True}

    def escalate_level(self, conversation_id: str) -> dict[str, Any]:
        """Move an escalated conversation one level up (L1 to L2 and so on) and re-route it."""
        with self.store.lock(conversation_id):
            state = self._existing_state(conversation_id)
            if state.status != "escalated":
                raise ConversationStateError(
                    f"conversation {conversation_id!r} is {state.status}, not escalated; only "
                    "an escalated conversation can move up a level")
            try:
                routing = self.router.escalate(conversation_id)
            except RoutingLookupError:
                # This worker's router never saw the conversation (it was routed before a
                # restart or by another worker), so route it afresh one level up.
                routing = self.router.route(self._level_up_request(state))
            state.routing = routing.to_dict()
            self.store.put(state)
        self._notify_reroute(routing)
        return routing.to_dict()

    def _level_up_request(self, state: LiveState) -> RoutingRequest:
        current = Level.parse((state.routing or {}).get("level") or "L1")
        target = current.next_level()
        if target is None:
            raise ConversationStateError(
                f"conversation {state.conversation_id!r} is already at {current}, the highest "
                "level; it cannot move further up")
        category = (state.last_decision or {}).get("reason_category") or Reason.GENERAL.value
        customer = CustomerProfile.model_validate(state.customer) if state.customer else None
        return RoutingRequest(
            conversation_id=state.conversation_id, reason=Reason(category),
            tier=Tier(state.escalated_tier or Tier.RAPID.value), customer=customer,
            min_level=target,
        )

    def hand_back(self, conversation_id: str) -> dict[str, Any]:
        """Record that the agent handed the conversation back to the assistant."""
        with self.store.lock(conversation_id):
            state = self._existing_state(conversation_id)
            hand_back(state)
            self.store.put(state)
        self._release(conversation_id, None)
        return {"conversation_id": conversation_id, "status": state.status,
                "suppressed_rules": state.suppressed_rules}

    def handoff(self, conversation_id: str, *, as_text: bool = False) -> Any:
        """Return the latest handoff package of a conversation, as JSON or plain text."""
        packages = self.log.handoffs_for(conversation_id)
        if not packages:
            raise ConversationNotFound(
                f"conversation {conversation_id!r} has no handoff package; it has not been "
                "escalated")
        package = packages[-1].package
        if not as_text:
            return package
        from serving.handoff import HandoffPackage

        return render_text(HandoffPackage.model_validate(package))

    def replace_roster(self, data: Any) -> dict[str, Any]:
        """Replace the roster of teams and agents; conversations of removed agents re-queue."""
        roster = roster_from_dict(data, source="PUT /v1/agents")
        self._apply_reroutes(self.router.replace_roster(roster))
        return self.router.snapshot()

    def _existing_state(self, conversation_id: str) -> LiveState:
        state = self.store.get(conversation_id) or self._recover(conversation_id, self.runtime)
        if state is None:
            raise ConversationNotFound(
                f"conversation {conversation_id!r} not found; post its turns to "
                f"/v1/conversations/{conversation_id}/turns first")
        return state

    # ------------------------------------------------------------------ background work

    def _maintain(self) -> None:
        while not self._stop.wait(MAINTENANCE_INTERVAL_SECONDS):
            try:
                self._apply_reroutes(self.router.tick())
            except Exception:  # noqa: BLE001 - the loop must survive to keep queues moving
                logger.exception("queue maintenance failed; retrying in %.0f s",
                                 MAINTENANCE_INTERVAL_SECONDS)

    def _release(self, conversation_id: str, handle_seconds: float | None) -> None:
        # A conversation that never escalated has no agent slot, so there is nothing to free.
        try:
            results = self.router.release(conversation_id, handle_seconds)
        except RoutingLookupError:
            return
        self._apply_reroutes(results)

    def _apply_reroutes(self, results: list[RoutingResult]) -> None:
        for routing in results:
            with self.store.lock(routing.conversation_id):
                state = self.store.get(routing.conversation_id)
                if state is not None:
                    state.routing = routing.to_dict()
                    self.store.put(state)
            self._notify_reroute(routing)

    def _notify_reroute(self, routing: RoutingResult) -> None:
        with self.log.transaction() as log:
            _record_routing(log, routing)
            enqueue_notification(log, REROUTED_EVENT, routing.conversation_id,
                                 {"routing": routing.to_dict()}, self.settings.webhook_urls)
        logger.info("conversation %s re-routed: %s to %s", routing.conversation_id,
                    routing.status, routing.agent_id or routing.team_id)


def _more_urgent(decision: Decision, state: LiveState) -> bool:
    if state.escalated_tier is None:
        return False
    return decision.tier.severity > Tier(state.escalated_tier).severity


def _record_routing(log: PredictionLog, routing: RoutingResult) -> None:
    log.record_routing(
        routing.conversation_id, status=routing.status, payload=routing.to_dict(),
        rule=routing.rule.value, team=routing.team_id, agent=routing.agent_id,
        level=str(routing.level), queue_position=routing.queue_position,
        estimated_wait_seconds=routing.estimated_wait_seconds,
        overflowed=routing.rule.value == "overflow",
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
