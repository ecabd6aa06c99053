"""Browser tests of the dashboard in headless chromium against the real service under uvicorn.

The log is seeded with synthetic conversations and one live conversation posted through the
API. Screenshots go to test-artifacts/. Without chromium or Playwright the tests skip locally
and fail when CI=true.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from benchmarks.dashboard_speed import seed_prediction_log
from serving.store import PredictionLog, create_store_engine, upgrade_database
from tests.conftest import ARTIFACTS_DIR, REPOSITORY, TrainedBundle
from tests.serving.dashboard.conftest import DIGEST, KEY, SESSION_SECRET
from tests.serving.test_api import _free_port, _wait_until_ready

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
LIVE_CONVERSATION = "browser-live-1"
SERVICE_FACTORY = "tests.serving.dashboard.service_app:create"
TIMEOUT_MS = 30_000


def browser_missing_reason() -> str | None:
    """Return why the browser tests cannot run here, or None when they can."""
    if not CHROMIUM.exists():
        return f"chromium is not installed at {CHROMIUM}; install Debian's chromium package"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed; install the dev extra"
    return None


# Every test here needs the session's trained bundle, which takes minutes to build.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _require_browser() -> None:
    reason = browser_missing_reason()
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run in CI: {reason}")
    pytest.skip(reason)


@dataclass(frozen=True)
class Served:
    """A running service with a seeded log."""

    base_url: str
    bundle: str
    live_posted_at: datetime


@pytest.fixture(scope="module")
def served(trained_bundle: TrainedBundle,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """Start the service under uvicorn on a log seeded with 3,000 turns ending now, plus one
    live conversation posted over HTTP."""
    folder = tmp_path_factory.mktemp("dashboard-browser")
    url = f"sqlite:///{folder / 'log.db'}"
    upgrade_database(url)
    writer = create_store_engine(url)
    seed_prediction_log(PredictionLog(writer), turns=3_000, end=datetime.now(UTC))
    writer.dispose()

    port = _free_port()
    environment = {**os.environ, "ESCALATION_API_KEY_HASHES": DIGEST, "DATABASE_URL": url,
                   "ESCALATION_SESSION_SECRET": SESSION_SECRET,
                   "ESCALATION_BUNDLE": str(trained_bundle.path)}
    environment.pop("ESCALATION_AUTH_DISABLED", None)
    command = [sys.executable, "-m", "uvicorn", "--factory", SERVICE_FACTORY, "--host",
               "127.0.0.1", "--port", str(port), "--no-access-log"]
    server = subprocess.Popen(command, cwd=REPOSITORY, env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_until_ready(port, server)
        base_url = f"http://127.0.0.1:{port}"
        posted_at = datetime.now(UTC)
        _post_turn(base_url, "I need to talk to a human right now, this is urgent")
        manifest = json.loads((trained_bundle.path / "manifest.json").read_text())
        yield Served(base_url, manifest["name"], posted_at)
    finally:
        server.terminate()
        server.communicate(timeout=60)


def _post_turn(base_url: str, text: str) -> None:
    request = urllib.request.Request(
        f"{base_url}/v1/conversations/{LIVE_CONVERSATION}/turns",
        data=json.dumps({"role": "customer", "text": text}).encode(),
        headers={"content-type": "application/json", "X-API-Key": KEY}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200


@dataclass
class Browser:
    """One chromium page, with every request and console error it produced."""

    page: Any
    requests: list[str]
    errors: list[str]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    """A headless chromium page in a fresh profile."""
    from playwright.sync_api import sync_playwright

    profile = tmp_path / "chromium-profile"
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000})
        requests: list[str] = []
        errors: list[str] = []
        context.on("request", lambda request: requests.append(request.url))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield Browser(page, requests, errors)
        finally:
            context.close()
    shutil.rmtree(profile, ignore_errors=True)


def sign_in(browser: Browser, served: Served) -> None:
    page = browser.page
    page.goto(f"{served.base_url}/dashboard")
    assert "/dashboard/login" in page.url
    page.fill("#api_key", KEY)
    page.click("button[type=submit]")
    page.wait_for_selector("body[data-loaded=board]")


def screenshot(browser: Browser, name: str) -> Path:
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    path = ARTIFACTS_DIR / f"dashboard-{name}.png"
    browser.page.screenshot(path=str(path), full_page=True)
    return path


def board_count(browser: Browser) -> int:
    text = browser.page.text_content("[data-testid=board-count]") or ""
    return int(text.split()[0])


def test_board_renders_and_filters(browser: Browser, served: Served) -> None:
    sign_in(browser, served)
    page = browser.page
    everything = board_count(browser)
    first_rows = page.locator("#board-table tbody tr[data-conversation-id]").count()
    unfiltered = screenshot(browser, "board")

    page.select_option("select[name=bundle]", served.bundle)
    page.evaluate("delete document.body.dataset.loaded")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("body[data-loaded=board]")
    live_row = page.locator(f"tr[data-conversation-id='{LIVE_CONVERSATION}']")
    filtered = screenshot(browser, "board-filtered")

    assert everything > 1
    assert first_rows == min(everything, 50)
    assert board_count(browser) == 1
    assert live_row.count() == 1
    assert "waiting for agent" in (live_row.text_content() or "")
    assert "human_request" in (live_row.text_content() or "")
    assert f"bundle={served.bundle}" in page.url
    assert unfiltered.stat().st_size > 10_000
    assert filtered.stat().st_size > 10_000
    assert browser.errors == []


def test_history_and_quality_draw_charts(browser: Browser, served: Served) -> None:
    sign_in(browser, served)
    page = browser.page

    page.click("nav a[data-view=history]")
    page.wait_for_selector("body[data-loaded=history]")
    volume_svg = page.locator("#chart-volume .main-svg").count()
    agent_rows = page.locator("#table-agents tbody tr").count()
    screenshot(browser, "history")

    page.click("nav a[data-view=quality]")
    page.wait_for_selector("body[data-loaded=quality]")
    precision = page.text_content("[data-metric=precision] .value") or ""
    calibration_svg = page.locator("#chart-calibration .main-svg").count()
    screenshot(browser, "quality")

    assert volume_svg > 0
    assert agent_rows > 1
    assert precision.endswith("%")
    assert calibration_svg > 0
    assert browser.errors == []


def test_csv_export_uses_session(browser: Browser, served: Served) -> None:
    sign_in(browser, served)
    page = browser.page
    page.click("nav a[data-view=quality]")
    page.wait_for_selector("body[data-loaded=quality]")
    href = page.get_attribute("a.csv[data-dataset=calibration]", "href") or ""

    with page.expect_download() as download_info:
        page.click("a.csv[data-dataset=calibration]")
    download = download_info.value
    content = Path(download.path()).read_text()

    assert href.startswith("/dashboard/api/calibration.csv?")
    assert content.splitlines()[0].startswith("bin,lower,upper")
    assert download.suggested_filename.startswith("escalation-calibration-")


def test_session_cookie_not_accepted_on_v1(browser: Browser, served: Served) -> None:
    sign_in(browser, served)
    response = browser.page.request.get(f"{served.base_url}/v1/agents")
    cookies = browser.page.context.cookies()

    assert response.status == 401
    assert [cookie["name"] for cookie in cookies] == ["escalation_session"]
    assert cookies[0]["httpOnly"] is True
    assert cookies[0]["sameSite"] == "Strict"


def test_pages_request_only_the_service(browser: Browser, served: Served) -> None:
    sign_in(browser, served)
    page = browser.page
    for view in ("history", "quality", "board"):
        page.click(f"nav a[data-view={view}]")
        page.wait_for_selector(f"body[data-loaded={view}]")

    service = urlsplit(served.base_url).netloc
    hosts = {urlsplit(url).netloc for url in browser.requests
             if not url.startswith(("data:", "blob:", "about:"))}
    assert hosts == {service}
    assert any(url.endswith("/dashboard/static/plotly.min.js") for url in browser.requests)
    assert browser.errors == []


def test_single_bucket_charts_readable(browser: Browser, served: Served) -> None:
    sign_in(browser, served)
    page = browser.page
    # The hour of the live conversation, so both charts hold exactly one bucket with data.
    hour_start = served.live_posted_at.replace(minute=0, second=0, microsecond=0)
    hour_end = hour_start + timedelta(hours=1)
    query = f"from={hour_start.isoformat()}&to={hour_end.isoformat()}".replace("+", "%2B")

    page.goto(f"{served.base_url}/dashboard?{query}#history")
    page.wait_for_selector("body[data-loaded=history]")
    volume_ticks = page.locator("#chart-volume .xtick text").all_text_contents()
    latency_points = page.locator("#chart-latency .scatterlayer .point").count()
    bar_boxes = [bar.bounding_box() for bar in
                 page.locator("#chart-volume .barlayer .point path").all()]
    screenshot(browser, "history-one-bucket")

    assert volume_ticks
    assert all("." not in tick for tick in volume_ticks), volume_ticks
    assert latency_points >= 2
    assert bar_boxes
    assert all(box is not None and box["width"] > 50 for box in bar_boxes), bar_boxes
    assert browser.errors == []
