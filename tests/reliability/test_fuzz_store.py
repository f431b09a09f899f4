"""Fuzz through the store: hostile token responses and records files never cost a bundle.

- Token responses: a good bundle is stored (expired, or inside the skew window), the
  token endpoint answers a fuzzed body — over real HTTP from LocalAuthServer's
  ``malformed`` fault, or with any status through ``interpret_token_response`` behind a
  fake provider — and ``refresh_access_token`` runs. Only the typed refresh errors may
  come out, and after any failure the records file is byte-for-byte what it was. When
  the body happens to be a usable token response, exactly that bundle is saved.
- Records files: fuzzed bytes are put at the store's path and every store operation is
  run. A file the loader refuses gives ``StoreReadError`` naming the path from every
  operation, reads and writes alike, and is never modified. A file the loader accepts
  may be read and written, but a write never drops or alters another account.

Example counts are bounded (``EXAMPLES``) to fit the suite's time budget;
``REFRESHAUTH_RELIABILITY_FUZZ_SCALE=10`` multiplies them for a deeper local run. The
strategies include lone UTF-16 surrogates (``"\\ud800"`` escapes are valid JSON), which
once crashed the stores (see the ``test_surrogate_*`` regression tests below).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from _rel_harness import without_mark
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from requests_refreshauth import (
    Account,
    AuthError,
    FileTokenStore,
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    StoreReadError,
    TokenBundle,
    refresh_access_token,
)
from requests_refreshauth.providers.base import BeforeAttempt
from requests_refreshauth.stores.records import FORMAT, Records, RecordsFile
from requests_refreshauth.testing import LocalAuthServer
from requests_refreshauth.token_response import interpret_token_response

pytestmark = pytest.mark.reliability

#: Examples per test; REFRESHAUTH_RELIABILITY_FUZZ_SCALE multiplies them (deeper local runs).
_SCALE = float(os.environ.get("REFRESHAUTH_RELIABILITY_FUZZ_SCALE") or 1)
EXAMPLES = {
    name: max(1, int(count * _SCALE))
    for name, count in {"server": 150, "engine": 400, "records": 400}.items()
}
TYPED_REFRESH_ERRORS = (RefreshTransientError, RefreshExpiredError, RefreshRejectedError)
SETTINGS: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
}

# ----------------------------------------------------------------------------- strategies

_SURROGATES = st.sampled_from(["\ud800", "\udfff", "a\udc80b"])


def texts(max_size: int) -> st.SearchStrategy[str]:
    base = st.text(max_size=max_size)
    return base | _SURROGATES


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | texts(12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(texts(6), children, max_size=3)
    ),
    max_leaves=10,
)
token_values = (
    st.sampled_from(
        ["at-fuzz-ok", "rt-fuzz-ok", "", " ", "a b", "tok\r\nX-Injected: 1", "é", "x" * 3000]
    )
    | texts(20)
    | json_values
)
numbers = (
    st.none()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.sampled_from(["3600", "abc", "1e309", "", True])
)
scopes = texts(20) | st.lists(texts(6), max_size=3) | json_values


_OPTIONAL_FIELDS = {
    "token_type": st.sampled_from(["Bearer", "bearer", "DPoP", "", "Be arer"]) | json_values,
    "expires_in": numbers | json_values,
    "refresh_token": st.just("rt-fuzz-ok") | token_values,
    "refresh_expires_in": numbers,
    "scope": scopes,
    "id_token": token_values,
}


@st.composite
def token_response_bodies(draw: Any) -> str:
    kind = draw(st.sampled_from(["text", "json", "near_valid", "near_valid", "usable", "usable"]))
    if kind == "text":
        return draw(texts(200))
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "usable":  # a usable access token and no error: must always be saved
        document = {"access_token": "at-fuzz-ok"}
        document.update(draw(st.fixed_dictionaries({}, optional=_OPTIONAL_FIELDS)))
        document.update(draw(st.dictionaries(texts(6), json_values, max_size=2)))
        document.pop("error", None)
        return json.dumps(document)
    document = draw(
        st.fixed_dictionaries(
            {},
            optional={
                "access_token": st.just("at-fuzz-ok") | token_values,
                "token_type": st.sampled_from(["Bearer", "bearer", "DPoP", "", "Be arer"])
                | json_values,
                "expires_in": numbers | json_values,
                "refresh_token": st.just("rt-fuzz-ok") | token_values,
                "refresh_expires_in": numbers,
                "scope": scopes,
                "error": st.sampled_from(
                    [
                        "invalid_grant",
                        "invalid_client",
                        "invalid_scope",
                        "temporarily_unavailable",
                        "server_error",
                        "slow_down",
                        "",
                    ]
                )
                | json_values,
                "error_description": texts(30) | json_values,
                "id_token": token_values,
            },
        )
    )
    document.update(draw(st.dictionaries(texts(6), json_values, max_size=2)))
    text = json.dumps(document)
    if draw(st.integers(0, 9)) == 0:  # a response cut short
        text = text[: draw(st.integers(0, len(text)))]
    return text


statuses = st.sampled_from([200, 200, 200, 201, 204, 400, 401, 403, 408, 429, 500, 503]) | (
    st.integers(min_value=100, max_value=599)
)

bundle_dicts = (
    st.fixed_dictionaries(
        {},
        optional={
            "access_token": token_values,
            "refresh_token": token_values,
            "expires_at": numbers,
            "refresh_expires_at": numbers,
            "issued_at": numbers,
            "token_type": st.sampled_from(["Bearer", "bearer", "DPoP", ""]) | json_values,
            "scope": scopes,
        },
    )
    | json_values
)
account_ids = st.sampled_from(["alice", "bob", "", "alice@example.com"]) | texts(8)
records_entries = (
    st.fixed_dictionaries(
        {},
        optional={
            "label": st.none() | texts(8) | json_values,
            "revision": st.integers(min_value=-2, max_value=2**70) | json_values,
            "updated_at": numbers,
            "bundle": bundle_dicts,
        },
    )
    | json_values
)


def _valid_records(draw: Any) -> str:
    records = Records()
    for account_id in draw(st.lists(st.sampled_from(["alice", "bob", "carol"]), unique=True)):
        bundle = TokenBundle(
            f"at-{account_id}",
            draw(st.none() | st.just(f"rt-{account_id}")),
            expires_at=draw(st.none() | st.floats(0, 4e9)),
        )
        records.accounts[account_id] = {
            "label": draw(st.none() | st.sampled_from(["Alice", "shared"])),
            "revision": records.next_revision(),
            "updated_at": 1e9,
            "bundle": bundle.to_dict(),
        }
    records.default = draw(st.none() | st.sampled_from(["alice", "bob", "missing"]))
    return records.to_json()


@st.composite
def records_files(draw: Any) -> bytes:
    kind = draw(st.sampled_from(["binary", "text", "json", "near_valid", "corrupted_valid"]))
    if kind == "binary":
        return draw(st.binary(max_size=300))
    if kind == "text":
        return draw(texts(300)).encode("utf-8", "surrogatepass")
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "near_valid":
        document: dict[str, Any] = {"format": FORMAT}
        document["version"] = draw(st.sampled_from([1, 1, 1, 0, 2, "1", True, None]))
        if draw(st.integers(0, 4)):
            document["accounts"] = draw(st.dictionaries(account_ids, records_entries, max_size=4))
        if draw(st.booleans()):
            document["default"] = draw(account_ids | st.none() | json_values)
        if draw(st.booleans()):
            document["revision"] = draw(numbers | st.integers(min_value=-2, max_value=2**70))
        document.update(draw(st.dictionaries(texts(6), json_values, max_size=2)))
        text = json.dumps(document)
    else:
        text = _valid_records(draw)
    raw = text.encode("utf-8")
    mutation = draw(st.sampled_from(["none", "none", "truncate", "flip", "delete", "bom", "utf16"]))
    if mutation == "truncate":
        raw = raw[: draw(st.integers(0, len(raw)))]
    elif mutation in ("flip", "delete") and raw:
        at = draw(st.integers(0, len(raw) - 1))
        replacement = bytes([draw(st.integers(0, 255))]) if mutation == "flip" else b""
        raw = raw[:at] + replacement + raw[at + 1 :]
    elif mutation == "bom":
        raw = b"\xef\xbb\xbf" + raw
    elif mutation == "utf16":
        raw = text.encode("utf-16")
    return raw


# ----------------------------------------------------------------------------- helpers


def _run(operation: Any) -> tuple[Any, Optional[AuthError]]:
    """(result, None) or (None, the AuthError); any other exception fails the test."""
    try:
        return operation(), None
    except AuthError as exc:
        return None, exc


def _count(section: dict[str, Any], key: str) -> None:
    section[key] = section.get(key, 0) + 1


def _secret_free(exc: BaseException, *secrets: Optional[str]) -> bool:
    shown = [str(exc), repr(exc), *map(str, exc.args)]
    shown += [str(getattr(exc, name, "")) for name in ("message", "error_description")]
    return not any(secret and secret in text for secret in secrets for text in shown)


class FuzzProvider:
    """A refresh-token provider whose token endpoint answers ``self.response``."""

    uses_refresh_token = True
    renew_timeout = 5.0

    def __init__(self) -> None:
        self.response: tuple[int, str, Optional[str], Optional[tuple[str, ...]]] = (
            200,
            "{}",
            None,
            None,
        )
        self.calls = 0

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        self.calls += 1
        status, body, retry_after, requested = self.response
        return interpret_token_response(
            status,
            body,
            now=time.time(),
            previous=current,
            requested_scope=requested,
            retry_after_header=retry_after,
        )


def must_be_saved(status: int, body: str) -> bool:
    """A 2xx whose JSON body has a usable access token and no error: saving it is the
    only way to keep the refresh token the server may just have rotated."""
    if not 200 <= status < 300:
        return False
    try:
        document = json.loads(body)
    except ValueError:
        return False
    if not isinstance(document, dict) or document.get("error") is not None:
        return False
    token = document.get("access_token")
    return isinstance(token, str) and re.fullmatch(r"[\x21-\x7e]+", token) is not None


def _stored_state(store: FileTokenStore, good: TokenBundle, expired: bool) -> tuple[Any, bytes]:
    now = time.time()
    current = good.replace(expires_at=now - 5.0 if expired else now + 30.0, issued_at=now - 3600)
    saved = store.save(Account("alice", "Alice"), current, make_default=True)
    return saved, Path(store.path).read_bytes()


def _check_refresh(
    store: FileTokenStore,
    provider: Any,
    saved: Any,
    raw: bytes,
    expired: bool,
    section: dict[str, Any],
    must_save: bool,
) -> None:
    """Run one refresh against a fuzzed response and check the store's invariants."""
    path = Path(store.path)
    result, error = _run(lambda: refresh_access_token(store, provider, "alice"))
    if error is not None:
        assert isinstance(error, TYPED_REFRESH_ERRORS), repr(error)
        assert not must_save, f"a usable token response was not saved: {error!r}"
        unchanged = path.read_bytes() == raw
        if isinstance(error, RefreshExpiredError):  # the refusal is recorded (issue 9)
            unchanged = without_mark(path.read_bytes()) == json.loads(raw)
        assert unchanged, f"{type(error).__name__} changed the records file"
        assert _secret_free(error, saved.bundle.refresh_token, saved.bundle.access_token)
        _count(section, f"{type(error).__name__} (file unchanged)")
        return
    stored = store.active("alice")
    assert stored is not None
    if result.revision == saved.revision:  # transient failure, current token still valid
        assert not expired
        assert not must_save, "a usable token response was not saved"
        unchanged = path.read_bytes() == raw and result.bundle == saved.bundle
        assert unchanged
        _count(section, "kept the still-valid token (file unchanged)")
        return
    same = stored.bundle == result.bundle
    assert same, "the returned bundle is not the stored one"
    assert stored.revision == saved.revision + 1
    assert stored.is_default  # a silent refresh never moves the default
    _count(section, "usable response: new bundle saved")


# ----------------------------------------------------------------------------- token responses


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with LocalAuthServer() as server:
        directory = tmp_path_factory.mktemp("fuzz-server")
        yield {
            "server": server,
            "provider": server.provider(),
            "store": FileTokenStore(directory / "tokens.json"),
            "good": server.login("alice"),
        }


@settings(max_examples=EXAMPLES["server"], **SETTINGS)
@given(body=token_response_bodies(), expired=st.booleans())
def test_fuzzed_token_response_over_http_keeps_the_bundle(
    fuzz_server: dict[str, Any], reliability_results: Any, body: str, expired: bool
) -> None:
    server = fuzz_server["server"]
    store = fuzz_server["store"]
    section = reliability_results.section("fuzz_token_response_over_http")
    server.clear_faults()
    saved, raw = _stored_state(store, fuzz_server["good"], expired)
    before = server.stats()
    server.inject("malformed", body=body)
    _check_refresh(
        store, fuzz_server["provider"], saved, raw, expired, section, must_be_saved(200, body)
    )
    after = server.stats()
    assert after.token_requests - before.token_requests == 1  # one POST, never a retry
    assert after.faults_injected - before.faults_injected == 1


@pytest.fixture(scope="module")
def fuzz_engine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    directory = tmp_path_factory.mktemp("fuzz-engine")
    return {
        "store": FileTokenStore(directory / "tokens.json"),
        "provider": FuzzProvider(),
        "good": TokenBundle("at-good-7a1b", "rt-good-3c4d", scope=("openid", "api")),
    }


@settings(max_examples=EXAMPLES["engine"], **SETTINGS)
@given(
    status=statuses,
    body=token_response_bodies(),
    retry_after=st.none()
    | st.sampled_from(["1", "0", "-1", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    requested=st.none() | st.just(("openid", "api")),
    expired=st.booleans(),
)
def test_fuzzed_token_response_any_status_keeps_the_bundle(
    fuzz_engine: dict[str, Any],
    reliability_results: Any,
    status: int,
    body: str,
    retry_after: Optional[str],
    requested: Optional[tuple[str, ...]],
    expired: bool,
) -> None:
    store, provider = fuzz_engine["store"], fuzz_engine["provider"]
    section = reliability_results.section("fuzz_token_response_any_status")
    saved, raw = _stored_state(store, fuzz_engine["good"], expired)
    provider.response = (status, body, retry_after, requested)
    calls = provider.calls
    _check_refresh(store, provider, saved, raw, expired, section, must_be_saved(status, body))
    assert provider.calls == calls + 1


# ----------------------------------------------------------------------------- records files


@pytest.fixture(scope="module")
def records_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-records")


def _records_json(records: Records) -> dict[str, str]:
    """Each account's record as canonical JSON text (NaN-safe comparison)."""
    return {k: json.dumps(v, sort_keys=True) for k, v in records.accounts.items()}


@settings(max_examples=EXAMPLES["records"], **SETTINGS)
@given(raw=records_files())
def test_fuzzed_records_file_is_reported_or_preserved(
    records_dir: Path, reliability_results: Any, raw: bytes
) -> None:
    section = reliability_results.section("fuzz_records_file")
    path = records_dir / "tokens.json"
    path.write_bytes(raw)
    os.chmod(path, 0o600)
    store = FileTokenStore(path)
    provider = FuzzProvider()
    fresh = {"access_token": "at-fresh-1", "token_type": "Bearer", "expires_in": 3600}
    provider.response = (200, json.dumps(fresh), None, None)
    outcomes: dict[str, str] = {}

    def attempt(name: str, operation: Any) -> None:
        _, error = _run(operation)
        outcomes[name] = "ok" if error is None else type(error).__name__
        if isinstance(error, StoreReadError):
            assert str(path) in str(error), f"{name}: the error does not name the file"

    loaded, error = _run(RecordsFile(path).load)
    assert error is None or (isinstance(error, StoreReadError) and str(path) in str(error))

    reads: list[tuple[str, Callable[[], object]]] = [
        ("active", lambda: store.active()),
        ("active_alice", lambda: store.active("alice")),
        ("status", lambda: store.status()),
        ("accounts", store.accounts),
    ]
    for name, operation in reads:
        attempt(name, operation)
    unchanged = path.read_bytes() == raw
    assert unchanged, "a read changed the records file"

    if loaded is None:  # refused: every operation says so, nothing is written
        writes: list[tuple[str, Callable[[], object]]] = [
            ("refresh", lambda: refresh_access_token(store, provider, "alice")),
            ("save", lambda: store.save(Account("fuzz-new"), TokenBundle("at-new"))),
            ("clear", lambda: store.clear("alice")),
            ("set_default", lambda: store.set_default("alice")),
        ]
        for name, operation in writes:
            attempt(name, operation)
        assert set(outcomes.values()) == {"StoreReadError"}, outcomes
        unchanged = path.read_bytes() == raw
        assert unchanged, "a refused records file was modified"
        assert provider.calls == 0
        _count(section, "refused: StoreReadError naming the file, file unchanged")
        return

    # Accepted: writes may happen, but never at the expense of another account.
    before = _records_json(loaded)
    try:  # "alice" may also be another account's label: that one is refreshed then
        target = store.status("alice")
    except AuthError:
        target = None
    attempt("refresh", lambda: refresh_access_token(store, provider, "alice"))
    attempt("save", lambda: store.save(Account("fuzz-new"), TokenBundle("at-new")))
    if path.read_bytes() != raw:
        after_records = RecordsFile(path).load()  # what was written parses
        after = _records_json(after_records)
        changed = {"fuzz-new"}
        if target is not None and outcomes["refresh"] == "ok":
            changed.add(target.account.id)
        for account_id, record in before.items():
            if account_id not in changed:
                assert after.get(account_id) == record, f"save altered account {account_id!r}"
        assert set(after) >= set(before)
        assert after_records.default == loaded.default
        assert after_records.extra.keys() == loaded.extra.keys()
    failed_reads = sorted(k for k, v in outcomes.items() if v == "StoreReadError")
    key = "accepted: all operations worked" if not failed_reads else "accepted: some records"
    if failed_reads:
        key += " malformed -> StoreReadError naming the file, other accounts intact"
    _count(section, key)


# ----------------------------------------------------------------- regressions (bugs once found)


def _records_with(
    account_id: str, label: Optional[str], bundle: dict[str, Any], extra_key: Optional[str]
) -> bytes:
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": 1,
        "revision": 1,
        "default": account_id,
        "accounts": {
            account_id: {"label": label, "revision": 1, "updated_at": 1e9, "bundle": bundle}
        },
    }
    if extra_key is not None:  # an unknown top-level key, which every save keeps
        document[extra_key] = None
    return json.dumps(document).encode("ascii")  # lone surrogates become \ud800 escapes


_EXPIRED: dict[str, Any] = {"access_token": "at-1", "refresh_token": "rt-1", "expires_at": 1e9}


@pytest.mark.parametrize(
    ("operation", "account_id", "label", "bundle", "extra_key"),
    [
        pytest.param(
            "status",
            "alice",
            None,
            {**_EXPIRED, "access_token": "\ud800"},
            None,
            id="access-token-then-status",
        ),
        pytest.param("save_other", "alice", "\ud800", _EXPIRED, None, id="label-then-save"),
        pytest.param("save_other", "alice", None, _EXPIRED, "\ud800", id="unknown-key-then-save"),
        pytest.param("refresh", "\ud800", None, _EXPIRED, None, id="account-id-then-refresh"),
    ],
)
def test_surrogate_in_records_file(
    tmp_path: Path,
    operation: str,
    account_id: str,
    label: Optional[str],
    bundle: dict[str, Any],
    extra_key: Optional[str],
) -> None:
    path = tmp_path / "tokens.json"
    raw = _records_with(account_id, label, bundle, extra_key)
    path.write_bytes(raw)
    os.chmod(path, 0o600)
    store = FileTokenStore(path)
    provider = FuzzProvider()
    provider.response = (200, '{"access_token": "at-2", "token_type": "Bearer"}', None, None)
    operations: dict[str, Callable[[], object]] = {
        "status": store.status,
        "save_other": lambda: store.save(Account("bob"), TokenBundle("at-bob")),
        "refresh": lambda: refresh_access_token(store, provider),
    }
    _, error = _run(operations[operation])
    # Either it works, or the file is refused with StoreReadError naming it — never a crash.
    assert error is None or (isinstance(error, StoreReadError) and str(path) in str(error))
    if error is not None or operation == "status":
        assert path.read_bytes() == raw  # refused or read-only: untouched
    else:  # written: every account still readable, the write landed
        assert store.accounts()
        if operation == "refresh":
            snapshot = store.active(account_id)
            assert snapshot is not None and snapshot.bundle.access_token == "at-2"


def _refresh_with_body(tmp_path: Path, body: str) -> tuple[Any, Any]:
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(Account("alice"), TokenBundle(**_EXPIRED), make_default=True)
    provider = FuzzProvider()
    provider.response = (200, body, None, None)
    result = refresh_access_token(store, provider)
    return result, store.active()


def test_surrogate_scope_in_token_response(tmp_path: Path) -> None:
    body = '{"access_token": "at-2", "token_type": "Bearer", "refresh_token": "rt-2", '
    body += '"expires_in": 3600, "scope": "openid \\ud800"}'
    result, stored = _refresh_with_body(tmp_path, body)
    kept = stored.bundle.refresh_token == "rt-2" and result.bundle.access_token == "at-2"
    assert kept, "the rotated refresh token was not saved"


def test_empty_error_field_in_token_response(tmp_path: Path) -> None:
    body = '{"access_token": "at-2", "token_type": "Bearer", "refresh_token": "rt-2", '
    body += '"expires_in": 3600, "error": ""}'
    result, stored = _refresh_with_body(tmp_path, body)
    kept = stored.bundle.refresh_token == "rt-2" and result.bundle.access_token == "at-2"
    assert kept, "the rotated refresh token was not saved"
