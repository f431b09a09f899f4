"""``TokenBundle.extra``: the non-secret extra fields of a token response, kept and stored.

Salesforce's ``instance_url`` is the base URL of every API call and comes only in the
token response, so it must survive a restart (every store, the rescue file) and every
refresh (a field the refresh omits is kept, like a refresh token that did not rotate).
Secrets (``id_token``, Salesforce's ``signature``, anything named like a token, secret,
password, key, code...) and junk (objects, lists, ``null``, control characters,
oversized values) never get in.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import json
import logging
import math
import pickle
import re
import secrets
import string
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyring_fakes import MemoryKeyring
from localhttp import LocalServer, ServerFactory, TokenEndpointScript, client_session
from support import examples

from requests_refreshauth import (
    Account,
    FileTokenStore,
    KeyringTokenStore,
    MemoryTokenStore,
    PkceProvider,
    RetryPolicy,
    TokenBundle,
    refresh_access_token,
)
from requests_refreshauth import _rescue_file as rescue_file
from requests_refreshauth.stores._keyring_records import meta_of
from requests_refreshauth.stores.records import Records, parse_records
from requests_refreshauth.token_response import (
    bundle_from_token_response,
    interpret_token_response,
)

NOW = 1_750_000_000.0
INSTANCE = "https://na1.my.salesforce.com"
IDENTITY = "https://login.salesforce.com/id/00Dx0000000BV7z/005x00000012Q9P"
#: The brief's deny list, written independently of the library's (a test of the rule,
#: not a copy of it).
SECRET_NAME = re.compile(r"token|secret|password|assertion|code|signature|key", re.IGNORECASE)
#: Fields the library interprets itself: never in ``extra``.
INTERPRETED = (
    "access_token",
    "refresh_token",
    "expires_in",
    "expires_at",
    "refresh_expires_in",
    "refresh_token_expires_in",
    "token_type",
    "scope",
)


def salesforce_login(**changes: Any) -> dict[str, Any]:
    """Salesforce's documented web-server-flow token response (no ``expires_in``)."""
    body: dict[str, Any] = {
        "access_token": "00Dx0000000BV7z!AR8AQAxo9UfVkh8AlV0Gomt9Czx9LjHnSSpwBMmb",
        "refresh_token": "5Aep861TSESvWeug_xvFHRBTTbf_YrTWgEyjBJ",
        "signature": "0CmxinZir53Yex7nE0TD+zMpvIWYGb/bdJh6XfOH6EQ=",
        "scope": "id api refresh_token",
        "id_token": "eyJraWQiOiIyMjAiLCJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.e30.c2ln",
        "instance_url": INSTANCE,
        "id": IDENTITY,
        "token_type": "Bearer",
        "issued_at": "1278448832702",
    }
    body.update(changes)
    return {key: value for key, value in body.items() if value is not None}


def interpret(body: Any, **kwargs: Any) -> TokenBundle:
    text = body if isinstance(body, str) else json.dumps(body)
    kwargs.setdefault("now", NOW)
    return interpret_token_response(200, text, **kwargs)


def with_extra(**extra: Any) -> TokenBundle:
    return TokenBundle(
        access_token=f"at-{uuid.uuid4().hex}",
        refresh_token=f"rt-{uuid.uuid4().hex}",
        expires_at=time.time() + 3600,
        issued_at=time.time(),
        extra=extra,
    )


# --------------------------------------------------------------------------- the value


def test_extra_is_an_empty_read_only_mapping_by_default() -> None:
    bundle = TokenBundle("at-1")
    assert dict(bundle.extra) == {}
    assert len(bundle.extra) == 0
    with pytest.raises(TypeError):
        bundle.extra["instance_url"] = INSTANCE  # type: ignore[index]


def test_extra_is_read_only_and_detached_from_the_callers_dict() -> None:
    given_fields: dict[str, Any] = {"instance_url": INSTANCE}
    bundle = TokenBundle("at-1", extra=given_fields)
    given_fields["instance_url"] = "https://evil.example"
    assert bundle.extra["instance_url"] == INSTANCE
    with pytest.raises(TypeError):
        bundle.extra["instance_url"] = "x"  # type: ignore[index]
    with pytest.raises(AttributeError):
        bundle.extra.update({"x": 1})  # type: ignore[attr-defined]


def test_replace_equality_hash_and_pickle_include_extra() -> None:
    plain = TokenBundle("at-1", "rt-1", expires_at=NOW)
    salesforce = plain.replace(extra={"instance_url": INSTANCE})
    assert salesforce.extra == {"instance_url": INSTANCE}
    assert salesforce != plain
    assert salesforce == TokenBundle(
        "at-1", "rt-1", expires_at=NOW, extra={"instance_url": INSTANCE}
    )
    assert hash(salesforce) == hash(plain.replace(extra={"instance_url": INSTANCE}))
    assert len({plain, salesforce, plain.replace(extra={})}) == 2
    assert pickle.loads(pickle.dumps(salesforce)) == salesforce
    assert salesforce.replace(access_token="at-2").extra == {"instance_url": INSTANCE}
    assert salesforce.replace(extra={}) == plain


def test_repr_names_the_extra_fields_but_shows_no_value() -> None:
    bundle = TokenBundle("at-1", extra={"instance_url": INSTANCE, "ok": True, "n": 3})
    shown = repr(bundle) + str(bundle) + repr(bundle.extra)
    assert "instance_url" in shown
    assert INSTANCE not in shown
    assert "True" not in shown
    assert repr(TokenBundle("at-1")).endswith("extra={})")


@pytest.mark.parametrize(
    "extra",
    [
        {"id_token": "eyJ.e30.sig"},
        {"Client_Secret": "s3cr3t-value"},
        {"signature": "sig-value"},
        {"x": None},
        {"x": [1, 2]},
        {"x": {"y": 1}},
        {"x": math.nan},
        {"x": math.inf},
        {"x": 2**70},
        {"x": "a\x1b[31m"},
        {"x": "\ud800"},
        {"x": "v" * 2049},
        {"bad name": "v"},
        {"n" * 65: "v"},
        {"": "v"},
        {f"f{i}": i for i in range(33)},
        "instance_url",
        [("instance_url", INSTANCE)],
    ],
)
def test_a_bundle_refuses_extra_fields_no_response_could_give_it(extra: Any) -> None:
    with pytest.raises(TypeError) as info:
        TokenBundle("at-1", extra=extra)
    message = str(info.value)
    assert message.startswith("extra")
    leaked = any(
        secret in message for secret in ("eyJ.e30.sig", "s3cr3t-value", "sig-value", "\x1b")
    )
    assert not leaked


def test_to_dict_carries_extra_only_when_there_is_some() -> None:
    plain = TokenBundle("at-1", "rt-1")
    assert "extra" not in plain.to_dict()  # an old reader sees exactly what it always saw
    salesforce = plain.replace(extra={"instance_url": INSTANCE, "ok": True, "ratio": 0.5})
    data = salesforce.to_dict()
    assert data["extra"] == {"instance_url": INSTANCE, "ok": True, "ratio": 0.5}
    assert TokenBundle.from_dict(data) == salesforce
    assert TokenBundle.from_dict({"access_token": "at-1"}).extra == {}
    json.dumps(data)  # plain JSON types


# --------------------------------------------------------------------------- responses


def test_salesforce_login_keeps_instance_url_and_drops_the_secrets() -> None:
    bundle = interpret(salesforce_login())
    assert dict(bundle.extra) == {
        "instance_url": INSTANCE,
        "id": IDENTITY,
        "issued_at": "1278448832702",
    }
    # Salesforce's issued_at (milliseconds, a string) is not ours (when we received it).
    assert bundle.issued_at == NOW
    assert bundle.expires_at is None  # no expires_in: the 401 path refreshes
    assert bundle.scope == ("id", "api", "refresh_token")


def test_slack_response_keeps_its_scalars_only() -> None:
    bundle = interpret(
        {
            "ok": True,
            "access_token": "xoxe.xoxp-1-Mi0yLTM0",
            "token_type": "Bearer",
            "scope": "chat:write",
            "expires_in": 43200,
            "refresh_token": "xoxe-1-My0xLTM0",
            "app_id": "A0KRD7HC3",
            "bot_user_id": "U0KRQLJ9H",
            "team": {"name": "Slack Softball Team", "id": "T9TK3CUKW"},
            "enterprise": None,
            "authed_user": {"id": "U1234", "scope": "chat:write"},
            "is_enterprise_install": False,
        }
    )
    assert dict(bundle.extra) == {
        "ok": True,
        "app_id": "A0KRD7HC3",
        "bot_user_id": "U0KRQLJ9H",
        "is_enterprise_install": False,
    }


def test_github_form_encoded_response_has_no_extra() -> None:
    text = (
        "access_token=ghu_16C7e42F292c6912E7710c838347Ae178B4a&expires_in=28800"
        "&refresh_token=ghr_1B4a2e77838347a7E420ce178F2E7c6912E1693&refresh_token_expires_in"
        "=15811200&scope=&token_type=bearer"
    )
    bundle = interpret(text)
    assert dict(bundle.extra) == {}


def test_keycloak_and_entra_fields() -> None:
    bundle = interpret(
        {
            "access_token": "at-kc",
            "expires_in": 300,
            "refresh_expires_in": 1800,
            "refresh_token": "rt-kc",
            "token_type": "Bearer",
            "not-before-policy": 0,
            "session_state": "5e0c4b3e-1e6b-4a3c-9d7e-2f4d1a3b6c7d",
            "ext_expires_in": 3599,
            "scope": "openid profile",
        }
    )
    # session_state identifies the login session: state-named, kept out.
    assert dict(bundle.extra) == {"not-before-policy": 0, "ext_expires_in": 3599}


@pytest.mark.parametrize(
    "name",
    [
        "id_token",
        "ID_TOKEN",
        "issued_token_type",
        "signature",
        "client_secret",
        "password",
        "Passwd",
        "api_key",
        "apiKey",
        "code",
        "device_code",
        "client_assertion",
        "session_state",
        "nonce",
        "credential",
        "set-cookie",
    ],
)
def test_secret_named_fields_never_become_extra(name: str) -> None:
    bundle = interpret({"access_token": "at-1", name: "value-of-a-secret", "keep": "me"})
    assert dict(bundle.extra) == {"keep": "me"}


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("text", True),
        ("", True),
        ("ünïcødé", True),
        ("v" * 2048, True),
        ("v" * 2049, False),
        ("a\nb", False),
        ("a\x00b", False),
        ("\x1b]52;c;aGk=\x07", False),
        ("a\u202eb", False),  # a bidi override
        ("a\x85b", False),  # C1 control
        (True, True),
        (False, True),
        (0, True),
        (-(2**63), True),
        (2**63 - 1, True),
        (2**63, False),
        (1.5, True),
        (None, False),
        ([1, 2], False),
        ({"a": 1}, False),
    ],
)
def test_only_bounded_scalars_become_extra(value: Any, kept: bool) -> None:
    bundle = interpret({"access_token": "at-1", "field": value})
    assert ("field" in bundle.extra) is kept
    if kept:
        assert bundle.extra["field"] == value
        assert type(bundle.extra["field"]) is type(value)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_dropped(literal: str) -> None:
    bundle = interpret('{"access_token": "at-1", "ratio": ' + literal + ', "keep": 1}')
    assert dict(bundle.extra) == {"keep": 1}


def test_a_lone_surrogate_is_dropped() -> None:
    bundle = interpret('{"access_token": "at-1", "field": "\\ud800", "keep": 1}')
    assert dict(bundle.extra) == {"keep": 1}


@pytest.mark.parametrize("name", ["bad name", "naïve", "a/b", "x" * 65, "tab\tname"])
def test_names_outside_the_safe_alphabet_are_dropped(name: str) -> None:
    bundle = interpret({"access_token": "at-1", name: "v", "k" * 64: "kept"})
    assert dict(bundle.extra) == {"k" * 64: "kept"}


def test_at_most_32_fields_in_the_servers_order() -> None:
    fields = {f"f{i:02d}": i for i in range(40)}
    bundle = interpret({"access_token": "at-1", **fields})
    assert dict(bundle.extra) == {f"f{i:02d}": i for i in range(32)}


def test_a_value_carrying_a_token_is_dropped() -> None:
    bundle = interpret(
        {
            "access_token": "at-only-in-the-token-field-1234",
            "refresh_token": "rt-only-in-the-token-field-5678",
            "echo": "Bearer at-only-in-the-token-field-1234",
            "also": "rt-only-in-the-token-field-5678",
            "fine": "x",
        }
    )
    assert dict(bundle.extra) == {"fine": "x"}


def test_interpreted_fields_are_not_extra() -> None:
    bundle = interpret(
        {
            "access_token": "at-1",
            "token_type": "Bearer",
            "expires_in": 60,
            "expires_at": NOW + 60,
            "refresh_token": "rt-1",
            "refresh_expires_in": 600,
            "refresh_token_expires_in": 900,
            "scope": "a b",
            "error": None,
            "keep": "me",
        }
    )
    assert dict(bundle.extra) == {"keep": "me"}


def test_a_response_whose_extra_fields_are_all_junk_still_succeeds() -> None:
    junk = {f"x{i}": [i] for i in range(100)}
    bundle = interpret({"access_token": "at-1", "id_token": "e.y.j", "nested": junk})
    assert dict(bundle.extra) == {}


# --------------------------------------------------------------------------- refresh


def test_a_refresh_merges_extra_fields_into_the_previous_ones() -> None:
    """The rule: a field the refresh sends replaces the old one; one it omits (or sends
    as null, or in a shape we cannot keep) is kept, like an unrotated refresh token."""
    login = interpret(salesforce_login(), now=NOW)
    refreshed = interpret(
        salesforce_login(
            refresh_token=None,  # Salesforce does not rotate
            instance_url=None,  # omitted
            id={"nested": "junk"},  # unusable: the old one is kept
            issued_at="1278448999999",  # replaced
            new_field="added",
        ),
        now=NOW + 100,
        previous=login,
    )
    assert dict(refreshed.extra) == {
        "instance_url": INSTANCE,
        "id": IDENTITY,
        "issued_at": "1278448999999",
        "new_field": "added",
    }
    kept = refreshed.refresh_token == login.refresh_token
    assert kept


def test_a_refresh_sending_null_keeps_the_old_value() -> None:
    previous = TokenBundle("at-0", "rt-0", extra={"instance_url": INSTANCE})
    refreshed = interpret({"access_token": "at-1", "instance_url": None}, previous=previous)
    assert dict(refreshed.extra) == {"instance_url": INSTANCE}


def test_a_login_starts_from_the_responses_fields_only() -> None:
    bundle = bundle_from_token_response({"access_token": "at-1", "org": "x"}, now=NOW)
    assert dict(bundle.extra) == {"org": "x"}


def test_a_merge_is_bounded_and_prefers_the_new_fields() -> None:
    previous = TokenBundle("at-0", "rt-0", extra={f"old{i:02d}": i for i in range(32)})
    refreshed = interpret(
        {"access_token": "at-1", **{f"new{i:02d}": i for i in range(10)}}, previous=previous
    )
    assert len(refreshed.extra) == 32
    assert all(f"new{i:02d}" in refreshed.extra for i in range(10))
    assert [name for name in refreshed.extra if name.startswith("old")] == [
        f"old{i:02d}" for i in range(22)
    ]


# --------------------------------------------------------------------------- stores

SERVICE = "refreshauth-extra-test"


def _file(path: Path) -> Any:
    return FileTokenStore(path)


def _keyring(path: Path, backend: Any) -> Any:
    return KeyringTokenStore(SERVICE, path, backend=backend, credential_store="system")


def _plaintext(path: Path, backend: Any) -> Any:
    return KeyringTokenStore(SERVICE, path, backend=backend, credential_store="plaintext")


class Reopen:
    """Opens a new store object on the same records each call (a restart)."""

    def __init__(self, kind: str, path: Path) -> None:
        self.kind, self.path, self.backend = kind, path, MemoryKeyring()

    def __call__(self) -> Any:
        if self.kind == "file":
            return _file(self.path)
        return (_keyring if self.kind == "keyring" else _plaintext)(self.path, self.backend)


@pytest.fixture(params=["file", "keyring", "plaintext"])
def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> Reopen:
    return Reopen(request.param, tmp_path / "tokens.json")


def test_extra_survives_a_restart_in_every_records_store(reopen: Reopen) -> None:
    bundle = with_extra(instance_url=INSTANCE, ok=True, ratio=0.25, count=7)
    reopen().save(Account("alice"), bundle, make_default=True)
    store = reopen()
    snap = store.active()
    assert snap is not None
    assert dict(snap.bundle.extra) == dict(bundle.extra)
    assert type(snap.bundle.extra["count"]) is int
    assert snap.bundle.replace(refresh_token=store.read_refresh_token(snap)) == bundle
    doc = json.loads(reopen.path.read_text())
    record = doc["accounts"]["alice"]
    stored = record["bundle"] if "bundle" in record else record["meta"]
    assert stored["extra"] == dict(bundle.extra)
    assert doc["version"] == 2  # one record schema (issue 11)


def test_the_keyring_holds_only_the_tokens(tmp_path: Path) -> None:
    backend = MemoryKeyring()
    store = _keyring(tmp_path / "tokens.json", backend)
    store.save(Account("alice"), with_extra(instance_url=INSTANCE))
    assert backend.slots(SERVICE) == ["alice", "alice/refresh"]
    in_keyring = any(INSTANCE in (backend.peek(SERVICE, s) or "") for s in backend.slots(SERVICE))
    assert not in_keyring
    assert INSTANCE in (tmp_path / "tokens.json").read_text()


def test_memory_store_round_trip() -> None:
    store = MemoryTokenStore()
    bundle = with_extra(instance_url=INSTANCE)
    store.save(Account("alice"), bundle, make_default=True)
    snap = store.active()
    assert snap is not None and snap.bundle == bundle


def test_records_without_extra_load_with_an_empty_mapping(reopen: Reopen) -> None:
    reopen().save(Account("alice"), with_extra(), make_default=True)
    text = reopen.path.read_text()
    assert '"extra"' not in text  # what every existing file looks like
    snap = reopen().active()
    assert snap is not None and dict(snap.bundle.extra) == {}


BAD_EXTRA: list[Any] = [
    ["instance_url"],
    "https://na1.my.salesforce.com",
    {"instance_url": None},
    {"instance_url": {"nested": 1}},
    {"id_token": "eyJ-stored-secret"},
    {"bad name": "x"},
    {"x": "\x1b[2J"},
    {f"f{i}": i for i in range(33)},
]


@pytest.mark.parametrize("bad", BAD_EXTRA)
def test_malformed_extra_on_disk_is_ignored_with_one_warning_and_left_alone(
    reopen: Reopen, bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Written by another version, program or Python: it must not lock the account (or
    every account of the file) out; only the unreadable fields are ignored."""
    reopen().save(Account("alice"), with_extra(instance_url=INSTANCE), make_default=True)
    path: Path = reopen.path
    doc = json.loads(path.read_text())
    record = doc["accounts"]["alice"]
    (record["bundle"] if "bundle" in record else record["meta"])["extra"] = bad
    path.write_text(json.dumps(doc))
    content = path.read_bytes()
    caplog.set_level(logging.WARNING, logger="requests_refreshauth")
    store = reopen()
    snap = store.active()
    assert snap is not None and store.read_refresh_token(snap) is not None
    assert "id_token" not in snap.bundle.extra and "x" not in snap.bundle.extra
    assert [status.account.id for status in store.accounts()] == ["alice"]
    assert path.read_bytes() == content
    store.save(Account("bob"), with_extra())
    after = json.loads(path.read_text())
    assert after["accounts"]["alice"] == doc["accounts"]["alice"]  # kept as it was
    (message,) = [r.getMessage() for r in caplog.records if "extra" in r.getMessage()]
    assert str(path) in message and "'alice'" in message
    leaked = "eyJ-stored-secret" in message or "\x1b" in message
    assert not leaked


def test_rescue_file_round_trip(tmp_path: Path) -> None:
    records = str(tmp_path / "tokens.json")
    bundle = with_extra(instance_url=INSTANCE, issued_at="1278448832702")
    rescue = rescue_file.Rescue(Account("alice"), bundle, 3, "fp", 1)
    path = str(tmp_path / "rescue.json")
    rescue_file.write(path, rescue_file.encode(rescue, records))
    verdict, found = rescue_file.load(path, records, Account("alice"))
    assert verdict == rescue_file.OURS and found is not None
    assert found.bundle == bundle
    assert dict(found.bundle.extra) == dict(bundle.extra)


def test_a_rescue_with_malformed_extra_is_still_adopted_without_it(tmp_path: Path) -> None:
    """The rescue holds the only live refresh token: a bad extra field must not cost it."""
    records = str(tmp_path / "tokens.json")
    bundle = with_extra(instance_url=INSTANCE)
    rescue = rescue_file.Rescue(Account("alice"), bundle, 3, "fp", 1)
    doc = json.loads(rescue_file.encode(rescue, records))
    doc["bundle"]["extra"] = {"id_token": "eyJ", "x": [1]}
    path = str(tmp_path / "rescue.json")
    rescue_file.write(path, json.dumps(doc).encode("ascii"))
    verdict, found = rescue_file.load(path, records, Account("alice"))
    assert verdict == rescue_file.OURS and found is not None
    assert found.bundle == bundle.replace(extra={})


# --------------------------------------------------------------------------- the engine

FAST = RetryPolicy(attempts=1, max_wait=1.0, backoff=0.01)


@pytest.fixture
def idp(servers: ServerFactory) -> tuple[LocalServer, TokenEndpointScript]:
    server = servers()
    script = TokenEndpointScript(rotate=False, extra={"signature": "c2lnbmF0dXJl"})
    server.route("/token", script)
    return server, script


def provider_for(server: LocalServer) -> PkceProvider:
    return PkceProvider(
        client_id="cli-app",
        token_endpoint=server.url_for("/token"),
        session=client_session(),
        timeout=5.0,
        retry=FAST,
    )


def test_a_refresh_through_the_engine_keeps_instance_url_in_the_store(
    reopen: Reopen, idp: tuple[LocalServer, TokenEndpointScript], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    server, script = idp
    expired = with_extra(instance_url=INSTANCE, id=IDENTITY).replace(
        expires_at=time.time() - 10, issued_at=time.time() - 910
    )
    reopen().save(Account("alice"), expired, make_default=True)
    snap = refresh_access_token(reopen(), provider_for(server))
    assert len(server.requests) == 1
    assert dict(snap.bundle.extra) == {"instance_url": INSTANCE, "id": IDENTITY}
    after = reopen().active()
    assert after is not None and dict(after.bundle.extra) == dict(snap.bundle.extra)
    renewed = after.bundle.access_token == script.issued[-1]["access_token"]
    assert renewed
    assert "c2lnbmF0dXJl" not in reopen.path.read_text()

    # A later refresh that sends a new instance_url replaces it.
    script.extra["instance_url"] = "https://na2.my.salesforce.com"
    full = after.bundle.replace(refresh_token=reopen().read_refresh_token(after))
    reopen().save(Account("alice"), full.replace(expires_at=time.time() - 10))
    again = refresh_access_token(reopen(), provider_for(server))
    assert dict(again.bundle.extra) == {
        "instance_url": "https://na2.my.salesforce.com",
        "id": IDENTITY,
    }


# --------------------------------------------------------------------------- real keyring


@pytest.fixture(scope="module")
def secret_service() -> Iterator[None]:
    from _secret_service import environment_of, require_secret_service

    service = require_secret_service()
    try:
        with environment_of(service):
            yield
    finally:
        service.stop()


@pytest.mark.integration
def test_extra_round_trip_on_a_real_secret_service(secret_service: None, tmp_path: Path) -> None:
    from keyring.backends import SecretService

    backend = SecretService.Keyring()
    service = f"refreshauth-extra-{secrets.token_hex(5)}"
    records = tmp_path / "tokens.json"
    bundle = with_extra(instance_url=INSTANCE, issued_at="1278448832702", ok=True)
    writer = KeyringTokenStore(service, records, backend=backend, credential_store="system")
    writer.save(Account("alice"), bundle, make_default=True)
    reader = KeyringTokenStore(service, records, backend=backend, credential_store="system")
    snap = reader.active()
    assert snap is not None
    assert dict(snap.bundle.extra) == dict(bundle.extra)
    same = snap.bundle.replace(refresh_token=reader.read_refresh_token(snap)) == bundle
    assert same
    in_keyring = INSTANCE in (backend.get_password(service, "alice") or "")
    assert not in_keyring
    reader.clear("alice")


# --------------------------------------------------------------------------- property

_SECRET_WORDS = ["token", "secret", "password", "assertion", "code", "signature", "key"]
_name_chars = st.text(string.ascii_letters + string.digits + "_.-", max_size=8)


@st.composite
def field_names(draw: st.DrawFn) -> str:
    """Names, half of them secret-named (any case, anywhere in the name)."""
    if draw(st.booleans()):
        word = draw(st.sampled_from(_SECRET_WORDS))
        word = "".join(c.upper() if draw(st.booleans()) else c for c in word)
        return draw(_name_chars) + word + draw(_name_chars)
    return draw(st.one_of(_name_chars, st.text(max_size=12), st.sampled_from(INTERPRETED)))


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def secret_planted_response(fields: dict[str, Any], marker: int) -> tuple[str, list[str]]:
    """A token response of ``fields``; every secret-named one carries a findable value."""
    body = {key: value for key, value in fields.items() if key not in INTERPRETED}
    planted: list[str] = []
    for key in list(body):
        if SECRET_NAME.search(key):
            body[key] = f"planted-secret-{marker}-{len(planted)}"
            planted.append(body[key])
    body["access_token"] = f"at-{marker}"
    return json.dumps(body), planted


def check_records_text(text: str, planted: list[str]) -> None:
    doc = json.loads(text)
    for record in doc["accounts"].values():
        stored = (record.get("bundle") or record.get("meta") or {}).get("extra", {})
        assert not any(SECRET_NAME.search(name) for name in stored)
    leaked = any(secret in text for secret in planted)
    assert not leaked


_responses = st.dictionaries(field_names(), _values, max_size=12)


@settings(max_examples=examples(200), deadline=None)
@given(fields=_responses, marker=st.integers(0, 10**9))
def test_no_secret_named_field_ever_reaches_extra_or_a_record(
    fields: dict[str, Any], marker: int
) -> None:
    text, planted = secret_planted_response(fields, marker)
    bundle = interpret(text)
    assert not any(SECRET_NAME.search(name) for name in bundle.extra)
    assert not any(name in INTERPRETED for name in bundle.extra)
    assert len(bundle.extra) <= 32
    for value in bundle.extra.values():
        assert type(value) in (str, int, float, bool)
        assert not (isinstance(value, float) and not math.isfinite(value))
    # The records both kinds of store write for it (pure: no file, no fsync) ...
    records = Records(
        accounts={
            "file": {"revision": 1, "bundle": bundle.to_dict()},
            "keyring": {"revision": 2, "secrets": "keyring", "slot": "k", "meta": meta_of(bundle)},
        }
    )
    written = records.to_json()
    check_records_text(written, planted)
    # ... read back as they were written.
    again = parse_records(written, "/records.json").accounts["file"]["bundle"]
    assert TokenBundle.from_dict(again) == bundle


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(fields=_responses, marker=st.integers(0, 10**9))
def test_no_secret_named_field_ever_reaches_a_records_file(
    tmp_path: Path, fields: dict[str, Any], marker: int
) -> None:
    text, planted = secret_planted_response(fields, marker)
    bundle = interpret(text)
    path = tmp_path / f"records-{uuid.uuid4().hex}.json"
    FileTokenStore(path).save(Account("alice"), bundle)
    _plaintext(path.with_suffix(".kr.json"), None).save(Account("alice"), bundle)
    for written in (path, path.with_suffix(".kr.json")):
        check_records_text(written.read_text(), planted)
    reread = FileTokenStore(path).active("alice")
    assert reread is not None and reread.bundle == bundle
