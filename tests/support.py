"""Helpers shared by test modules (a plain module: test files import it by name).

conftest.py files are not for importing: every ``tests/**/conftest.py`` would be the
top-level module ``conftest``, and they would displace each other.
"""

from __future__ import annotations

import base64
import json
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, Union
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

# tests/ is not a package: pytest puts tests/ itself on sys.path
from _oidc_server import node_available

from requests_refreshauth import PkceProvider, Snapshot, TokenBundle, TokenStore

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


def expire(store: TokenStore, account: str = "alice", *, by: float = 10.0) -> int:
    """Make the stored access token look expired (the server would still accept it); the
    revision of that save."""
    snap = store.active(account)
    assert snap is not None
    bundle = full_bundle(store, snap).replace(expires_at=time.time() - by)
    return store.save(snap.account, bundle).revision


def full_text(exc: BaseException) -> str:
    """Everything a log or a traceback could show of ``exc``."""
    import traceback

    return "\n".join([str(exc), repr(exc), *traceback.format_exception(type(exc), exc, None)])


def module_cli(env: dict[str, str], *words: str) -> subprocess.CompletedProcess[str]:
    """``python -m requests_refreshauth WORDS`` in a subprocess with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "requests_refreshauth", *words],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def full_bundle(store: TokenStore, snapshot: Snapshot) -> TokenBundle:
    """``snapshot``'s bundle with its refresh token, wherever the store keeps it (the
    deprecated ``Snapshot.full_bundle()``, through the store's explicit read)."""
    return snapshot.bundle.replace(refresh_token=store.read_refresh_token(snapshot))


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
    return json.loads(data or b"{}")


def examples(thorough: int) -> int:
    """`max_examples` for a property test: all `thorough` under HYPOTHESIS_PROFILE=thorough (set
    in tox -e reliability, which runs them once), a quarter in the per-interpreter envs, so the
    interpreter-dependent code is still exercised everywhere while those envs stay fast."""
    if os.environ.get("HYPOTHESIS_PROFILE") == "thorough":
        return thorough
    return max(10, thorough // 4)


# ----------------------------------------------------------------------------- token values


class _Generated:
    """The default of ``make_bundle(refresh_token=...)``: a fresh one (``None`` means none)."""


GENERATED = _Generated()


def make_bundle(
    tag: str = "x",
    *,
    refresh: bool = True,
    access: Optional[str] = None,
    refresh_token: Union[str, _Generated, None] = GENERATED,
    expires_in: float = 3600.0,
    now: Optional[float] = None,
    **fields: Any,
) -> TokenBundle:
    """A bundle whose token values are unique (``at-<tag>-<nonce>``), so a leak check can
    search any text for them. It expires ``expires_in`` seconds after ``now`` (the clock
    by default) and was issued an hour before that; ``fields`` go to ``TokenBundle``."""
    nonce = secrets.token_hex(8)
    start = time.time() if now is None else now
    if not refresh:
        refresh_value: Optional[str] = None
    elif isinstance(refresh_token, _Generated):
        refresh_value = f"rt-{tag}-{nonce}"
    else:
        refresh_value = refresh_token
    fields.setdefault("expires_at", start + expires_in)
    fields.setdefault("issued_at", start + expires_in - 3600.0)
    fields.setdefault("scope", ("openid", "api"))
    return TokenBundle(access or f"at-{tag}-{nonce}", refresh_token=refresh_value, **fields)


def b64url(data: bytes) -> str:
    """Unpadded base64url, as in a JWT."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


JWT_HEADER = {"alg": "RS256", "typ": "JWT", "kid": "k1"}
FAKE_SIGNATURE = b64url(b"not-a-real-signature" * 8)


def jwt(
    claims: Any = None,
    *,
    raw: Optional[bytes] = None,
    header: Optional[dict[str, Any]] = None,
    signature: str = FAKE_SIGNATURE,
) -> str:
    """A JWT-shaped token, ``header.payload.signature``, that nobody signed: what a client
    sees of a JWT access token or an id_token. The payload is ``claims`` as JSON, or the
    ``raw`` bytes (to build malformed ones)."""
    head = b64url(json.dumps(JWT_HEADER if header is None else header).encode())
    body = b64url(raw if raw is not None else json.dumps(claims).encode())
    return f"{head}.{body}.{signature}"


def jwt_shaped(size: int = 4096) -> str:
    """A JWT-looking token of exactly ``size`` characters (header.payload.signature)."""
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT", "kid": "k1"}).encode())
    signature = b64url(secrets.token_bytes(256))
    claims = {"sub": "alice", "exp": int(time.time()) + 3600, "pad": ""}
    payload = b64url(json.dumps(claims).encode())
    missing = size - len(header) - len(signature) - len(payload) - 2
    claims["pad"] = secrets.token_hex(max(0, missing))[: int(missing * 0.75)]
    payload = b64url(json.dumps(claims).encode())
    token = f"{header}.{payload}.{signature}"
    while len(token) < size:  # base64 rounding: top up the signature
        token += "A"
    return token[:size] if len(token) > size else token


# ----------------------------------------------------------------------------- waiting


def wait_until(predicate: Callable[[], object], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed.

    For a condition that another thread or process makes true: the assertion after it then
    does not depend on how fast that happened (only a hang fails it, after ``timeout``),
    unlike a fixed ``sleep``. Returns whether the condition held: ``assert wait_until(...)``.
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return bool(predicate())
        time.sleep(0.01)


def in_thread(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start ``call`` in a daemon thread; the list gets its result or what it raised."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # handed to the test
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


# ----------------------------------------------------------------------------- messages


def says(text: str, *phrases: str) -> bool:
    """Whether ``text`` has each phrase as whole words, case included: what a message a
    user reads must name (an account, a field, a remedy), without pinning its wording."""
    return all(
        re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text) is not None for phrase in phrases
    )


# ----------------------------------------------------------------------------- stores


class CallCounter:
    """A store seen through a wrapper: ``counts[name]`` calls of each method, and
    ``hooks[name]`` to replace one (it gets the real method, then the arguments)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.counts: dict[str, int] = {}
        self.hooks: dict[str, Callable[..., Any]] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] = self.counts.get(name, 0) + 1
            hook = self.hooks.get(name)
            if hook is not None:
                return hook(attr, *args, **kwargs)
            return attr(*args, **kwargs)

        return call
