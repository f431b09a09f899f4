"""KeyringTokenStore secret hygiene: no token text in errors, reprs, logs or backend error
messages.

Token values never reach an assertion message: comparisons involving secrets are reduced
to booleans first, and leak checks report only *which* token leaked.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from _store_helpers import (
    SERVICE,
    TIMEOUT,
    assert_no_tokens,
    store_on,
    tokens_of,
)
from fakes import FakeProvider
from keyring.backends import fail
from keyring.errors import KeyringError
from keyring_fakes import (
    FaultyKeyring,
    HangingKeyring,
)
from support import jwt_shaped, make_bundle

from requests_refreshauth import (
    Account,
    AuthError,
    StoreWriteError,
    TokenBundle,
    refresh_access_token,
)
from requests_refreshauth.providers.base import BeforeAttempt

# Every test here runs with no user keyring config and a controlled auto-detection.
pytestmark = pytest.mark.usefixtures("detect")

# --------------------------------------------------------------------------- hygiene


def test_no_token_text_in_errors_reprs_or_logs(
    records: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    hanging: Callable[..., HangingKeyring],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []  # every token that existed during the test
    texts: list[str] = []  # every message, repr and log line to check

    def remember(*bundles: TokenBundle) -> None:
        seen.extend(tokens_of(*bundles))

    def capture(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except AuthError as exc:
            texts.extend([str(exc), repr(exc), repr(exc.args)])

    provider = FakeProvider()
    real_renew = provider.renew

    def renew(
        current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        issued = real_renew(current, before_attempt=before_attempt)
        remember(issued)
        return issued

    provider.renew = renew  # type: ignore[method-assign]

    backend = FaultyKeyring()
    store = store_on(records, backend)
    first = make_bundle("first", expires_in=-10, access=jwt_shaped(600))
    remember(first)
    store.save(Account("alice", "Alice"), first, make_default=True)
    snap = refresh_access_token(store, provider)  # a refresh, logged at INFO/DEBUG
    texts += [repr(store), repr(store.keyring), repr(snap), repr(snap.write_report)]
    texts += [repr(store.active()), repr(store.status()), repr(store.accounts())]

    backend.on("set", "/refresh")  # rollback path
    doomed = make_bundle("doomed")
    remember(doomed)
    capture(lambda: store.save(Account("alice"), doomed))
    backend.heal()
    backend.poke(SERVICE, "alice", "forged-" + secrets.token_hex(8))  # tamper path
    seen.append(backend.peek(SERVICE, "alice") or "")
    capture(store.active)
    capture(lambda: refresh_access_token(store, provider, force=True))
    backend.fail_when = lambda *_: True  # failing reads, writes and deletes
    capture(store.active)
    capture(lambda: store.save(Account("alice"), doomed))
    capture(lambda: store.clear("alice"))

    absent = store_on(tmp_path / "plain.json", fail.Keyring())  # the fallback warning
    plain = make_bundle("plain")
    remember(plain)
    texts.append(repr(absent.save(Account("p"), plain).write_report))

    slow = store_on(tmp_path / "slow.json", hanging(), timeout=TIMEOUT)  # timeouts
    capture(lambda: slow.save(Account("s"), plain))

    texts.append(caplog.text)
    texts += [str(r.args) for r in caplog.records]
    for index, text in enumerate(texts):
        assert_no_tokens(text, seen, f"text #{index}")
    assert seen and caplog.records  # the checks above saw something


def test_backend_error_echoing_the_secret_does_not_leak_it(records: Path) -> None:
    backend = FaultyKeyring()
    bundle = make_bundle()
    store = store_on(records, backend)
    backend.error = lambda: KeyringError(f"cannot store {bundle.access_token}")
    backend.on("set")
    with pytest.raises(StoreWriteError) as info:
        store.save(Account("alice"), bundle)
    assert_no_tokens(str(info.value), tokens_of(bundle), "the error")
