"""Provider refusals that mean "log in again", and refresh-token lifetimes (issue 10).

Table-driven over (status, content type, body) as real providers send them: GitHub's
``bad_refresh_token`` on HTTP 200 (form-encoded or JSON), OpenID Connect's
``*_required`` errors (Entra's ``suberror``/``claims``), Auth0's 403 ``invalid_grant``,
Slack's ``{"ok": false}`` bodies. Secrets are compared as booleans, never printed.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any, ClassVar, Optional
from urllib.parse import urlencode

import pytest
from fakes import FakeProvider, bundle

from requests_refreshauth import (
    Account,
    AuthEvent,
    MemoryTokenStore,
    RefreshExpiredError,
    RefreshRejectedError,
    TokenBundle,
    add_listener,
    refresh_access_token,
)
from requests_refreshauth._scrub import hiding
from requests_refreshauth.cli import EXIT_CODES
from requests_refreshauth.providers.pkce import PkceProvider
from requests_refreshauth.token_response import (
    bundle_from_token_response,
    interpret_token_response,
)

NOW = 1_750_000_000.0
RT = "rt-secret-4f3e2d1c0b"
AT = "at-secret-9a8b7c6d5e"
PREVIOUS = TokenBundle(AT, RT, expires_at=NOW - 5, issued_at=NOW - 3605)
CLAIMS = '{"access_token":{"acrs":{"essential":true,"value":"c1"}}}'


def js(**fields: Any) -> str:
    return json.dumps(fields)


def form(**fields: str) -> str:
    return urlencode(fields)


# (id, status, body, error, description, extra)
EXPIRED: list[Any] = [
    (
        "github-200-json",
        200,
        js(
            error="bad_refresh_token",
            error_description="The refresh token passed is incorrect or expired.",
            error_uri="https://docs.github.com/apps/troubleshooting",
        ),
        "bad_refresh_token",
        "The refresh token passed is incorrect or expired.",
        {"error_uri": "https://docs.github.com/apps/troubleshooting"},
    ),
    (
        "github-200-form",
        200,
        form(
            error="bad_refresh_token",
            error_description="The refresh token passed is incorrect or expired.",
            error_uri="https://docs.github.com/apps/troubleshooting",
        ),
        "bad_refresh_token",
        "The refresh token passed is incorrect or expired.",
        {"error_uri": "https://docs.github.com/apps/troubleshooting"},
    ),
    (
        "entra-interaction-required",
        400,
        js(
            error="interaction_required",
            error_description="AADSTS50076: you must use multi-factor authentication",
            error_codes=[50076],
            timestamp="2026-12-02 01:00:00Z",
            trace_id="0d1c-trace",
            correlation_id="9e8f-corr",
            suberror="basic_action",
            claims=CLAIMS,
        ),
        "interaction_required",
        "AADSTS50076: you must use multi-factor authentication",
        {
            "error_codes": [50076],
            "timestamp": "2026-12-02 01:00:00Z",
            "trace_id": "0d1c-trace",
            "correlation_id": "9e8f-corr",
            "suberror": "basic_action",
            "claims": CLAIMS,
        },
    ),
    ("oidc-login-required", 400, js(error="login_required"), "login_required", None, {}),
    ("oidc-consent-required", 400, js(error="consent_required"), "consent_required", None, {}),
    (
        "oidc-account-selection",
        400,
        js(error="account_selection_required"),
        "account_selection_required",
        None,
        {},
    ),
    (
        "oidc-interaction-on-200",
        200,
        js(error="interaction_required"),
        "interaction_required",
        None,
        {},
    ),
    (
        "auth0-403-invalid-grant",
        403,
        js(error="invalid_grant", error_description="Unknown or invalid refresh token."),
        "invalid_grant",
        "Unknown or invalid refresh token.",
        {},
    ),
    ("invalid-grant-401", 401, js(error="invalid_grant"), "invalid_grant", None, {}),
    ("invalid-grant-400-form", 400, form(error="invalid_grant"), "invalid_grant", None, {}),
    (
        "slack-invalid-refresh-token",
        200,
        js(ok=False, error="invalid_refresh_token"),
        "invalid_refresh_token",
        None,
        {},
    ),
    ("slack-token-revoked", 200, js(ok=False, error="token_revoked"), "token_revoked", None, {}),
    ("slack-token-expired", 200, js(ok=False, error="token_expired"), "token_expired", None, {}),
]


@pytest.mark.parametrize(
    ("status", "text", "error", "description", "extra"),
    [case[1:] for case in EXPIRED],
    ids=[case[0] for case in EXPIRED],
)
def test_dead_session_means_log_in_again(
    status: int, text: str, error: str, description: Optional[str], extra: dict[str, Any]
) -> None:
    with pytest.raises(RefreshExpiredError) as info:
        interpret_token_response(status, text, now=NOW, previous=PREVIOUS)
    exc = info.value
    assert exc.code == "AUTH_REFRESH_EXPIRED"
    assert EXIT_CODES[exc.code] == 3
    assert exc.login_required
    assert exc.error == error
    assert exc.error_description == description
    assert dict(exc.extra) == extra
    assert error in str(exc)


REJECTED = [
    (400, js(error="invalid_client")),
    (401, js(error="invalid_client")),
    (400, js(error="unauthorized_client")),
    (400, js(error="invalid_scope")),
    (200, js(error="invalid_client")),
    (200, form(error="unauthorized_client")),
    (200, js(ok=False, error="invalid_client_id")),  # Slack: a configuration problem
    (200, js(ok=False, error="invalid_scope")),
]


@pytest.mark.parametrize(("status", "text"), REJECTED)
def test_configuration_problems_stay_rejected(status: int, text: str) -> None:
    with pytest.raises(RefreshRejectedError) as info:
        interpret_token_response(status, text, now=NOW, previous=PREVIOUS)
    assert not info.value.login_required
    assert EXIT_CODES[info.value.code] != 3


@pytest.mark.parametrize(
    "text",
    [
        js(access_token="at-new-123", error="interaction_required", expires_in=60),
        js(access_token="at-new-123", ok=False, error="token_revoked", refresh_token="rt-new-9"),
        js(ok=True, access_token="at-new-123", refresh_token="rt-new-9"),
    ],
)
def test_usable_token_on_2xx_is_never_lost(text: str) -> None:
    got = interpret_token_response(200, text, now=NOW, previous=PREVIOUS)
    assert got.access_token == "at-new-123"


def test_extra_is_scrubbed_and_bounded() -> None:
    text = js(
        error="interaction_required",
        suberror=f"echo {RT}",
        claims="\x1b[2J" + "c" * 5000,
        refresh_token=RT,  # never kept
        access_token=AT,
        id_token="id-secret-77",
        nested={"a": [RT]},
        **{f"field{i}": "x" for i in range(50)},
    )
    with hiding([RT, AT]), pytest.raises(RefreshExpiredError) as info:
        interpret_token_response(400, text, now=NOW, previous=PREVIOUS)
    extra = info.value.extra
    flat = json.dumps(dict(extra), ensure_ascii=False) + str(info.value)
    leaked = RT in flat or AT in flat or "id-secret-77" in flat or "\x1b" in flat
    assert not leaked
    assert "refresh_token" not in extra and "access_token" not in extra
    assert "id_token" not in extra
    assert len(extra) <= 20
    assert all(len(json.dumps(value)) <= 2100 for value in extra.values())
    assert extra["suberror"] == "echo ***"


# ----------------------------------------------------------------------------- item 2


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"refresh_token_expires_in": 15_897_600}, NOW + 15_897_600),  # GitHub
        ({"refresh_expires_in": 1800}, NOW + 1800),  # Keycloak
        ({"refresh_expires_in": 1800, "refresh_token_expires_in": 600}, NOW + 600),
        ({"refresh_expires_in": 600, "refresh_token_expires_in": 1800}, NOW + 600),
        ({"refresh_expires_in": 0, "refresh_token_expires_in": 600}, NOW + 600),
        ({"refresh_token_expires_in": "garbage"}, None),
    ],
)
def test_refresh_token_lifetime_from_every_spelling(
    fields: dict[str, Any], expected: Optional[float]
) -> None:
    got = bundle_from_token_response(
        {"access_token": "at-1", "refresh_token": "rt-1", **fields}, now=NOW
    )
    assert got.refresh_expires_at == expected


def test_github_refresh_token_expires_in_through_interpret() -> None:
    text = form(
        access_token="ghu_x1",
        expires_in="28800",
        refresh_token="ghr_y1",
        refresh_token_expires_in="15897600",
        token_type="bearer",
        scope="",
    )
    got = interpret_token_response(200, text, now=NOW)
    assert got.refresh_expires_at == NOW + 15_897_600
    assert got.scope is None


@pytest.mark.parametrize("scope", ["", " ", [], [""]])
def test_empty_scope_means_no_scope(scope: Any) -> None:
    got = bundle_from_token_response({"access_token": "at-1", "scope": scope}, now=NOW)
    assert got.scope is None
    parsed = interpret_token_response(200, js(access_token="at-1", scope=scope), now=NOW)
    assert parsed.scope is None


# ----------------------------------------------------------------------------- engine


ALICE = Account("alice", "Alice")


@pytest.mark.parametrize(
    ("status", "text", "reason"),
    [
        (200, form(error="bad_refresh_token"), "bad_refresh_token"),
        (
            400,
            js(error="interaction_required", error_description="MFA needed", suberror="x"),
            "interaction_required: MFA needed",
        ),
        (200, js(ok=False, error="invalid_refresh_token"), "invalid_refresh_token"),
    ],
)
def test_engine_keeps_bundle_marks_and_emits_login_required(
    status: int, text: str, reason: str
) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10), make_default=True)
    snapshot = store.active("alice")
    assert snapshot is not None
    before = snapshot.bundle
    with pytest.raises(RefreshExpiredError) as made:
        interpret_token_response(status, text, now=NOW, previous=before)
    provider: Any = FakeProvider()
    provider.fail = made.value
    seen: list[AuthEvent] = []
    remove = add_listener(seen.append)
    try:
        with pytest.raises(RefreshExpiredError) as info:
            refresh_access_token(store, provider)
    finally:
        remove()
    assert EXIT_CODES[info.value.code] == 3
    assert "login_required" in [event.kind for event in seen]
    status_now = store.status("alice")
    assert status_now is not None and status_now.session_ended is not None
    assert status_now.session_ended.reason == reason
    latest = store.active("alice")
    assert latest is not None
    after = latest.bundle
    kept = after.refresh_token == before.refresh_token and after.access_token == before.access_token
    assert kept


# ----------------------------------------------------------------------------- over HTTP


class _GitHubStandIn(http.server.BaseHTTPRequestHandler):
    """GitHub's token endpoint on a dead refresh token: HTTP 200, form-encoded unless the
    client asked for JSON."""

    accepts: ClassVar[list[Optional[str]]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        accept = self.headers.get("Accept")
        type(self).accepts.append(accept)
        fields = {
            "error": "bad_refresh_token",
            "error_description": "The refresh token passed is incorrect or expired.",
            "error_uri": "https://docs.github.com/apps/troubleshooting",
        }
        as_json = "application/json" in (accept or "")
        raw = (json.dumps(fields) if as_json else urlencode(fields)).encode()
        self.send_response(200)
        ctype = "application/json" if as_json else "application/x-www-form-urlencoded"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_github_bad_refresh_token_over_http_asks_for_json() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GitHubStandIn)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/login/oauth/access_token"
        provider = PkceProvider("Iv1.client", url, timeout=5.0)
        with pytest.raises(RefreshExpiredError) as info:
            provider.renew(PREVIOUS)
    finally:
        server.shutdown()
        server.server_close()
    assert _GitHubStandIn.accepts == ["application/json"]
    assert info.value.error == "bad_refresh_token"
    assert info.value.extra == {"error_uri": "https://docs.github.com/apps/troubleshooting"}
    assert EXIT_CODES[info.value.code] == 3
    leaked = RT in str(info.value) or AT in str(info.value)
    assert not leaked
