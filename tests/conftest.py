"""Shared fixtures: the real authorization server, logins through it, temp stores."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

# the second real server, django-oauth-toolkit: fixtures `dot_server`, `dot`
from _dot_server import dot, dot_server  # noqa: F401

# tests/ is not a package: pytest puts tests/ itself on sys.path
from _oidc_server import OidcServer, start_oidc_server
from _redis_server import RedisServer, start_redis
from hypothesis import settings
from localhttp import ServerFactory
from support import make_provider, oidc_login, require_node

from requests_refreshauth import Account, AuthEvent, FileTokenStore, PkceProvider, add_listener

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# Property tests: a quarter of the examples in the per-interpreter envs, all of them once in
# tox -e reliability (HYPOTHESIS_PROFILE=thorough). Tests with their own count use
# support.examples(n); this covers the ones on Hypothesis's default of 100.
settings.register_profile("fast", max_examples=25)
settings.register_profile("thorough", max_examples=100)
# tox -e mutation: the same examples for every mutant, so a score does not depend on luck.
settings.register_profile("mutation", max_examples=50, derandomize=True, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast"))


@pytest.fixture
def events() -> Iterator[list[AuthEvent]]:
    """The auth events emitted during the test, in order (the listener is removed after)."""
    seen: list[AuthEvent] = []
    remove = add_listener(seen.append)
    try:
        yield seen
    finally:
        remove()


@pytest.fixture(scope="session")
def oidc_server() -> Iterator[OidcServer]:
    require_node()
    with start_oidc_server(access_token_ttl=300) as server:
        yield server


@pytest.fixture
def oidc(oidc_server: OidcServer) -> OidcServer:
    oidc_server.reset_stats()
    return oidc_server


@pytest.fixture
def provider(oidc: OidcServer) -> PkceProvider:
    return make_provider(oidc)


@pytest.fixture
def servers() -> Iterator[ServerFactory]:
    """Local HTTP servers (localhttp.py), all stopped at the end of the test."""
    with ServerFactory() as factory:
        yield factory


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "tokens.json"


@pytest.fixture
def logged_in(oidc: OidcServer, provider: PkceProvider, store_path: Path) -> FileTokenStore:
    """A FileTokenStore holding a real login for account 'alice'."""
    store = FileTokenStore(store_path)
    store.save(Account("alice", "Alice"), oidc_login(oidc, provider), make_default=True)
    oidc.reset_stats()
    return store


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session (tests/_redis_server.py): every test takes its own
    namespace (e.g. f"t-{uuid4().hex[:8]}"), so they never see each other's keys."""
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone, in tmp_path: kill, restart or reconfigure it."""
    server = start_redis(tmp_path / "redis")
    yield server
    server.kill()
