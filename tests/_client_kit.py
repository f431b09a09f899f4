"""One interface over every HTTP client integration, for the client contract suite.

The contract (tests/test_client_contract.py) is written once and run against each way a
user attaches the library: ``requests`` with ``RefreshAuth`` or ``RefreshAdapter``, and
httpx / httpx2 with ``RefreshAuth``, sync and async (asyncio and trio), the way
google-auth runs one transport compliance suite against every transport.

Every kit sends real HTTP to a :class:`localhttp.LocalServer`. An async kit runs each
request in a new event loop (``asyncio.run`` / ``trio.run``) with a new client, while the
auth object (and so its token cache) lives across them, as it does in a service.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Callable, Optional

import pytest
import requests
from localhttp import client_session

from requests_refreshauth import RefreshAdapter, RefreshAuth

__all__ = ["KINDS", "Outcome", "make_client"]

#: Every integration the contract runs against.
KINDS = (
    "requests-auth",
    "requests-adapter",
    "httpx-sync",
    "httpx-asyncio",
    "httpx-trio",
    "httpx2-sync",
    "httpx2-asyncio",
)


@dataclass(frozen=True)
class Outcome:
    """What the caller saw: the final status and the statuses before it."""

    status: int
    history: list[int]


def _chunks() -> Iterator[bytes]:
    yield b"part-1;"
    yield b"part-2;"


async def _async_chunks() -> AsyncIterator[bytes]:
    yield b"part-1;"
    yield b"part-2;"


class _RequestsClient:
    def __init__(self, session: requests.Session) -> None:
        self.session = session

    def send(self, method: str, url: str, body: Any = None, headers: Any = None) -> Outcome:
        if body == "stream":
            body = _chunks()
        response = self.session.request(method, url, data=body, headers=headers, timeout=5)
        return Outcome(response.status_code, [r.status_code for r in response.history])


class _HttpxSync:
    def __init__(self, module: Any, auth: Any) -> None:
        self.module, self.auth = module, auth

    def send(self, method: str, url: str, body: Any = None, headers: Any = None) -> Outcome:
        content = _chunks() if body == "stream" else body
        with self.module.Client(auth=self.auth, trust_env=False, follow_redirects=True) as c:
            response = c.request(method, url, content=content, headers=headers, timeout=5)
        return Outcome(response.status_code, [r.status_code for r in response.history])


class _HttpxAsync:
    def __init__(self, module: Any, auth: Any, runner: Callable[[Any], Any]) -> None:
        self.module, self.auth, self.runner = module, auth, runner

    def send(self, method: str, url: str, body: Any = None, headers: Any = None) -> Outcome:
        async def main() -> Outcome:
            content = _async_chunks() if body == "stream" else body
            async with self.module.AsyncClient(
                auth=self.auth, trust_env=False, follow_redirects=True
            ) as client:
                response = await client.request(
                    method, url, content=content, headers=headers, timeout=5
                )
            return Outcome(response.status_code, [r.status_code for r in response.history])

        result: Outcome = self.runner(main)
        return result


def _run_trio(main: Callable[[], Any]) -> Any:
    import trio

    return trio.run(main)


def _run_asyncio(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


def _flavour(kind: str) -> Any:
    if kind.startswith("httpx2"):
        if sys.version_info < (3, 11):
            pytest.skip("httpx2 needs Python >= 3.11")
        import httpx2

        return httpx2
    import httpx

    return httpx


def make_client(
    kind: str, store: Any, provider: Any, origin: str, *, origin_scope: bool = False, **kw: Any
) -> Any:
    """A client of ``kind`` whose auth serves ``origin`` (``send(method, url, body)``).

    ``origin_scope``: give the auth ``origin=`` too (the adapter always has one).
    ``kw``: ``skew``, ``clock``, ``account``, the same for every kind.
    """
    if kind == "requests-auth":
        session = client_session()
        session.auth = RefreshAuth(store, provider, **kw)
        return _RequestsClient(session)
    if kind == "requests-adapter":
        session = client_session()
        RefreshAdapter.mount(session, origin + "/", store, provider, **kw)
        return _RequestsClient(session)
    module = _flavour(kind)
    auth_module: Any
    if module.__name__ == "httpx2":
        from requests_refreshauth import httpx2 as auth_module
    else:
        from requests_refreshauth import httpx as auth_module
    scope: Optional[str] = origin if origin_scope else None
    auth = auth_module.RefreshAuth(store, provider, origin=scope, **kw)
    if kind.endswith("-sync"):
        return _HttpxSync(module, auth)
    runner = _run_trio if kind.endswith("-trio") else _run_asyncio
    return _HttpxAsync(module, auth, runner)
