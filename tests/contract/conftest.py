"""Fixtures of the contract suites: one private Secret Service for the whole session.

Started on first use only (the ``keyring-secret-service`` backing), stopped at the end of
the session. Tests point ``os.environ`` at it themselves (monkeypatch), so nothing outside
the tests that use it sees the private bus. Where it cannot run it skips, except under
``CI=true``, where it fails (``require_secret_service``).

On that slow backing only the ``essential`` store tests run in the default envs; the hook
below marks the rest ``reliability`` (they run once, in tox -e reliability).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _secret_service import SecretService, require_secret_service

from ._backings import mark_slow_variants

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mark_slow_variants([item for item in items if HERE in Path(item.path).resolve().parents])


@pytest.fixture(scope="session")
def contract_secret_service() -> Iterator[SecretService]:
    service = require_secret_service()
    try:
        yield service
    finally:
        service.stop()
