"""A session the server ended (``invalid_grant``) is recorded, and not POSTed again.

The bundle is kept (the server may have been wrong), but every later path of the engine
refuses it without a request until a new login or an explicit retry.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest
import requests
from fakes import FakeProvider, bundle
from keyring_fakes import MemoryKeyring

from requests_refreshauth import (
    Account,
    AuthEvent,
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    RefreshAuth,
    RefreshExpiredError,
    StoreReadError,
    StoreWriteError,
    TokenBundle,
    refresh_access_token,
)
from requests_refreshauth import persist as persist_mod
from requests_refreshauth._cli_format import status_data, status_text
from requests_refreshauth.rescue import forget_process_rescues
from requests_refreshauth.stores.base import AccountStatus, SessionEnded
from requests_refreshauth.token_cache import TokenCache
from requests_refreshauth.token_response import interpret_token_response

ALICE = Account("alice", "Alice")
REFUSED = RefreshExpiredError(
    "Your session has expired or was revoked (invalid_grant: grant revoked). Log in again.",
    error="invalid_grant",
    error_description="grant revoked",
)


@pytest.fixture(params=["memory", "file", "keyring"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryTokenStore()
    if request.param == "file":
        return FileTokenStore(tmp_path / "tokens.json")
    return KeyringTokenStore("svc", tmp_path / "records.json", backend=MemoryKeyring())


def status_of(store: Any) -> AccountStatus:
    status = store.status("alice")
    assert status is not None
    return status


def ended_by_server(store: Any, *, expires_in: float = 300.0) -> FakeProvider:
    """``alice`` logged in, then a forced refresh the server answered ``invalid_grant``."""
    store.save(ALICE, bundle(expires_in), make_default=True)
    provider = FakeProvider()
    provider.fail = REFUSED
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider, force=True)
    assert provider.calls == 1
    provider.fail = None  # from now on a POST would succeed: none may happen
    return provider


def test_invalid_grant_is_recorded_and_the_bundle_kept(store: Any) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    before = store.active("alice")
    provider = FakeProvider()
    provider.fail = REFUSED
    started = time.time()
    with pytest.raises(RefreshExpiredError, match="invalid_grant"):
        refresh_access_token(store, provider)
    status = status_of(store)
    assert isinstance(status.session_ended, SessionEnded)
    assert started <= status.session_ended.at <= time.time()
    assert status.session_ended.reason == "invalid_grant: grant revoked"
    assert status.revision == before.revision  # not a save: caches stay valid
    after = store.active("alice")
    assert after.bundle.access_token == before.bundle.access_token
    assert store.read_refresh_token(after) == store.read_refresh_token(before)


def test_no_post_on_any_later_path(store: Any, events: list[AuthEvent]) -> None:
    provider = ended_by_server(store)  # the stored token still looks fresh
    access = store.active("alice").bundle.access_token
    later = time.time() + 3600  # the token looks expired: the proactive path
    events.clear()
    for kwargs in (
        {},
        {"force": True},
        {"rejected_token": access},
        {"clock": lambda: later},
        {"known": store.active("alice")},
    ):
        with pytest.raises(RefreshExpiredError, match="Log in again") as info:
            refresh_access_token(store, provider, **kwargs)
        assert access not in str(info.value)
    assert provider.calls == 1
    assert [e.kind for e in events] == ["login_required"] * 5
    assert all(e.account == ALICE for e in events)


def test_a_cold_process_does_not_send_the_stored_token(store: Any) -> None:
    provider = ended_by_server(store)
    with pytest.raises(RefreshExpiredError):
        TokenCache(store, provider).current()
    auth = RefreshAuth(store, provider)
    request = requests.Request("GET", "https://api.example.test/").prepare()
    with pytest.raises(RefreshExpiredError):
        auth(request)
    assert "Authorization" not in request.headers
    assert provider.calls == 1


def test_waiters_queued_during_the_failing_post_do_not_post(store: Any) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    provider = FakeProvider()
    provider.fail = REFUSED
    entered = threading.Event()

    def hold(_current: TokenBundle) -> None:
        entered.set()
        time.sleep(0.3)

    provider.on_renew = hold
    errors: list[BaseException] = []

    def refresh(**kwargs: Any) -> None:
        try:
            refresh_access_token(store, provider, **kwargs)
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    first = threading.Thread(target=refresh)
    first.start()
    assert entered.wait(5)
    rejected = store.active("alice").bundle.access_token
    waiters = [
        threading.Thread(target=refresh, kwargs=kw)
        for kw in ({}, {"force": True}, {"rejected_token": rejected})
    ]
    for thread in waiters:
        thread.start()
    for thread in [first, *waiters]:
        thread.join(10)
    assert provider.calls == 1
    assert len(errors) == 4
    assert all(isinstance(e, RefreshExpiredError) for e in errors)


def test_a_new_login_during_the_post_is_not_marked(store: Any) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    provider = FakeProvider()
    provider.fail = REFUSED
    fresh = bundle(300)
    provider.on_renew = lambda _current: store.save(ALICE, fresh)
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider)
    assert status_of(store).session_ended is None
    provider.on_renew = None
    provider.fail = None
    assert refresh_access_token(store, provider).bundle.access_token == fresh.access_token
    assert provider.calls == 1


def test_mark_is_a_compare_and_swap(store: Any) -> None:
    store.save(ALICE, bundle(300), make_default=True)
    old = status_of(store).revision
    store.save(ALICE, bundle(300))  # a new login
    assert store.mark_session_ended("alice", old, "invalid_grant") is False
    assert status_of(store).session_ended is None
    assert store.mark_session_ended("nobody", old, "invalid_grant") is False
    now = status_of(store).revision
    assert store.mark_session_ended("alice", now, "invalid_grant") is True
    ended = status_of(store).session_ended
    assert ended is not None and ended.reason == "invalid_grant"
    assert status_of(store).revision == now


def test_a_login_clears_the_mark(store: Any) -> None:
    provider = ended_by_server(store)
    store.save(ALICE, bundle(300))
    assert status_of(store).session_ended is None
    assert [s.session_ended for s in store.accounts()] == [None]
    refresh_access_token(store, provider)
    assert provider.calls == 1


def test_an_explicit_retry_posts_once_and_clears_the_mark(store: Any) -> None:
    provider = ended_by_server(store)
    provider.fail = REFUSED
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider, retry_ended_session=True)
    assert provider.calls == 2
    assert status_of(store).session_ended is not None  # re-marked

    provider.fail = None
    old = store.active("alice").bundle.access_token
    renewed = refresh_access_token(store, provider, retry_ended_session=True)
    assert provider.calls == 3
    assert renewed.bundle.access_token != old
    assert status_of(store).session_ended is None
    assert refresh_access_token(store, provider).bundle.access_token == renewed.bundle.access_token
    assert provider.calls == 3


def test_the_reason_carries_no_secret(store: Any) -> None:
    store.save(ALICE, bundle(-10), make_default=True)
    refresh = store.read_refresh_token(store.active("alice"))
    provider = FakeProvider()
    provider.fail = RefreshExpiredError(
        "expired", error="invalid_grant", error_description=f"token {refresh} revoked " + "x" * 900
    )
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider)
    ended = status_of(store).session_ended
    assert ended is not None
    reason = ended.reason
    assert refresh not in reason
    assert reason.startswith("invalid_grant: token *** revoked")
    assert len(reason) <= 200


def test_a_local_end_of_life_is_not_a_server_mark(store: Any) -> None:
    store.save(ALICE, bundle(-10, refresh_expires_at=time.time() - 1), make_default=True)
    with pytest.raises(RefreshExpiredError, match="end of life"):
        refresh_access_token(store, FakeProvider())
    assert status_of(store).session_ended is None


class PlainStore:
    """A third-party store: the protocol only, no ``mark_session_ended``."""

    def __init__(self) -> None:
        self.inner = MemoryTokenStore()

    def __getattr__(self, name: str) -> Any:
        if name == "mark_session_ended":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_a_store_without_the_method_simply_does_not_record() -> None:
    store = PlainStore()
    store.save(ALICE, bundle(-10), make_default=True)
    provider = FakeProvider()
    provider.fail = REFUSED
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider)
    status = store.inner.status()
    assert status is not None and status.session_ended is None


def test_a_failing_mark_still_raises_the_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10), make_default=True)

    def broken(
        account_id: str,
        expected_revision: int,
        reason: str,
        *,
        expected_fingerprint: Optional[str] = None,
        client_id: Optional[str] = None,
    ) -> bool:
        raise StoreWriteError("disk full")

    store.mark_session_ended = broken  # type: ignore[method-assign]
    provider = FakeProvider()
    provider.fail = REFUSED
    with (
        caplog.at_level("DEBUG", logger="requests_refreshauth"),
        pytest.raises(RefreshExpiredError, match="invalid_grant"),
    ):
        refresh_access_token(store, provider)
    assert "could not record" in caplog.text


# ------------------------------------------------------------------ records file


@pytest.mark.parametrize(
    "mark",
    [
        "yesterday",
        {"at": "yesterday", "reason": "invalid_grant"},
        {"at": True, "reason": "invalid_grant"},
        {"at": float("nan"), "reason": "invalid_grant"},
        {"at": 1.0, "reason": 5},
        {"at": 1.0},
        {"at": 1.0, "reason": "x" * 5000},
        {"at": 10**400, "reason": "invalid_grant"},  # too large for a float
        {"at": 1.0, "reason": "invalid_grant", "client_id": 7},
    ],
)
@pytest.mark.parametrize("kind", ["file", "keyring"])
def test_a_malformed_mark_is_a_read_error_naming_the_file(
    kind: str, mark: Any, tmp_path: Path
) -> None:
    path = tmp_path / "tokens.json"
    store: Any = (
        FileTokenStore(path)
        if kind == "file"
        else KeyringTokenStore("svc", path, backend=MemoryKeyring())
    )
    store.save(ALICE, bundle(300), make_default=True)
    doc = json.loads(path.read_text())
    doc["accounts"]["alice"]["session_ended"] = mark
    text = json.dumps(doc, allow_nan=True)
    path.write_text(text)
    with pytest.raises(StoreReadError, match=str(path)) as info:
        store.status()
    assert "session" in str(info.value)
    assert path.read_text() == text  # never reset


def test_the_mark_round_trips_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    ended_by_server(FileTokenStore(path))
    record = json.loads(path.read_text())["accounts"]["alice"]
    assert set(record["session_ended"]) == {"at", "reason"}
    status = FileTokenStore(path).status()
    assert status is not None and status.session_ended is not None
    assert status.session_ended.reason == "invalid_grant: grant revoked"


# ------------------------------------------------------------------ the server's words


def test_invalid_grant_carries_its_code_and_description() -> None:
    body = json.dumps({"error": "invalid_grant", "error_description": "grant request is invalid"})
    with pytest.raises(RefreshExpiredError) as info:
        interpret_token_response(400, body, now=time.time())
    assert info.value.error == "invalid_grant"
    assert info.value.error_description == "grant request is invalid"


# ------------------------------------------------------------------ status output


def make_status(**changes: Any) -> AccountStatus:
    now = time.time()
    fields: dict[str, Any] = dict(
        account=ALICE,
        is_default=True,
        revision=1,
        expires_at=now + 300,
        refresh_expires_at=None,
        issued_at=now,
        has_refresh_token=True,
        access_fingerprint="abc",
    )
    fields.update(changes)
    return AccountStatus(**fields)


def line(text: str, field: str) -> Optional[str]:
    found = [ln for ln in text.splitlines() if ln.startswith(f"{field}:")]
    return found[0] if found else None


def test_status_text_of_an_expired_token_and_refresh_token() -> None:
    now = time.time()
    text = status_text(make_status(expires_at=now - 2.4, refresh_expires_at=now - 200))
    token = line(text, "Token")
    assert token is not None
    assert "until" not in token
    assert token.startswith("Token:    expired 2s ago (at ")
    refresh = line(text, "Refresh")
    assert refresh is not None
    assert refresh.startswith("Refresh:  expired 3m 20s ago (at ")
    assert "yes" not in refresh
    assert (
        line(text, "Session")
        == "Session:  expired: the refresh token reached its end of life. Log in again."
    )


def test_status_text_of_an_ended_session() -> None:
    ended = SessionEnded(at=time.time() - 123.4, reason="invalid_grant: grant request is invalid")
    status = make_status(session_ended=ended)
    text = status_text(status)
    assert line(text, "Session") == (
        "Session:  ended 2m 03s ago: the server refused the refresh token "
        "(invalid_grant: grant request is invalid). Log in again."
    )
    refresh = line(text, "Refresh")
    assert refresh is not None and "yes" not in refresh
    assert status_data(status)["session_ended"] == {
        "at": ended.at,
        "reason": ended.reason,
        "client_id": None,
    }
    assert status_data(make_status())["session_ended"] is None
    assert line(status_text(make_status()), "Session") is None


def test_status_text_escapes_a_hostile_reason() -> None:
    ended = SessionEnded(at=time.time(), reason="invalid_grant: \x1b[2Jgone\nAccount: x")
    text = status_text(make_status(session_ended=ended))
    assert "\x1b" not in text
    assert len(text.splitlines()) == len(status_text(make_status()).splitlines()) + 1


def test_a_warm_source_stops_sending_the_token_once_the_session_ended(store: Any) -> None:
    store.save(ALICE, bundle(300), make_default=True)
    provider = FakeProvider()
    source = TokenCache(store, provider)
    token = source.current().bundle.access_token  # cached: no engine call until expiry
    provider.fail = REFUSED
    with pytest.raises(RefreshExpiredError):
        source.after_rejection(token)  # the API said 401; the server said invalid_grant
    provider.fail = None
    with pytest.raises(RefreshExpiredError):
        source.current()  # not the cached, dead token
    assert source.cached is None
    assert provider.calls == 1


# ------------------------------------------------------------------ the CLI verbs, in process


def cli_for(store: Any, provider: Any) -> Any:
    import io

    from requests_refreshauth.cli import AuthCommands

    out, err = io.StringIO(), io.StringIO()
    return AuthCommands(store, provider, prog="mycli auth", stdout=out, stderr=err), out, err


def test_status_exits_3_for_a_locally_expired_refresh_token() -> None:
    store = MemoryTokenStore()
    store.save(ALICE, bundle(-10, refresh_expires_at=time.time() - 5), make_default=True)
    commands, out, err = cli_for(store, FakeProvider())
    assert commands.run(commands.status) == 3
    assert "Session:  expired: the refresh token reached its end of life." in out.getvalue()
    assert err.getvalue() == "Run `mycli auth login` to sign in.\n"
    store.save(ALICE, bundle(300))
    commands, out, err = cli_for(store, FakeProvider())
    assert commands.run(commands.status) == 0
    assert (err.getvalue(), "Session:" in out.getvalue()) == ("", False)


def test_token_retry_that_succeeds_prints_the_new_token_and_clears_the_mark() -> None:
    store = MemoryTokenStore()
    provider = ended_by_server(store)
    active = store.active()
    assert active is not None
    old = active.bundle.access_token
    commands, out, err = cli_for(store, provider)
    assert commands.run(commands.token) == 3
    assert out.getvalue() == ""
    assert "has ended" in err.getvalue() and "mycli auth login" in err.getvalue()
    assert provider.calls == 1

    commands, out, err = cli_for(store, provider)
    assert commands.run(commands.token, retry_refresh=True) == 0, err.getvalue()
    assert provider.calls == 2
    active = store.active()
    assert active is not None
    new = active.bundle.access_token
    assert new != old and out.getvalue() == new + "\n"
    status = store.status()
    assert status is not None and status.session_ended is None

    commands, out, err = cli_for(store, provider)
    assert commands.run(commands.accounts_list) == 0
    assert "log in again" not in out.getvalue()


def test_accounts_list_marks_dead_sessions() -> None:
    store = MemoryTokenStore()
    ended_by_server(store)
    store.save(Account("bob", None), bundle(300))
    commands, out, _err = cli_for(store, FakeProvider())
    assert commands.run(commands.accounts_list) == 0
    rows = out.getvalue().splitlines()
    assert rows[0].endswith("session ended, log in again") and rows[0].startswith("*")
    assert rows[1].endswith("refresh token")
    commands, out, _err = cli_for(store, FakeProvider())
    assert commands.run(commands.accounts_list, as_json=True) == 0
    assert [a["session_ended"] is None for a in json.loads(out.getvalue())] == [False, True]


# ------------------------------------------------------------------ review findings


def failing_saves(monkeypatch: pytest.MonkeyPatch, store: Any) -> None:
    """Every save of ``store`` fails from now on (a full disk), until ``monkeypatch.undo``."""

    def full(*_args: Any, **_kwargs: Any) -> Any:
        raise StoreWriteError("disk full")

    monkeypatch.setattr(store, "save", full)
    # The engine retries a failing save this long (default 2 s, waited out in
    # test_persist.py's herd test); what happens after it is the same.
    monkeypatch.setattr(persist_mod, "SAVE_BUDGET", 0.3)


def test_a_rescue_left_by_a_retry_is_adopted_not_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    provider = ended_by_server(store)
    failing_saves(monkeypatch, store)
    rotated = refresh_access_token(store, provider, retry_ended_session=True)
    assert provider.calls == 2  # the server rotated; only the rescue file holds the result
    monkeypatch.undo()  # the disk was fixed
    forget_process_rescues()  # the next process
    assert status_of(store).session_ended is not None
    snapshot = refresh_access_token(store, provider)
    assert snapshot.bundle.access_token == rotated.bundle.access_token
    assert provider.calls == 2  # adopted, nothing sent
    assert status_of(store).session_ended is None  # the save of the rescue cleared the mark


def test_the_cli_token_adopts_a_rescue_of_an_ended_session(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileTokenStore(tmp_path / "tokens.json")
    provider = ended_by_server(store)
    failing_saves(monkeypatch, store)
    rotated = refresh_access_token(store, provider, retry_ended_session=True)
    monkeypatch.undo()
    forget_process_rescues()
    commands, out, err = cli_for(FileTokenStore(tmp_path / "tokens.json"), lambda: provider)
    assert commands.run(commands.token) == 0, err.getvalue()
    assert out.getvalue() == rotated.bundle.access_token + "\n"
    assert provider.calls == 2


def test_the_cli_refuses_an_ended_session_offline_when_nothing_is_rescued() -> None:
    store = MemoryTokenStore()
    ended_by_server(store)

    def offline() -> Any:
        raise AssertionError("the provider was built")

    commands, out, err = cli_for(store, offline)
    assert commands.run(commands.token) == 3
    assert "has ended" in err.getvalue() and out.getvalue() == ""


class View:
    """One process's handle on shared records without a records file (process rescue
    only: a keyring store with ``credential_store="system"`` behaves the same)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_a_process_rescue_is_not_blocked_by_a_mark_a_peer_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared = MemoryTokenStore()
    shared.save(ALICE, bundle(-5), make_default=True)
    mine, peer, provider = View(shared), View(shared), FakeProvider()
    failing_saves(monkeypatch, shared)
    held = refresh_access_token(mine, provider)  # rotated; only this process holds it
    monkeypatch.undo()
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(peer, provider)  # the rotated-out token: refused, marked
    assert status_of(shared).session_ended is not None
    snapshot = refresh_access_token(mine, provider, force=True)  # from the live rescue
    assert snapshot.bundle.access_token != held.bundle.access_token
    assert provider.calls == 3
    assert status_of(shared).session_ended is None


def test_a_retry_of_a_mark_a_peer_retried_since_does_not_post(store: Any) -> None:
    provider = ended_by_server(store)
    seen = status_of(store).session_ended
    assert seen is not None
    provider.fail = REFUSED
    with pytest.raises(RefreshExpiredError):  # a peer's retry, refused again
        refresh_access_token(store, provider, retry_ended_session=seen)
    assert provider.calls == 2
    newer = status_of(store).session_ended
    assert newer is not None and newer != seen
    provider.fail = None
    with pytest.raises(RefreshExpiredError, match="has ended"):
        refresh_access_token(store, provider, retry_ended_session=seen)
    assert provider.calls == 2
    refresh_access_token(store, provider, retry_ended_session=newer)
    assert provider.calls == 3 and status_of(store).session_ended is None


def test_two_cli_retries_of_one_mark_post_once() -> None:
    store = MemoryTokenStore()
    provider = ended_by_server(store)
    provider.fail = REFUSED
    peer, _out, _err = cli_for(store, provider)

    def while_the_peer_retries() -> Any:  # built after our status read (discovery)
        assert peer.run(peer.token, retry_refresh=True) == 3
        return provider

    commands, _out, err = cli_for(store, while_the_peer_retries)
    assert commands.run(commands.token, retry_refresh=True) == 3
    assert provider.calls == 2  # the first refusal and the peer's retry
    assert "has ended" in err.getvalue()


def test_mark_compares_the_access_fingerprint(store: Any) -> None:
    store.save(ALICE, bundle(300), make_default=True)
    status = status_of(store)
    assert status.access_fingerprint is not None
    other = "0" * len(status.access_fingerprint)
    assert not store.mark_session_ended(
        "alice", status.revision, "invalid_grant", expected_fingerprint=other
    )
    assert status_of(store).session_ended is None
    assert store.mark_session_ended(
        "alice", status.revision, "invalid_grant", expected_fingerprint=status.access_fingerprint
    )


def test_a_login_into_a_recreated_records_file_is_not_marked(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    store = FileTokenStore(path)
    store.save(ALICE, bundle(-5), make_default=True)
    provider = FakeProvider()
    fresh = bundle(300)

    def relogin_meanwhile(_current: Any) -> None:  # the file removed, a login: revision 1 again
        path.unlink()
        FileTokenStore(path).save(ALICE, fresh, make_default=True)
        provider.fail = REFUSED

    provider.on_renew = relogin_meanwhile
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, provider)
    assert status_of(store).revision == 1
    assert status_of(store).session_ended is None
    provider.on_renew = None
    assert refresh_access_token(store, provider).bundle.access_token == fresh.access_token


def test_a_stored_reason_cannot_fake_lines_in_the_token_error(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    FileTokenStore(path).save(ALICE, bundle(300), make_default=True)
    doc = json.loads(path.read_text())
    reason = "x)\nToken OK, exit 0\n(" + "y" * 400
    doc["accounts"]["alice"]["session_ended"] = {"at": 1.0, "reason": reason}
    path.write_text(json.dumps(doc))
    commands, _out, err = cli_for(FileTokenStore(path), lambda: None)
    assert commands.run(commands.token) == 3
    lines = err.getvalue().splitlines()
    assert len(lines) == 2, lines  # the error, and how to sign in
    assert "x)\\nToken OK" in lines[0] and len(lines[0]) < 400
    with pytest.raises(RefreshExpiredError) as info:
        refresh_access_token(FileTokenStore(path), FakeProvider())
    assert "\n" not in str(info.value)


def with_client(client_id: str, **kwargs: Any) -> FakeProvider:
    provider = FakeProvider(**kwargs)
    provider.client_id = client_id  # type: ignore[attr-defined]
    return provider


def test_a_mark_made_for_another_client_does_not_apply(store: Any) -> None:
    store.save(ALICE, bundle(300), make_default=True)
    wrong = with_client("misconfigured")
    wrong.fail = REFUSED  # "issued to another client"
    with pytest.raises(RefreshExpiredError):
        refresh_access_token(store, wrong, force=True)
    ended = status_of(store).session_ended
    assert ended is not None and ended.client_id == "misconfigured"
    wrong.fail = None
    with pytest.raises(RefreshExpiredError, match="has ended"):
        refresh_access_token(store, wrong, force=True)  # that client: still refused
    assert wrong.calls == 1
    right = with_client("the-client")
    refresh_access_token(store, right, force=True)
    assert right.calls == 1 and status_of(store).session_ended is None


def test_a_mark_without_a_client_id_applies_to_every_client(store: Any) -> None:
    store.save(ALICE, bundle(300), make_default=True)
    assert store.mark_session_ended("alice", status_of(store).revision, "invalid_grant")
    provider = with_client("the-client")
    with pytest.raises(RefreshExpiredError, match="has ended"):
        refresh_access_token(store, provider, force=True)
    assert provider.calls == 0


def test_a_refresh_token_of_another_client_leaves_the_grant_usable(tmp_path: Path) -> None:
    from requests_refreshauth.testing import LocalAuthServer

    with LocalAuthServer() as server:
        store = FileTokenStore(tmp_path / "tokens.json")
        store.save(Account("alice"), server.login("alice"), make_default=True)
        wrong = server.provider(
            client_id=server.confidential_client_id,
            client_secret=server.confidential_client_secret,
        )
        with pytest.raises(RefreshExpiredError):
            refresh_access_token(store, wrong, force=True)
        ended = status_of(store).session_ended
        assert ended is not None and ended.client_id == server.confidential_client_id
        before = server.stats().refresh_served
        commands, out, err = cli_for(store, server.provider())
        assert commands.run(commands.status) == 0, out.getvalue()
        assert commands.run(commands.token, retry_refresh=False) == 0, err.getvalue()
        refresh_access_token(store, server.provider(), force=True)
        assert server.stats().refresh_served == before + 1
        assert status_of(store).session_ended is None


def test_status_agrees_with_token_for_an_expired_token_without_refresh_token() -> None:
    from fakes import ClientCredentialsFake

    store = MemoryTokenStore()
    store.save(ALICE, bundle(-30, refresh=None), make_default=True)
    commands, out, err = cli_for(store, FakeProvider())
    assert commands.run(commands.token) == 3
    commands, out, err = cli_for(store, lambda: FakeProvider())
    assert commands.run(commands.status) == 3
    assert line(out.getvalue(), "Session") == (
        "Session:  expired: the access token expired and no refresh token is stored. Log in again."
    )
    assert err.getvalue() == "Run `mycli auth login` to sign in.\n"
    # A provider that renews without a refresh token (client credentials): both go on.
    commands, out, err = cli_for(store, ClientCredentialsFake())
    assert commands.run(commands.status) == 0
    assert line(out.getvalue(), "Session") is None
