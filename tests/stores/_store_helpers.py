"""Helpers shared by the store tests (a plain module: test files import it by name)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Optional

from requests_refreshauth import (
    KeyringTokenStore,
    TokenBundle,
)

NOW = 1_750_000_000.0

SERVICE = "refreshauth-tests"
TIMEOUT = 0.3  # the store's keyring timeout wherever a backend hangs
LOGGER = "requests_refreshauth"

Data = dict[tuple[str, str], str]


def _temp_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def same(a: Optional[str], b: Optional[str]) -> bool:
    return a is not None and b is not None and a == b


def tokens_of(*bundles: TokenBundle) -> list[str]:
    out: list[str] = []
    for bundle in bundles:
        out.append(bundle.access_token)
        if bundle.refresh_token is not None:
            out.append(bundle.refresh_token)
    return out


def assert_no_tokens(text: str, tokens: Iterable[str], where: str) -> None:
    leaked = [index for index, token in enumerate(tokens) if token and token in text]
    assert not leaked, f"token(s) #{leaked} appeared in {where}"


def dir_text(directory: Path) -> str:
    parts = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def read_records(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def snapshot_is(store: KeyringTokenStore, ref: Optional[str], bundle: TokenBundle) -> bool:
    snap = store.active(ref)
    if snap is None:
        return False
    full = snap.bundle.replace(refresh_token=store.read_refresh_token(snap))
    return (
        same(full.access_token, bundle.access_token)
        and full.refresh_token == bundle.refresh_token
        and full.expires_at == bundle.expires_at
    )


class Detection:
    """Stands in for ``keyring.get_keyring`` (what the store calls to auto-detect)."""

    def __init__(self) -> None:
        self.backend: Any = None
        self.calls = 0
        self.hang = 0.0

    def __call__(self) -> Any:
        self.calls += 1
        if self.hang:
            time.sleep(self.hang)
        if self.backend is None:
            raise RuntimeError("keyring auto-detection was not expected in this test")
        return self.backend


def store_on(records: Path, backend: Any = None, **kwargs: Any) -> KeyringTokenStore:
    return KeyringTokenStore(SERVICE, records, backend=backend, **kwargs)
