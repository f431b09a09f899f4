"""Against a second real authorization server: django-oauth-toolkit 3.4 (tests/dot/).

PKCE required, refresh-token rotation with reuse protection, no OIDC (so no discovery
document: every endpoint is given by hand, as for GitHub). Logins go through
``requests_refreshauth.login`` and its loopback listener; the browser's side is Django's
login form, driven headlessly. Expiry is produced by writing ``expires_at`` into the store
or by expiring/revoking the token on DOT's side, never by waiting for a TTL. The server
counts the refresh grants it answered; that count is the ground truth.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import pytest
from support import expire, plain_session

from requests_refreshauth import (
    Account,
    FileTokenStore,
    RefreshAuth,
    RefreshExpiredError,
    refresh_access_token,
)
from requests_refreshauth.login import login

if TYPE_CHECKING:
    from pathlib import Path

    from _dot_server import DotServer

pytestmark = pytest.mark.integration

ALICE = Account("alice", "Alice")


def _login(dot: DotServer, store: FileTokenStore, user: str = "alice") -> None:
    said: list[str] = []
    login(
        store,
        dot.provider(),
        open_browser=dot.browser(user),
        identify=lambda bundle: Account(user, user.title()),  # DOT without OIDC: no userinfo
        say=said.append,
        timeout=30,
    )
    assert any("Signed in as" in line for line in said), said


@pytest.fixture
def dot_store(dot: DotServer, tmp_path: Path) -> FileTokenStore:
    """A FileTokenStore holding a real DOT login for ``alice`` (counters zeroed after)."""
    store = FileTokenStore(tmp_path / "tokens.json")
    _login(dot, store)
    dot.reset_stats()
    return store


def _get(dot: DotServer, store: FileTokenStore) -> tuple[int, list[int], object]:
    session = plain_session()
    session.auth = RefreshAuth(store, dot.provider())
    response = session.get(dot.resource_url, timeout=10)
    body = response.json() if response.status_code == 200 else None
    return response.status_code, [r.status_code for r in response.history], body


def _refresh_directly(dot: DotServer, refresh_token: str) -> tuple[int, dict[str, object]]:
    """One raw refresh POST, outside the library (to probe what DOT still accepts)."""
    with plain_session() as http:
        resp = http.post(
            dot.token_endpoint,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                "client_id": dot.client_id,
            },
            timeout=10,
        )
    return resp.status_code, resp.json()


def test_pkce_login_through_the_loopback_listener(dot: DotServer, tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    _login(dot, store)
    snap = store.active()
    assert snap is not None and snap.account.id == "alice" and snap.is_default
    assert snap.bundle.refresh_token
    assert snap.bundle.expires_at is not None
    assert snap.bundle.expires_at > time.time() + dot.access_token_ttl - 30
    assert dot.stats()["code_success"] == 1
    assert _get(dot, store) == (200, [], {"user": "alice", "scope": ["read"]})
    assert dot.stats()["refresh_requests"] == 0  # a fresh token is used as is


def test_bad_tokens_get_401_with_a_bearer_challenge(dot: DotServer) -> None:
    """What makes the 401 path testable: DOT's default view would answer a bare 403."""
    with plain_session() as http:
        missing = http.get(dot.resource_url, timeout=10)
        bad = http.get(dot.resource_url, headers={"Authorization": "Bearer nope"}, timeout=10)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == 'Bearer realm="dot-test"'
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"].startswith(
        'Bearer realm="dot-test", error="invalid_token"'
    )


def test_expired_token_refreshes_once_and_rotates(
    dot: DotServer, dot_store: FileTokenStore
) -> None:
    before = dot_store.active()
    assert before is not None and before.bundle.refresh_token
    dot.expire_access_tokens()  # expired on DOT's side too: only a refresh helps
    expire(dot_store)
    assert _get(dot, dot_store) == (200, [], {"user": "alice", "scope": ["read"]})
    after = dot_store.active()
    assert after is not None and after.bundle.refresh_token
    stats = dot.stats()
    assert (stats["refresh_requests"], stats["refresh_success"]) == (1, 1)
    assert after.bundle.refresh_token != before.bundle.refresh_token  # rotated, persisted
    assert after.is_default
    # The old refresh token is dead at DOT now (and the family with it: reuse protection).
    status, body = _refresh_directly(dot, before.bundle.refresh_token)
    assert (status, body.get("error")) == (400, "invalid_grant")


def test_401_refreshes_once_and_resends(dot: DotServer, dot_store: FileTokenStore) -> None:
    snap = dot_store.active()
    assert snap is not None
    dot.expire_access_tokens()
    # The store still says the token has minutes left: only the 401 can tell.
    status, history, body = _get(dot, dot_store)
    assert (status, history, body) == (200, [401], {"user": "alice", "scope": ["read"]})
    stats = dot.stats()
    assert (stats["resource_unauthorized"], stats["refresh_requests"], stats["resource_ok"]) == (
        1,
        1,
        1,
    )
    assert stats["refresh_success"] == 1
    stored = dot_store.active()
    assert stored is not None and stored.bundle.access_token != snap.bundle.access_token


def test_401_after_revocation_is_a_dead_session(dot: DotServer, dot_store: FileTokenStore) -> None:
    """DOT revokes the refresh token with its access token (RFC 7009 §2.1 allows it):
    the 401 leads to one refresh POST, refused, and "log in again" — not a loop."""
    snap = dot_store.active()
    assert snap is not None
    dot.revoke(snap.bundle.access_token)  # DOT's own revocation endpoint
    with pytest.raises(RefreshExpiredError) as caught:
        _get(dot, dot_store)
    assert caught.value.error == "invalid_grant"
    stats = dot.stats()
    assert (stats["resource_unauthorized"], stats["refresh_requests"]) == (1, 1)
    assert stats["refresh_rejected"] == 1
    assert dot_store.active() is not None  # kept until the user acts


def _stale_copy(dot: DotServer, store: FileTokenStore) -> None:
    """Refresh once, then put the rotated-out refresh token back (a stale copy)."""
    before = store.active()
    assert before is not None
    refresh_access_token(store, dot.provider(), force=True)
    assert dot.stats()["refresh_success"] == 1
    store.save(before.account, before.bundle.replace(expires_at=time.time() - 10))


def test_reused_refresh_token_is_a_dead_session(dot: DotServer, dot_store: FileTokenStore) -> None:
    _stale_copy(dot, dot_store)
    with pytest.raises(RefreshExpiredError) as caught:
        refresh_access_token(dot_store, dot.provider())
    assert caught.value.code == "AUTH_REFRESH_EXPIRED"
    assert caught.value.error == "invalid_grant"
    stats = dot.stats()
    assert (stats["refresh_requests"], stats["refresh_rejected"]) == (2, 1)
    assert dot_store.active() is not None  # the bundle is kept until the user acts


def test_cli_exits_3_on_a_reused_refresh_token(
    dot: DotServer, dot_store: FileTokenStore, tmp_path: Path
) -> None:
    """The standalone CLI, given DOT's endpoints by hand (no discovery), says "log in"."""
    _stale_copy(dot, dot_store)
    argv = [sys.executable, "-m", "requests_refreshauth"]
    argv += ["--client-id", dot.client_id, "--token-endpoint", dot.token_endpoint]
    argv += ["--authorization-endpoint", dot.authorization_endpoint, "--scope=read"]
    argv += ["--store", "file", "--records", str(dot_store.path), "token", "--json"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFRESHAUTH_")}
    env.update(HOME=str(tmp_path), NO_PROXY="*", XDG_CONFIG_HOME=str(tmp_path / "config"))
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert proc.returncode == 3, (proc.stdout, proc.stderr)
    assert json.loads(proc.stdout)["error"]["code"] == "AUTH_REFRESH_EXPIRED"
    assert dot.stats()["refresh_rejected"] == 1


# --------------------------------------------------------------------------- the harness


def test_missing_python312_skips_on_a_laptop_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import _dot_server

    monkeypatch.setattr(_dot_server, "find_python312", lambda: None)
    monkeypatch.setattr(_dot_server, "IN_CI", False)
    with pytest.raises(pytest.skip.Exception, match=r"no Python 3\.12 found"):
        _dot_server.require_dot()
    monkeypatch.setattr(_dot_server, "IN_CI", True)
    with pytest.raises(pytest.fail.Exception, match="CI=true but"):
        _dot_server.require_dot()


def test_venv_build_is_cached_atomic_and_keyed_by_the_requirements(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A failed (or killed) build leaves nothing that looks ready; a good one is reused;
    new requirements build a new one. ``_build`` is replaced: no real venv is made."""
    import _dot_server

    builds: list[Path] = []

    def fake_build(python: str, work: Path) -> None:
        builds.append(work)
        (work / "half").write_text("x")
        if len(builds) == 1:
            raise _dot_server.DotHarnessError("pip install failed (simulated)")

    requirements = tmp_path / "requirements.txt"
    requirements.write_text("Django==5.2.19\n")
    monkeypatch.setattr(_dot_server, "REQUIREMENTS", requirements)
    monkeypatch.setattr(_dot_server, "find_python312", lambda: ("python3.12", "3.12.1"))
    monkeypatch.setattr(_dot_server, "_build", fake_build)
    cache = tmp_path / "cache"

    with pytest.raises(_dot_server.DotHarnessError, match="simulated"):
        _dot_server.build_dot_venv(cache)
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == []
    digest = _dot_server._digest("3.12.1")
    (cache / f".dot-{digest}-killed").mkdir()  # what a SIGKILLed build leaves

    target, seconds = _dot_server.build_dot_venv(cache)
    assert seconds is not None and (target / "ready.json").is_file()
    assert target.name.startswith("dot-") and builds[-1] != target  # built aside, renamed
    assert [p.name for p in cache.iterdir() if p.name.startswith(".dot-")] == []
    assert _dot_server.build_dot_venv(cache) == (target, None)  # warm: no build
    assert len(builds) == 2

    requirements.write_text("Django==5.2.20\n")
    other, seconds = _dot_server.build_dot_venv(cache)
    assert other != target and seconds is not None and len(builds) == 3
