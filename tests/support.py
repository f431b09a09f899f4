"""Helpers shared by test modules (a plain module: test files import it by name).

conftest.py files are not for importing: every ``tests/**/conftest.py`` would be the
top-level module ``conftest``, and they would displace each other.
"""

from __future__ import annotations

import json
import os
import select
import signal
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from requests_refreshauth import FileTokenStore, PkceProvider, TokenBundle

try:  # tests/ is not a package: pytest puts tests/ itself on sys.path
    from _oidc_server import node_available
except ImportError:  # pragma: no cover - imported from the repository root
    from tests._oidc_server import node_available

if TYPE_CHECKING:
    from _oidc_server import OidcServer

IN_CI = os.environ.get("CI", "").lower() == "true"
SCOPES = ("openid", "profile", "email", "offline_access", "api")


def require_node() -> None:
    """Skip without node on a laptop; fail under CI=true, where skipping would hide it."""
    reason = node_available()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the OIDC test server cannot run: {reason}")
    pytest.skip(reason)


def plain_session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never route 127.0.0.1 through an HTTP(S)_PROXY
    return session


def make_provider(server: OidcServer, **kwargs: object) -> PkceProvider:
    options: dict[str, object] = {
        "client_id": server.client_id,
        "token_endpoint": server.token_endpoint,
        "authorization_endpoint": server.authorization_endpoint,
        "scopes": SCOPES,
        "session": plain_session(),
        "timeout": 10.0,
    }
    options.update(kwargs)
    return PkceProvider(**options)  # type: ignore[arg-type]


def oidc_login(server: OidcServer, provider: PkceProvider, login: str = "alice") -> TokenBundle:
    """A real authorization-code + PKCE login, the browser driven headlessly."""
    request = provider.authorization_request(server.redirect_uri)
    redirect = server.headless_authorize(request.url, login=login)
    query = parse_qs(urlsplit(redirect).query)
    assert query["state"] == [request.state]
    return provider.exchange_code(query["code"][0], request)


def expire(store: FileTokenStore, account: str = "alice", *, by: float = 10.0) -> None:
    """Make the stored access token look expired (the server would still accept it)."""
    snap = store.active(account)
    assert snap is not None
    store.save(snap.account, snap.full_bundle().replace(expires_at=time.time() - by))


def fork_child(work: Callable[[], dict[str, Any]]) -> tuple[int, int]:
    """Fork; the child runs ``work`` and reports its dict (or ``{"error": type}``) as JSON.

    Returns ``(pid, read_fd)`` for :func:`child_report`. The child never returns into
    pytest: it leaves through ``os._exit`` (1 if even the report could not be written).
    """
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid != 0:
        os.close(write_fd)
        return pid, read_fd
    code = 0
    try:
        os.close(read_fd)
        report: dict[str, Any]
        try:
            report = work()
        except BaseException as exc:
            report = {"error": type(exc).__name__}
        os.write(write_fd, json.dumps(report).encode())
        os.close(write_fd)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def child_report(pid: int, read_fd: int, timeout: float) -> dict[str, Any]:
    """A forked child's JSON report from ``read_fd``; the child is killed if it hangs."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([read_fd], [], [], 0.1)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            data += chunk
    os.close(read_fd)
    while True:
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child did not finish in time (deadlock?)")
        time.sleep(0.01)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    return json.loads(data or b"{}")  # type: ignore[no-any-return]


def examples(thorough: int) -> int:
    """`max_examples` for a property test: all `thorough` under HYPOTHESIS_PROFILE=thorough (set
    in tox -e reliability, which runs them once), a quarter in the per-interpreter envs, so the
    interpreter-dependent code is still exercised everywhere while those envs stay fast."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "thorough":
        return thorough
    return max(10, thorough // 4)
