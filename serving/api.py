"""HTTP API of the escalation service.

Every `/v1` route needs an API key in the `X-API-Key` header (or `Authorization: Bearer`);
`/healthz`, `/readyz` and `/metrics` are open so that orchestrators can probe them. The analyst
dashboard under `/dashboard` takes the same key, or a session cookie from its login form.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field
from redis.exceptions import RedisError
from sqlalchemy import text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.auth import is_valid_key
from serving.dashboard import create_dashboard_router
from serving.errors import (
    BundleError,
    ConversationNotFound,
    ConversationStateError,
    ConversationValidationError,
    EscalationError,
    LimitExceeded,
    StoreError,
)
from serving.metrics import PROMETHEUS_CONTENT_TYPE
from serving.requests import OutcomeRequest, TurnRequest
from serving.schema import parse_conversation
from serving.service import EscalationService
from serving.store.analytics.reader import create_reader_engine

logger = logging.getLogger(__name__)

class BodySizeLimit:
    """Reject request bodies over `max_bytes` with 413 before the application reads them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return

        # Without a Content-Length (chunked transfer) the body is read here, up to the limit,
        # and replayed to the application.
        messages: list[Message] = []
        received = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                await self._reject(send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, send: Send) -> None:
        response = JSONResponse(status_code=413, content={"detail": (
            f"request body exceeds the limit of {self.max_bytes} bytes "
            "(ESCALATION_MAX_BODY_BYTES); send one turn or one conversation per request")})
        await response({"type": "http"}, _empty_receive, send)


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


def create_app(service: EscalationService, *, manage_lifecycle: bool = True) -> FastAPI:
    """Build the FastAPI application around a service.

    With `manage_lifecycle` the app starts the service's background work on start-up and
    stops it, flushing the outbox, on shutdown.
    """

    # The dashboard reads through its own engine, so its queries never take the write lock.
    dashboard_engine = create_reader_engine(service.settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            service.start()
        logger.info("service started with bundle %s", service.runtime.scorer.manifest.name)
        yield
        if manage_lifecycle:
            service.stop()
        dashboard_engine.dispose()
        logger.info("service stopped")

    app = FastAPI(lifespan=lifespan, title="escalation-scoring",
                  summary="Decide when a support chat must go to a human, how urgently, "
                  "to whom, and with what context.")
    app.state.service = service
    app.add_middleware(BodySizeLimit, max_bytes=service.settings.max_body_bytes)
    _install_error_handlers(app)
    _install_metrics(app, service)
    app.include_router(create_dashboard_router(dashboard_engine, service.settings,
                                               lambda: service.router.roster))

    def require_api_key(
        x_api_key: Annotated[str | None, Header()] = None,
        authorization: Annotated[str | None, Header()] = None,
    ) -> None:
        if service.settings.auth_disabled:
            return
        key = x_api_key
        if key is None and authorization and authorization.lower().startswith("bearer "):
            key = authorization[7:].strip()
        if not is_valid_key(key, service.settings.api_key_hashes):
            raise HTTPException(status_code=401, detail="missing or invalid API key; send it "
                                "in the X-API-Key header", headers={"WWW-Authenticate": "Bearer"})

    secured = [Depends(require_api_key)]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz(response: Response) -> dict[str, Any]:
        checks = {
            "bundle": service.runtime.scorer.manifest.name,
            "store": _database_reachable(service),
            "state": service.store.ping(),
        }
        ready = bool(checks["store"] and checks["state"])
        response.status_code = 200 if ready else 503
        return {"status": "ready" if ready else "not ready", **checks}

    @app.get("/metrics")
    def metrics() -> Response:
        service.metrics.live_conversations.set(service.store.size())
        return Response(service.metrics.render(), media_type=PROMETHEUS_CONTENT_TYPE)

    @app.post("/v1/score", dependencies=secured)
    def score(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        try:
            conversation = parse_conversation(body)
        except ConversationValidationError as error:
            raise HTTPException(status_code=422,
                                detail=[str(problem) for problem in error.problems]) from None
        result = service.runtime.scorer.score(conversation)
        logger.info("conversation %s scored statelessly: tier %s", conversation.id,
                    result.decision.tier.value)
        return result.to_dict()

    @app.post("/v1/conversations/{conversation_id}/turns", dependencies=secured)
    def append_turn(conversation_id: str, request: TurnRequest) -> dict[str, Any]:
        return service.append_turn(_checked_id(conversation_id), request)

    @app.get("/v1/conversations/{conversation_id}", dependencies=secured)
    def get_conversation(conversation_id: str) -> dict[str, Any]:
        return service.conversation(_checked_id(conversation_id))

    @app.post("/v1/conversations/{conversation_id}/close", dependencies=secured)
    def close(conversation_id: str) -> dict[str, Any]:
        return service.close(_checked_id(conversation_id))

    @app.post("/v1/conversations/{conversation_id}/outcome", dependencies=secured)
    def outcome(conversation_id: str, request: OutcomeRequest) -> dict[str, Any]:
        return service.record_outcome(_checked_id(conversation_id), request)

    @app.post("/v1/conversations/{conversation_id}/escalate", dependencies=secured)
    def escalate(conversation_id: str) -> dict[str, Any]:
        return service.escalate_level(_checked_id(conversation_id))

    @app.post("/v1/conversations/{conversation_id}/handback", dependencies=secured)
    def handback(conversation_id: str) -> dict[str, Any]:
        return service.hand_back(_checked_id(conversation_id))

    @app.get("/v1/conversations/{conversation_id}/handoff", dependencies=secured)
    def handoff(conversation_id: str,
                format: Annotated[str, Query(pattern="^(json|text)$")] = "json") -> Any:
        package = service.handoff(_checked_id(conversation_id), as_text=format == "text")
        return PlainTextResponse(package) if format == "text" else package

    @app.get("/v1/agents", dependencies=secured)
    def get_agents() -> dict[str, Any]:
        return service.router.snapshot()

    @app.put("/v1/agents", dependencies=secured)
    def put_agents(body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
        return service.replace_roster(body)

    @app.post("/v1/admin/reload", dependencies=secured)
    def reload(request: ReloadRequest | None = None) -> dict[str, Any]:
        bundle = request.bundle if request is not None else None
        try:
            name = service.reload(Path(bundle) if bundle else None)
        except BundleError as error:
            logger.warning("reload rejected: %s", type(error).__name__)
            raise HTTPException(status_code=422, detail=f"{error}; the current bundle "
                                f"{service.runtime.scorer.manifest.name} stays in use") from None
        return {"bundle": name}

    return app


class ReloadRequest(BaseModel):
    """Body of POST /v1/admin/reload: the bundle folder to load, or null for the configured one."""

    model_config = ConfigDict(extra="forbid")

    bundle: str | None = Field(default=None, min_length=1, max_length=4_096)


def _checked_id(conversation_id: str) -> str:
    if not conversation_id.strip() or len(conversation_id) > 200:
        raise HTTPException(status_code=422, detail=f"conversation id {conversation_id[:40]!r} "
                            "is invalid; use 1 to 200 characters")
    return conversation_id


def _database_reachable(service: EscalationService) -> bool:
    try:
        with service.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception as error:  # noqa: BLE001 - any failure means not ready
        logger.warning("prediction log database unreachable: %s", type(error).__name__)
        return False


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for detail in error.errors():
            location = [str(part) for part in detail.get("loc", ()) if part != "body"]
            field = ".".join(location) or "body"
            message = f"field '{field}': {detail.get('msg', 'invalid value')}"
            if detail.get("type") not in {"missing", "json_invalid"} and "input" in detail:
                value_text = repr(detail["input"])
                if len(value_text) > 60:
                    value_text = value_text[:60] + "..."
                message += f" (got {value_text})"
            problems.append(message)
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.exception_handler(ConversationNotFound)
    async def not_found(request: Request, error: ConversationNotFound) -> JSONResponse:
        return JSONResponse(status_code=404, content={"detail": str(error)})

    @app.exception_handler(LimitExceeded)
    async def limit(request: Request, error: LimitExceeded) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": str(error)})

    @app.exception_handler(ConversationStateError)
    async def conflict(request: Request, error: ConversationStateError) -> JSONResponse:
        return JSONResponse(status_code=409, content={"detail": str(error)})

    @app.exception_handler(BundleError)
    async def bundle_error(request: Request, error: BundleError) -> JSONResponse:
        logger.error("bundle error on %s: %s", request.url.path, error)
        return JSONResponse(status_code=409, content={"detail": str(error)})

    @app.exception_handler(StoreError)
    async def store_error(request: Request, error: StoreError) -> JSONResponse:
        logger.error("prediction log error on %s: %s", request.url.path, error)
        return JSONResponse(status_code=503, content={"detail": (
            "the prediction log database is unavailable; retry later, and check DATABASE_URL "
            "and /readyz")})

    @app.exception_handler(RedisError)
    async def redis_error(request: Request, error: RedisError) -> JSONResponse:
        logger.error("Redis error on %s: %s", request.url.path, type(error).__name__)
        return JSONResponse(status_code=503, content={"detail": (
            "conversation state in Redis is unavailable; retry later, and check REDIS_URL and "
            "/readyz")})

    @app.exception_handler(EscalationError)
    async def escalation_error(request: Request, error: EscalationError) -> JSONResponse:
        logger.warning("request to %s rejected: %s", request.url.path, type(error).__name__)
        return JSONResponse(status_code=422, content={"detail": str(error)})


def _install_metrics(app: FastAPI, service: EscalationService) -> None:
    @app.middleware("http")
    async def measure(request: Request,
                      call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            response.headers["x-request-id"] = request_id
            return response
        finally:
            route = request.scope.get("route")
            template = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            service.metrics.request_seconds.labels(
                route=template, method=request.method, status=str(status),
            ).observe(elapsed)
            # The route template, never the raw path: conversation ids may be e-mail addresses.
            logger.info("request %s %s %s -> %d in %.1f ms", request_id, request.method,
                        template, status, elapsed * 1000)
