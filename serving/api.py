"""HTTP API of the scorer: score a whole conversation, and report health."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
import time
import uuid
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.errors import ConversationValidationError
from serving.schema import Conversation, parse_conversation
from serving.scorer import Scorer

logger = logging.getLogger(__name__)

API_VERSION = "v1"


def create_app(scorer: Scorer) -> FastAPI:
    """Build the FastAPI application around a loaded scorer."""
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("service started with bundle %s", scorer.manifest.name)
        yield
        logger.info("service stopped")

    app = FastAPI(
        lifespan=lifespan,
        title="escalation-scoring",
        version=scorer.manifest.name,
        summary="Decide when a support chat must go to a human, how urgently, and why.",
    )
    app.state.scorer = scorer

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = [
            {"location": [str(part) for part in detail.get("loc", ())],
             "message": detail.get("msg", "invalid value")}
            for detail in error.errors()
        ]
        return JSONResponse(status_code=422, content={"detail": problems})

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "bundle": scorer.manifest.name}

    # A plain `def` runs in FastAPI's thread pool, so scoring never blocks the event loop.
    @app.post(f"/{API_VERSION}/score")
    def score(
        body: Annotated[dict[str, Any], Body(description="One conversation in the JSON "
                                             "Lines schema of data/README.md")],
        x_request_id: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any]:
        request_id = x_request_id or uuid.uuid4().hex
        try:
            conversation: Conversation = parse_conversation(body)
        except ConversationValidationError as error:
            logger.info("request %s rejected: %d schema problem(s)", request_id,
                        len(error.problems))
            raise HTTPException(status_code=422, detail=[str(problem) for problem in
                                                         error.problems]) from None

        started = time.perf_counter()
        result = scorer.score(conversation)
        elapsed_ms = (time.perf_counter() - started) * 1000
        logger.info("request %s scored conversation %s: tier %s, p=%.3f, %.1f ms",
                    request_id, conversation.id, result.decision.tier.value,
                    result.decision.probability, elapsed_ms)
        return result.to_dict()

    return app
