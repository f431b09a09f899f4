"""Issue 11 item 10: pytest turns this package's own deprecation warnings into errors.

pyproject.toml's ``filterwarnings`` matches the package's wording only (so a third party's
deprecation cannot fail the suite): every deprecated API must warn in that wording, or a
test could use it without meaning to and still pass.
"""

from __future__ import annotations

import importlib
import re
import sys
import warnings
from pathlib import Path
from typing import Callable

import pytest
from keyring_fakes import MemoryKeyring

import requests_refreshauth.bundle as bundle_module
import requests_refreshauth.locking as locking
import requests_refreshauth.token_cache as token_cache
from requests_refreshauth import Account, KeyringTokenStore, Snapshot, TokenBundle

ROOT = Path(__file__).resolve().parent.parent


def _error_filter() -> re.Pattern[str]:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = re.findall(r"^\s*'error:([^:']+):DeprecationWarning',?\s*$", text, re.M)
    assert len(found) == 1, found
    return re.compile(found[0], re.I)  # as the warnings module compiles it


def _reimport(name: str, monkeypatch: pytest.MonkeyPatch) -> Callable[[], object]:
    def load() -> object:
        monkeypatch.delitem(sys.modules, name, raising=False)  # restored after the test
        return importlib.import_module(name)

    return load


def _uses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Callable[[], object]]:
    store = KeyringTokenStore("svc", tmp_path / "r.json", backend=MemoryKeyring())
    snap = Snapshot(Account("a"), TokenBundle("at-1", "rt-1"))
    return {
        "KeyringTokenStore.last_write": lambda: store.last_write,
        "Snapshot.full_bundle": snap.full_bundle,
        "Snapshot.load_refresh_token": snap.load_refresh_token,
        "locking.AccountLock": lambda: locking.AccountLock,
        "locking.LockTimeout": lambda: locking.LockTimeout,
        "token_cache.TokenSource": lambda: token_cache.TokenSource,
        "bundle.refresh_token_expired": lambda: bundle_module.refresh_token_expired,
        "module replay": _reimport("requests_refreshauth.replay", monkeypatch),
        "module source": _reimport("requests_refreshauth.source", monkeypatch),
    }


def test_every_deprecation_matches_the_error_filter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pattern = _error_filter()
    unmatched: dict[str, str] = {}
    for name, use in _uses(tmp_path, monkeypatch).items():
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            use()
        messages = [str(w.message) for w in seen if issubclass(w.category, DeprecationWarning)]
        assert messages, f"{name} did not warn"
        for message in messages:
            if not pattern.match(message):
                unmatched[name] = message
    assert unmatched == {}


@pytest.mark.parametrize(
    "message",
    [
        "HTTPResponse.getheaders() is deprecated and will be removed in urllib3 v2.1.0.",
        "datetime.datetime.utcnow() is deprecated and scheduled for removal",
        "pkg_resources is deprecated as an API.",
    ],
)
def test_third_party_deprecations_do_not_match(message: str) -> None:
    assert not _error_filter().match(message)
