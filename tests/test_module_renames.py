"""Modules renamed for what they are (``source`` -> ``token_cache``, ``replay`` -> ``resend``),
with the old names kept, warning, for one release."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import requests_refreshauth.resend as resend
import requests_refreshauth.token_cache as token_cache


def _fresh_import(name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    monkeypatch.delitem(sys.modules, name, raising=False)
    return importlib.import_module(name)


def test_the_old_source_module_warns_and_serves_the_token_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.warns(DeprecationWarning, match="requests_refreshauth.token_cache"):
        old = _fresh_import("requests_refreshauth.source", monkeypatch)
    with pytest.warns(DeprecationWarning, match="renamed TokenCache"):
        assert old.TokenSource is token_cache.TokenCache  # type: ignore[attr-defined]


def test_the_old_class_name_warns_from_the_new_module_too() -> None:
    with pytest.warns(DeprecationWarning, match="renamed TokenCache"):
        assert token_cache.TokenSource is token_cache.TokenCache
    with pytest.raises(AttributeError):
        token_cache.NoSuchName  # noqa: B018


def test_the_old_replay_module_warns_and_serves_resend(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.warns(DeprecationWarning, match="requests_refreshauth.resend"):
        old = _fresh_import("requests_refreshauth.replay", monkeypatch)
    for name in resend.__all__:
        assert getattr(old, name) is getattr(resend, name)


def test_the_package_never_imports_the_old_modules() -> None:
    code = (
        "import sys, warnings;"
        "warnings.filterwarnings('error', message=r'requests_refreshauth\\.(source|replay)');"
        "import requests, requests_refreshauth as r;"
        "r.RefreshAuth; r.RefreshAdapter;"
        "a = r.RefreshAdapter(r.MemoryTokenStore(), None, origin='https://api.example');"
        "print(sorted(m for m in ('requests_refreshauth.source', 'requests_refreshauth.replay')"
        " if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
