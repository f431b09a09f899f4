"""Against a real authorization server: oidc-provider with PKCE and refresh-token rotation.

Expiry is produced by writing ``expires_at`` into the store (or by a client clock that runs
ahead), never by racing the server's TTL, so the counts below cannot flake under load. The
server counts the refresh grants it served; that count is the ground truth.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import TYPE_CHECKING

import pytest
from race import run_workers
from support import expire, make_provider, oidc_login, plain_session

from requests_refreshauth import (
    Account,
    FileTokenStore,
    RefreshAdapter,
    RefreshAuth,
    RefreshExpiredError,
    RefreshTransientError,
    refresh_access_token,
)

if TYPE_CHECKING:
    from pathlib import Path

    from _oidc_server import OidcServer

    from requests_refreshauth import PkceProvider

pytestmark = pytest.mark.integration


class Clock:
    """A client clock that can run ahead of the server's."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def _session_with(kind: str, store: FileTokenStore, provider: PkceProvider, oidc: OidcServer, **kw):
    session = plain_session()
    if kind == "auth":
        session.auth = RefreshAuth(store, provider, **kw)
    else:
        RefreshAdapter.mount(session, oidc.issuer + "/", store, provider, **kw)
    return session


@pytest.mark.parametrize("kind", ["auth", "adapter"])
def test_proactive_refresh_across_several_expiries(
    kind: str, oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    clock = Clock()
    provider = make_provider(oidc, clock=clock)
    session = _session_with(kind, logged_in, provider, oidc, clock=clock)
    assert session.get(oidc.resource_url, timeout=10).status_code == 200
    assert oidc.stats()["refresh_success"] == 0  # a fresh token is used as is

    for cycle in range(1, 4):
        clock.offset += oidc.access_token_ttl  # the cached token is now past its expiry
        response = session.get(oidc.resource_url, timeout=10)
        assert response.status_code == 200
        assert oidc.stats()["refresh_success"] == cycle
        # ...and the next request within the new lifetime refreshes nothing.
        assert session.get(oidc.resource_url, timeout=10).status_code == 200
        assert oidc.stats()["refresh_success"] == cycle

    stats = oidc.stats()
    assert stats["resource_ok"] == 7
    assert stats["resource_unauthorized"] == 0
    assert stats["grants_revoked"] == 0


@pytest.mark.parametrize("kind", ["auth", "adapter"])
def test_cold_process_refreshes_an_expired_stored_token(
    kind: str, oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    expire(logged_in)
    before = logged_in.active()
    assert before is not None
    session = _session_with(kind, logged_in, provider, oidc)
    assert session.get(oidc.resource_url, timeout=10).status_code == 200
    after = logged_in.active()
    assert after is not None
    assert oidc.stats()["refresh_success"] == 1
    assert after.bundle.refresh_token != before.bundle.refresh_token  # rotated and persisted
    assert after.bundle.expires_at is not None and after.bundle.expires_at > time.time() + 200
    assert after.is_default  # a silent refresh keeps the default where it was


@pytest.mark.parametrize("kind", ["auth", "adapter"])
def test_401_with_a_fresh_looking_token_refreshes_once_and_resends(
    kind: str, oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    snap = logged_in.active()
    assert snap is not None
    # The server no longer accepts this token, but its expiry says it has 4 minutes left.
    logged_in.save(snap.account, snap.bundle.replace(access_token="revoked-" + "x" * 20))
    session = _session_with(kind, logged_in, provider, oidc)
    response = session.get(oidc.resource_url, timeout=10)
    assert response.status_code == 200
    assert [r.status_code for r in response.history] == [401]
    stats = oidc.stats()
    assert (stats["resource_unauthorized"], stats["refresh_success"], stats["resource_ok"]) == (
        1,
        1,
        1,
    )
    # The new token is stored, so the next process starts with it.
    stored = logged_in.active()
    assert stored is not None and not stored.bundle.access_token.startswith("revoked-")


@pytest.mark.parametrize("kind", ["auth", "adapter"])
def test_insufficient_scope_401_does_not_refresh(
    kind: str, oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    session = _session_with(kind, logged_in, provider, oidc)
    response = session.get(oidc.scoped_resource_url, timeout=10)
    assert response.status_code == 401
    assert oidc.stats()["refresh_success"] == 0


@pytest.mark.parametrize(
    "mode",
    # Multi-process: the auth form on every interpreter, the adapter form once (reliability);
    # the adapter's in-process paths are covered on every interpreter in test_adapter.py.
    ["auth", pytest.param("adapter", marks=pytest.mark.reliability)],
)
def test_eight_processes_with_an_expired_token_refresh_exactly_once(
    mode: str, oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    expire(logged_in)
    results = run_workers(
        8,
        {
            "records": logged_in.path,
            "client_id": oidc.client_id,
            "token_endpoint": oidc.token_endpoint,
            "url": oidc.resource_url,
            "origin": oidc.issuer + "/",
            "mode": mode,
        },
    )
    assert results == [{"status": 200}] * 8
    stats = oidc.stats()
    assert stats["refresh_success"] == 1
    assert stats["refresh_failure"] == 0
    assert stats["grants_revoked"] == 0

    # The stored refresh token is the live one: a forced refresh with it succeeds.
    refresh_access_token(logged_in, provider, force=True)
    stats = oidc.stats()
    assert stats["refresh_success"] == 2
    assert stats["refresh_failure"] == 0


@pytest.mark.parametrize("shared", [True, False], ids=["one-session", "session-per-thread"])
def test_eight_threads_with_an_expired_token_refresh_exactly_once(
    shared: bool, oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    expire(logged_in)
    barrier = threading.Barrier(8)
    common = plain_session()
    common.auth = RefreshAuth(logged_in, provider)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def worker() -> None:
        session = common
        if not shared:
            session = plain_session()
            session.auth = RefreshAuth(FileTokenStore(logged_in.path), provider)
        barrier.wait()
        try:
            statuses.append(session.get(oidc.resource_url, timeout=15).status_code)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert statuses == [200] * 8
    stats = oidc.stats()
    assert stats["refresh_success"] == 1
    assert stats["refresh_failure"] == 0


def test_invalid_grant_raises_expired_and_keeps_the_stored_bundle(
    oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    snap = logged_in.active()
    assert snap is not None
    logged_in.save(
        snap.account,
        snap.bundle.replace(refresh_token="not-a-token-the-server-issued", expires_at=1.0),
    )
    path = logged_in.path
    with open(path, "rb") as handle:
        before = json.loads(handle.read())["accounts"]["alice"]
    session = plain_session()
    session.auth = RefreshAuth(logged_in, provider)
    with pytest.raises(RefreshExpiredError) as info:
        session.get(oidc.resource_url, timeout=10)
    assert info.value.code == "AUTH_REFRESH_EXPIRED"
    assert "not-a-token" not in str(info.value)
    with open(path, "rb") as handle:
        after = json.loads(handle.read())["accounts"]["alice"]
    ended = after.pop("session_ended")  # the server's refusal is recorded (issue 9)...
    assert ended["reason"].startswith("invalid_grant")
    assert after == before  # ...and the bundle, revision and all, kept
    assert oidc.stats()["refresh_errors"] == {"invalid_grant": 1}


def test_reusing_a_rotated_refresh_token_is_reported_as_expired(
    oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    """What the lock prevents: the server revokes the grant on reuse."""
    old = logged_in.active()
    assert old is not None
    refresh_access_token(logged_in, provider, force=True)  # rotates
    logged_in.save(old.account, old.bundle.replace(expires_at=1.0))  # an old copy wins a race
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(logged_in, provider)
    assert oidc.stats()["grants_revoked"] >= 1


def test_503_with_retry_after_is_retried(
    oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    expire(logged_in)
    oidc.inject_fault(token_status=503, retry_after=1, count=1)
    started = time.monotonic()
    snap = refresh_access_token(logged_in, provider)
    assert time.monotonic() - started >= 0.9  # Retry-After honoured
    assert snap.bundle.expires_at is not None and snap.bundle.expires_at > time.time()
    stats = oidc.stats()
    assert (stats["faults_served"], stats["refresh_success"]) == (1, 1)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"token_status": 500}, "AUTH_REFRESH_TRANSIENT"),
        ({"token_status": 200, "token_body": "<html>oops</html>"}, "AUTH_REFRESH_TRANSIENT"),
        ({"token_status": 200, "token_body": '{"token_type": "Bearer"}'}, "AUTH_REFRESH_TRANSIENT"),
        (
            {"token_status": 400, "token_body": '{"error": "invalid_client"}'},
            "AUTH_REFRESH_REJECTED",
        ),
    ],
)
def test_bad_token_responses_are_typed_and_lose_nothing(
    fault: dict[str, object],
    code: str,
    oidc: OidcServer,
    provider: PkceProvider,
    logged_in: FileTokenStore,
) -> None:
    expire(logged_in)
    with open(logged_in.path, "rb") as handle:
        before = handle.read()
    oidc.inject_fault(count=1, **fault)
    with pytest.raises(Exception) as info:
        refresh_access_token(logged_in, provider)
    assert getattr(info.value, "code", None) == code
    with open(logged_in.path, "rb") as handle:
        assert handle.read() == before
    # The grant is intact: the next attempt succeeds with the stored refresh token.
    refresh_access_token(logged_in, provider)
    assert oidc.stats()["refresh_success"] == 1


def test_transient_failure_inside_the_skew_window_keeps_using_the_current_token(
    oidc: OidcServer,
    provider: PkceProvider,
    logged_in: FileTokenStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    snap = logged_in.active()
    assert snap is not None
    now = time.time()  # a 300 s token with 30 s left: inside the 60 s skew window
    logged_in.save(snap.account, snap.bundle.replace(expires_at=now + 30, issued_at=now - 270))
    oidc.inject_fault(token_status=500, count=1)
    session = plain_session()
    session.auth = RefreshAuth(logged_in, provider, skew=60)
    with caplog.at_level(logging.WARNING, logger="requests_refreshauth"):
        assert session.get(oidc.resource_url, timeout=10).status_code == 200
    assert "still valid" in caplog.text
    assert snap.bundle.access_token not in caplog.text
    assert oidc.stats()["refresh_success"] == 0


def test_transient_failure_after_expiry_raises(
    oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore
) -> None:
    expire(logged_in)
    oidc.inject_fault(token_status=500, count=1)
    session = plain_session()
    session.auth = RefreshAuth(logged_in, provider)
    with pytest.raises(RefreshTransientError):
        session.get(oidc.resource_url, timeout=10)


def test_second_account_is_refreshed_without_moving_the_default(
    oidc: OidcServer, provider: PkceProvider, logged_in: FileTokenStore, store_path: Path
) -> None:
    logged_in.save(Account("bob"), oidc_login(oidc, make_provider(oidc), login="bob"))
    oidc.reset_stats()
    expire(logged_in, "bob")
    session = plain_session()
    session.auth = RefreshAuth(logged_in, provider, account="bob")
    response = session.get(oidc.resource_url, timeout=10)
    assert response.json()["sub"] == "bob"
    assert oidc.stats()["refresh_success"] == 1
    default = logged_in.active()
    assert default is not None and default.account.id == "alice"
