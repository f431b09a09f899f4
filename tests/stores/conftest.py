"""Fixtures of the store tests: the keyring environment, a records path, hanging backends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import keyring
import keyring.core
import pytest
from _store_helpers import Detection
from keyring_fakes import (
    HangingKeyring,
)


@pytest.fixture
def detect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Detection:
    """No user keyring config, no PYTHON_KEYRING_BACKEND, and a controllable detection."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    detection = Detection()
    monkeypatch.setattr(keyring, "get_keyring", detection)
    return detection


@pytest.fixture
def records(tmp_path: Path) -> Path:
    return tmp_path / "store" / "records.json"


@pytest.fixture
def hanging() -> Iterator[Callable[..., HangingKeyring]]:
    made: list[HangingKeyring] = []

    def factory(**kwargs: Any) -> HangingKeyring:
        backend = HangingKeyring(**kwargs)
        made.append(backend)
        return backend

    yield factory
    for backend in made:  # let the abandoned calls finish
        backend.release()
        backend.wait_idle()
