"""Access to the dashboard: the API key header, or a signed session cookie from the login form."""

from __future__ import annotations

import html
import logging
import secrets
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from serving.auth import (
    SESSION_COOKIE,
    issue_session_token,
    matching_digest,
    verify_session_token,
)
from serving.settings import Settings

logger = logging.getLogger(__name__)

DASHBOARD_PATH = "/dashboard"
LOGIN_PATH = "/dashboard/login"
STATIC_DIR = Path(__file__).resolve().parent / "static"
# A login body contains one key and a return path, so anything larger is not from the form.
MAX_LOGIN_BODY_BYTES = 4_096
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"


class DashboardAccess:
    """Decides whether a request may read the dashboard, and issues session cookies.

    Without ESCALATION_SESSION_SECRET each process draws its own random secret, so sessions
    end when it restarts and a session from one worker is rejected by another.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        configured = settings.session_secret
        if configured is not None:
            self._secret = configured.get_secret_value().encode("utf-8")
        else:
            self._secret = secrets.token_bytes(32)
            if not settings.auth_disabled:
                logger.warning("ESCALATION_SESSION_SECRET is not set: dashboard sessions end "
                               "when this process restarts and are not shared between workers")
        self._rejected_logins = 0
        self._lock = threading.Lock()

    def allows(self, request: Request) -> bool:
        """Return whether the request carries a valid API key or an unexpired session."""
        if self.settings.auth_disabled:
            return True
        digests = self.settings.api_key_hashes
        if matching_digest(_header_key(request), digests) is not None:
            return True
        return verify_session_token(request.cookies.get(SESSION_COOKIE), self._secret, digests,
                                    time.time(), self.settings.session_ttl_seconds)

    def require(self, request: Request) -> None:
        """Raise 401 unless `allows(request)`. The JSON and CSV routes depend on this."""
        if not self.allows(request):
            raise HTTPException(status_code=401, detail=(
                "missing or invalid credentials; send the API key in the X-API-Key header, or "
                f"sign in at {LOGIN_PATH} for a session cookie"),
                headers={"WWW-Authenticate": "Bearer"})

    def session_cookie(self, response: Response, digest: str, request: Request) -> None:
        """Set the session cookie for the key configured as `digest` on `response`."""
        ttl = self.settings.session_ttl_seconds
        token = issue_session_token(digest, self._secret, ttl, time.time())
        secure = self.settings.session_cookie_secure or request.url.scheme == "https"
        response.set_cookie(SESSION_COOKIE, token, max_age=ttl, path="/", httponly=True,
                            samesite="strict", secure=secure)

    def count_rejected_login(self) -> int:
        """Count one rejected login and return the count since start-up."""
        with self._lock:
            self._rejected_logins += 1
            return self._rejected_logins


def add_login_routes(router: APIRouter, access: DashboardAccess) -> None:
    """Add the login form, the login submission and the logout to `router`."""

    @router.get("/login", include_in_schema=False)
    def login_form(request: Request, next: str = DASHBOARD_PATH) -> Response:
        if access.settings.auth_disabled or access.allows(request):
            return RedirectResponse(safe_next(next), status_code=303)
        return login_page(safe_next(next), error=None, status_code=200)

    @router.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        _check_same_origin(request)
        fields = await _form_fields(request)
        target = safe_next(fields.get("next", DASHBOARD_PATH))
        if access.settings.auth_disabled:
            return RedirectResponse(target, status_code=303)

        digest = matching_digest(fields.get("api_key", "").strip(),
                                 access.settings.api_key_hashes)
        if digest is None:
            count = access.count_rejected_login()
            logger.warning("dashboard login rejected: invalid API key (%d rejected since start)",
                           count)
            return login_page(target, error="That API key is not valid. Paste the key printed "
                              "by `escalation apikey`, not its hash.", status_code=401)

        response = RedirectResponse(target, status_code=303)
        access.session_cookie(response, digest, request)
        logger.info("dashboard session started")
        return response

    @router.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        _check_same_origin(request)
        # NOTE: sign-out only deletes the browser's cookie. A copy of the token stays valid
        # until its expiry (at most ESCALATION_SESSION_TTL_SECONDS), because no revocation
        # list is kept on the server.
        response = RedirectResponse(LOGIN_PATH, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response


def login_page(next_path: str, *, error: str | None, status_code: int) -> HTMLResponse:
    """Return the login form, with `error` shown above it when given."""
    template = (STATIC_DIR / "login.html").read_text(encoding="utf-8")
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    page = template.replace("{{error}}", message).replace("{{next}}",
                                                          html.escape(next_path, quote=True))
    return HTMLResponse(page, status_code=status_code, headers=page_headers())


def page_headers() -> dict[str, str]:
    """Return the security headers of every dashboard page.

    The policy allows scripts, styles, images and fetches from this service only, so the page
    cannot load anything from another host. Plotly sets inline styles on its charts, hence
    'unsafe-inline' for styles but not for scripts.
    """
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; font-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"),
        "X-Content-Type-Options": "nosniff",
        # same-origin, not no-referrer: with no-referrer chromium sends "Origin: null" on the
        # login form post, which the same-origin check must reject.
        "Referrer-Policy": "same-origin",
        "Cache-Control": "no-store",
    }


def safe_next(value: str) -> str:
    """Return `value` when it is a path inside the dashboard, else the dashboard's own path.

    Only such paths are followed after login, so the form cannot redirect to another site.
    """
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or "\\" in value or not value.startswith(DASHBOARD_PATH):
        return DASHBOARD_PATH
    return value


def _header_key(request: Request) -> str | None:
    key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization", "")
    if key is None and authorization.lower().startswith("bearer "):
        key = authorization[7:].strip()
    return key


def _check_same_origin(request: Request) -> None:
    # SameSite=Strict keeps the cookie off cross-site requests, and this check also stops
    # another site from posting a login (login CSRF) or a logout.
    origin = request.headers.get("origin")
    expected = f"{request.url.scheme}://{request.url.netloc}"
    if origin is not None and origin != expected:
        raise HTTPException(status_code=403, detail=(
            f"cross-origin form post from {origin[:100]!r} rejected; sign in from "
            f"{expected}{LOGIN_PATH}"))


async def _form_fields(request: Request) -> dict[str, str]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise HTTPException(status_code=415, detail=(
            f"content type {content_type or '(none)'!r} is not accepted; post the login form "
            f"as {FORM_CONTENT_TYPE}"))
    body = await request.body()
    if len(body) > MAX_LOGIN_BODY_BYTES:
        raise HTTPException(status_code=413, detail=(
            f"login form of {len(body)} bytes exceeds {MAX_LOGIN_BODY_BYTES} bytes; send only "
            "the API key"))
    try:
        parsed = parse_qs(body.decode("utf-8"), max_num_fields=4)
    except (UnicodeDecodeError, ValueError):
        raise HTTPException(status_code=400, detail=(
            "the login form is not valid UTF-8 URL-encoded data; submit it from the login "
            "page")) from None
    return {name: values[0] for name, values in parsed.items() if values}
