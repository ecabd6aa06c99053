"""Tests of dashboard access: session tokens, the login form, cookies and the key header."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.auth import (
    SESSION_COOKIE,
    generate_api_key,
    hash_api_key,
    issue_session_token,
    matching_digest,
    verify_session_token,
)
from serving.dashboard.access import safe_next
from serving.errors import SettingsError
from serving.settings import load_settings
from tests.serving.dashboard.conftest import DAY_QUERY, DIGEST, KEY, dashboard_app

SECRET = b"k" * 32
NOW = 1_800_000_000.0
TTL = 600


# ------------------------------------------------------------------------------ tokens


def test_token_valid_until_expiry() -> None:
    token = issue_session_token(DIGEST, SECRET, 600, NOW)

    assert verify_session_token(token, SECRET, (DIGEST,), NOW + 599, TTL)
    assert not verify_session_token(token, SECRET, (DIGEST,), NOW + 600, TTL)


def test_token_beyond_configured_lifetime_rejected() -> None:
    token = issue_session_token(DIGEST, SECRET, 10**9, NOW)

    assert not verify_session_token(token, SECRET, (DIGEST,), NOW, TTL)
    assert verify_session_token(token, SECRET, (DIGEST,), NOW, 10**9)


def test_lowered_lifetime_shortens_old_tokens() -> None:
    token = issue_session_token(DIGEST, SECRET, 3600, NOW)

    assert not verify_session_token(token, SECRET, (DIGEST,), NOW, TTL)
    assert verify_session_token(token, SECRET, (DIGEST,), NOW + 3000, TTL)


@pytest.mark.parametrize("part", [1, 2, 3, 4])
def test_non_ascii_token_rejected(part: int) -> None:
    pieces = issue_session_token(DIGEST, SECRET, 600, NOW).split(".")
    pieces[part] = pieces[part] + "\u00e9"

    assert not verify_session_token(".".join(pieces), SECRET, (DIGEST,), NOW, TTL)


def test_token_contains_no_key_or_digest() -> None:
    token = issue_session_token(DIGEST, SECRET, 600, NOW)

    assert KEY not in token
    assert DIGEST not in token


@pytest.mark.parametrize("part", [1, 2, 3, 4])
def test_token_tampering_rejected(part: int) -> None:
    pieces = issue_session_token(DIGEST, SECRET, 600, NOW).split(".")
    pieces[part] = "9" + pieces[part][1:] if pieces[part][0] != "9" else "8" + pieces[part][1:]

    assert not verify_session_token(".".join(pieces), SECRET, (DIGEST,), NOW, TTL)


def test_token_other_secret_rejected() -> None:
    token = issue_session_token(DIGEST, SECRET, 600, NOW)

    assert not verify_session_token(token, b"x" * 32, (DIGEST,), NOW, TTL)


def test_token_of_removed_key_rejected() -> None:
    token = issue_session_token(DIGEST, SECRET, 600, NOW)
    _, other = generate_api_key()

    assert not verify_session_token(token, SECRET, (other,), NOW, TTL)
    assert verify_session_token(token, SECRET, (other, DIGEST), NOW, TTL)


@pytest.mark.parametrize("token", [None, "", "v1", "v1.a.b.c.d", "v2.1.2.3.4", ".....",
                                   "v1.\u00b9\u00b2.b.c.d"])
def test_malformed_tokens_rejected(token: str | None) -> None:
    assert not verify_session_token(token, SECRET, (DIGEST,), NOW, TTL)


def test_matching_digest_finds_configured() -> None:
    _, other = generate_api_key()

    assert matching_digest(KEY, (other, DIGEST)) == DIGEST
    assert matching_digest("esk_wrong", (other, DIGEST)) is None
    assert matching_digest(None, (DIGEST,)) is None


# ------------------------------------------------------------------------------ settings


def test_short_session_secret_names_variable() -> None:
    with pytest.raises(SettingsError) as error:
        load_settings({"ESCALATION_API_KEY_HASHES": DIGEST,
                       "ESCALATION_SESSION_SECRET": "too-short-secret"})

    assert "ESCALATION_SESSION_SECRET=(hidden)" in str(error.value)
    assert "at least 32" in str(error.value)
    assert "too-short-secret" not in str(error.value)


def test_session_ttl_bounds_name_variable() -> None:
    with pytest.raises(SettingsError, match="ESCALATION_SESSION_TTL_SECONDS='5'"):
        load_settings({"ESCALATION_API_KEY_HASHES": DIGEST,
                       "ESCALATION_SESSION_TTL_SECONDS": "5"})


# ------------------------------------------------------------------------------ HTTP


@pytest.fixture
def client(scenario_url: str) -> TestClient:
    return TestClient(dashboard_app(scenario_url), follow_redirects=False)


def login(client: TestClient, key: str, next_path: str = "/dashboard",
          **headers: str) -> Any:
    return client.post("/dashboard/login", data={"api_key": key, "next": next_path},
                       headers=headers)


def test_page_redirects_to_login(client: TestClient) -> None:
    response = client.get("/dashboard")

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login?next=/dashboard"


def test_data_needs_credentials(client: TestClient) -> None:
    response = client.get("/dashboard/api/quality", params=DAY_QUERY)

    assert response.status_code == 401
    assert "/dashboard/login" in response.json()["detail"]


def test_data_accepts_key_header(client: TestClient) -> None:
    by_header = client.get("/dashboard/api/quality", params=DAY_QUERY, headers={"X-API-Key": KEY})
    by_bearer = client.get("/dashboard/api/quality", params=DAY_QUERY,
                           headers={"Authorization": f"Bearer {KEY}"})

    assert by_header.status_code == 200
    assert by_bearer.status_code == 200


def test_login_form_served_with_policy(client: TestClient) -> None:
    response = client.get("/dashboard/login")

    assert response.status_code == 200
    assert 'name="api_key"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]


def test_login_sets_strict_httponly_cookie(client: TestClient) -> None:
    response = login(client, KEY)

    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=v1.")
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Max-Age=28800" in cookie
    assert "Path=/" in cookie
    assert KEY not in cookie


def test_secure_cookie_setting(scenario_url: str) -> None:
    plain = login(TestClient(dashboard_app(scenario_url), follow_redirects=False), KEY)
    secure = login(TestClient(dashboard_app(scenario_url, ESCALATION_SESSION_COOKIE_SECURE="true"),
                              follow_redirects=False), KEY)

    assert "Secure" not in plain.headers["set-cookie"]
    assert "Secure" in secure.headers["set-cookie"]


def test_session_cookie_opens_page_and_data(client: TestClient) -> None:
    login(client, KEY)

    assert client.get("/dashboard").status_code == 200
    assert client.get("/dashboard/api/quality", params=DAY_QUERY).status_code == 200


def test_login_wrong_key_rejected(client: TestClient) -> None:
    response = login(client, "esk_not-a-key")

    assert response.status_code == 401
    assert "not valid" in response.text
    assert "set-cookie" not in response.headers


def test_login_with_digest_rejected(client: TestClient) -> None:
    assert login(client, DIGEST).status_code == 401


def test_cross_origin_login_rejected(client: TestClient) -> None:
    response = login(client, KEY, origin="https://attacker.example")

    assert response.status_code == 403
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("target", ["https://attacker.example/dashboard", "//attacker.example",
                                    "/v1/agents", "/dashboard\\@attacker.example"])
def test_login_never_redirects_away(client: TestClient, target: str) -> None:
    response = login(client, KEY, next_path=target)

    assert response.headers["location"] == "/dashboard"


def test_safe_next_keeps_dashboard_paths() -> None:
    assert safe_next("/dashboard?team=billing#history") == "/dashboard?team=billing#history"


def test_login_rejects_json_body(client: TestClient) -> None:
    response = client.post("/dashboard/login", json={"api_key": KEY})

    assert response.status_code == 415
    assert "application/x-www-form-urlencoded" in response.json()["detail"]


def test_logout_clears_cookie(client: TestClient) -> None:
    login(client, KEY)
    response = client.post("/dashboard/logout")

    assert response.status_code == 303
    assert 'escalation_session=""' in response.headers["set-cookie"]
    assert client.get("/dashboard/api/quality", params=DAY_QUERY).status_code == 401


@pytest.mark.parametrize("cookie", ["v1.123.\u00e9.b.c", "v1.99999999999.fp.nonce.sig\u00e9"])
def test_non_ascii_cookie_gives_401(client: TestClient, cookie: str) -> None:
    header = f"{SESSION_COOKIE}={cookie}".encode()
    response = client.get("/dashboard/api/quality", params=DAY_QUERY,
                          headers={b"Cookie": header})

    assert response.status_code == 401


def test_random_secret_not_shared_between_workers(scenario_url: str) -> None:
    first = TestClient(dashboard_app(scenario_url, ESCALATION_SESSION_SECRET=""),
                       follow_redirects=False)
    second = TestClient(dashboard_app(scenario_url, ESCALATION_SESSION_SECRET=""),
                        follow_redirects=False)
    login(first, KEY)
    second.cookies.update(first.cookies)

    assert first.get("/dashboard/api/quality", params=DAY_QUERY).status_code == 200
    assert second.get("/dashboard/api/quality", params=DAY_QUERY).status_code == 401


def test_session_ends_when_key_removed(scenario_url: str) -> None:
    first = TestClient(dashboard_app(scenario_url), follow_redirects=False)
    login(first, KEY)
    _, other = generate_api_key()
    rotated = TestClient(dashboard_app(scenario_url, ESCALATION_API_KEY_HASHES=other),
                         follow_redirects=False)
    rotated.cookies.update(first.cookies)

    assert rotated.get("/dashboard/api/quality", params=DAY_QUERY).status_code == 401


def test_auth_disabled_opens_dashboard(scenario_url: str) -> None:
    open_client = TestClient(dashboard_app(scenario_url, ESCALATION_AUTH_DISABLED="true",
                                           ESCALATION_API_KEY_HASHES=""),
                             follow_redirects=False)

    assert open_client.get("/dashboard").status_code == 200
    assert open_client.get("/dashboard/api/quality", params=DAY_QUERY).status_code == 200
    assert open_client.get("/dashboard/login").headers["location"] == "/dashboard"


def test_hash_helper_matches_settings_digest() -> None:
    assert hash_api_key(KEY) == DIGEST
