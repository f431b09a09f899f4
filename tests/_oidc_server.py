"""Install, start, drive and stop a real OAuth 2.0 / OIDC server for the tests.

The server is ``tests/oidc/server.mjs``: oidc-provider (pinned in
``tests/oidc/package-lock.json``) behind a tiny ``node:http`` front that adds a
protected resource (``/api/whoami``, ``/api/scoped``), counters
(``/__test/stats``) and token-endpoint fault injection (``/__test/fault``).

Typical use::

    with start_oidc_server(access_token_ttl=5) as server:
        url = ...  # built by the caller (PKCE S256 + state)
        redirect = headless_authorize(url, login="alice")
        ...
        assert server.stats()["refresh_success"] == 1

Nothing here builds OAuth requests for the caller, and nothing here relaxes
oauthlib's transport checks.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import os
import queue
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable
from urllib.parse import urljoin, urlsplit

import fasteners
import requests

if TYPE_CHECKING:
    from types import TracebackType

__all__ = [
    "OIDC_DIR",
    "OidcHarnessError",
    "OidcServer",
    "headless_authorize",
    "install_oidc_provider",
    "node_available",
    "oidc_cache_root",
    "start_oidc_server",
]

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
SERVER_SCRIPT = OIDC_DIR / "server.mjs"
#: oidc-provider 9 targets Node 22+, but runs on Node 20 from 20.18 on (URL.parse).
MIN_NODE_VERSION = (20, 18)

#: Timeout (seconds) for every HTTP request the harness itself makes.
HTTP_TIMEOUT = 10.0
_INSTALLED_MARKER = ".npm-ci-ok"


class OidcHarnessError(RuntimeError):
    """The test OIDC server could not be installed, started or driven."""


# --------------------------------------------------------------------------- install


def oidc_cache_root() -> Path:
    """Where installs are cached.

    ``$REFRESHAUTH_TEST_CACHE``, else ``${XDG_CACHE_HOME:-~/.cache}/requests-refreshauth-tests``.
    """
    explicit = os.environ.get("REFRESHAUTH_TEST_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "requests-refreshauth-tests"


def node_available() -> str | None:
    """Return ``None`` when node (>= 20.18) and npm are usable, else the reason why not."""
    wanted = ".".join(map(str, MIN_NODE_VERSION))
    node = shutil.which("node")
    if node is None:
        return f"node (Node.js >= {wanted}) is not on PATH; it runs the test OAuth server"
    if shutil.which("npm") is None:
        return "npm is not on PATH; it installs the test OAuth server (oidc-provider)"
    try:
        out = subprocess.run(
            [node, "--version"], capture_output=True, text=True, timeout=15, check=True
        ).stdout.strip()
        version = tuple(int(part) for part in out.lstrip("v").split(".")[:2])
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return f"could not determine the node version: {exc}"
    if version < MIN_NODE_VERSION:
        return f"node {out} is too old for oidc-provider 9; need Node.js >= {wanted}"
    return None


def install_oidc_provider(cache_root: Path | str | None = None) -> Path:
    """Install the pinned oidc-provider once; return the directory holding node_modules.

    The directory is ``<cache_root>/oidc-<sha256(package-lock.json)[:12]>``. ``npm ci``
    runs under an inter-process lock (parallel tox envs / xdist workers) and a marker
    file is written only after it succeeded, so a half-done install is redone.
    """
    root = Path(cache_root) if cache_root is not None else oidc_cache_root()
    lock_bytes = (OIDC_DIR / "package-lock.json").read_bytes()
    digest = hashlib.sha256(lock_bytes).hexdigest()[:12]
    target = root / f"oidc-{digest}"
    marker = target / _INSTALLED_MARKER
    if marker.is_file():
        return target

    root.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise OidcHarnessError("npm is not on PATH")
    with fasteners.InterProcessLock(str(root / f"oidc-{digest}.lock")):
        if marker.is_file():  # another process finished the install meanwhile
            return target
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(OIDC_DIR / name, target / name)
        try:
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"],
                cwd=target,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise OidcHarnessError(f"npm ci in {target} failed: {exc}") from exc
        if proc.returncode != 0:
            raise OidcHarnessError(
                f"npm ci in {target} failed with exit code {proc.returncode}:\n"
                f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
            )
        marker.write_text(f"npm ci ok for package-lock sha256 {digest}\n")
    return target


# ---------------------------------------------------------------------------- server


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never send 127.0.0.1 traffic through an HTTP(S)_PROXY
    return session


class OidcServer:
    """A running ``server.mjs``; create it with :func:`start_oidc_server`."""

    client_id = "test-cli"
    redirect_uri = "http://127.0.0.1/callback"
    service_client_id = "test-service"
    service_client_secret = "test-service-secret"
    default_login = "alice"

    def __init__(
        self,
        *,
        access_token_ttl: int = 60,
        refresh_token_ttl: int = 24 * 60 * 60,
        cache_root: Path | str | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.access_token_ttl = access_token_ttl
        self.refresh_token_ttl = refresh_token_ttl
        self._cache_root = cache_root
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[str] | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=200)
        self._stdout_lines: queue.Queue[str | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._http = _session()
        self.issuer = ""
        self.port = 0
        self.metadata: dict[str, Any] = {}

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> OidcServer:
        if self._proc is not None:
            raise OidcHarnessError("server already started")
        modules_dir = install_oidc_provider(self._cache_root)
        self._stderr_tail.clear()
        self._stdout_lines = queue.Queue()
        env = dict(os.environ)
        env["NODE_PATH"] = str(modules_dir / "node_modules")
        env.pop("NODE_OPTIONS", None)
        node = shutil.which("node") or "node"
        self._proc = subprocess.Popen(
            [
                node,
                str(SERVER_SCRIPT),
                f"--access-token-ttl={int(self.access_token_ttl)}",
                f"--refresh-token-ttl={int(self.refresh_token_ttl)}",
            ],
            cwd=modules_dir,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
        )
        assert self._proc.stdout is not None
        assert self._proc.stderr is not None
        self._spawn_reader(
            self._proc.stdout, self._stdout_lines.put, lambda: self._stdout_lines.put(None)
        )
        self._spawn_reader(self._proc.stderr, self._stderr_tail.append, lambda: None)
        try:
            self._await_ready()
            self.metadata = self._get_json("/.well-known/openid-configuration")
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn_reader(
        self, stream: IO[str], sink: Callable[[str], None], on_eof: Callable[[], None]
    ) -> None:
        def pump() -> None:
            try:
                for line in stream:
                    sink(line.rstrip("\n"))
            except (OSError, ValueError):  # pipe closed under us by stop()
                pass
            finally:
                on_eof()

        thread = threading.Thread(target=pump, name="oidc-server-pipe", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _await_ready(self) -> None:
        try:
            line = self._stdout_lines.get(timeout=self._startup_timeout)
        except queue.Empty:
            raise OidcHarnessError(
                f"oidc server not ready after {self._startup_timeout:.0f}s{self._stderr_note()}"
            ) from None
        if line is None:
            code = self._proc.wait(timeout=5) if self._proc else None
            for thread in self._threads:  # let the stderr reader catch up
                thread.join(timeout=2)
            raise OidcHarnessError(
                f"oidc server exited early (exit code {code}){self._stderr_note()}"
            )
        try:
            ready = json.loads(line)
            self.issuer = str(ready["issuer"])
            self.port = int(ready["port"])
        except (ValueError, KeyError, TypeError):
            raise OidcHarnessError(
                f"unexpected ready line from oidc server: {line!r}{self._stderr_note()}"
            ) from None

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (for diagnostics)."""
        return "\n".join(list(self._stderr_tail))

    def _stderr_note(self) -> str:
        tail = self.stderr_tail()
        return f"\n--- server stderr ---\n{tail}" if tail else " (no stderr output)"

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the server (kill after ``timeout``); always closes the pipes."""
        proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.poll() is None:
                    proc.terminate()
                    try:
                        proc.wait(timeout=timeout)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(timeout=timeout)
            finally:
                for stream in (proc.stdin, proc.stdout, proc.stderr):
                    if stream is not None:
                        with contextlib.suppress(OSError):
                            stream.close()
        for thread in self._threads:
            thread.join(timeout=timeout)
        self._threads.clear()
        self._http.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> OidcServer:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- endpoints ---------------------------------------------------------------

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def authorization_endpoint(self) -> str:
        return str(self.metadata["authorization_endpoint"])

    @property
    def token_endpoint(self) -> str:
        return str(self.metadata["token_endpoint"])

    @property
    def userinfo_endpoint(self) -> str:
        return str(self.metadata["userinfo_endpoint"])

    @property
    def revocation_endpoint(self) -> str:
        return str(self.metadata["revocation_endpoint"])

    @property
    def introspection_endpoint(self) -> str:
        return str(self.metadata["introspection_endpoint"])

    @property
    def device_authorization_endpoint(self) -> str:
        return str(self.metadata["device_authorization_endpoint"])

    @property
    def device_verification_uri(self) -> str:
        return self.url("/device")

    @property
    def resource_url(self) -> str:
        return self.url("/api/whoami")

    @property
    def scoped_resource_url(self) -> str:
        return self.url("/api/scoped")

    # -- test controls -----------------------------------------------------------

    def _get_json(self, path: str) -> dict[str, Any]:
        resp = self._http.get(self.url(path), timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        data: dict[str, Any] = resp.json()
        return data

    def _post_json(self, path: str, payload: dict[str, Any] | None = None) -> dict[str, Any]:
        resp = self._http.post(self.url(path), json=payload or {}, timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise OidcHarnessError(f"POST {path} -> {resp.status_code}: {resp.text[:500]}")
        data: dict[str, Any] = resp.json()
        return data

    def stats(self) -> dict[str, Any]:
        """Counters of what the server served since start / the last reset."""
        return self._get_json("/__test/stats")

    def reset_stats(self) -> None:
        """Zero all counters and clear pending faults."""
        self._post_json("/__test/reset")

    def inject_fault(self, **spec: Any) -> None:
        """Make the next token-endpoint requests fail without reaching the provider.

        Keys: ``token_status`` (default 503, or 200 with ``token_body``),
        ``retry_after`` (``Retry-After`` header value), ``token_body`` (raw body,
        default ``{"error":"temporarily_unavailable"}``), ``content_type``
        (default ``application/json``), ``count`` (default 1; 0 clears).
        """
        self._post_json("/__test/fault", spec)

    def headless_authorize(self, authorization_url: str, login: str = "alice") -> str:
        return headless_authorize(authorization_url, login)

    def approve_device(self, user_code: str, login: str = "alice") -> None:
        """Complete the device flow's user step: enter ``user_code``, confirm, log in, consent."""
        with _session() as session:
            resp = session.get(
                self.device_verification_uri, timeout=HTTP_TIMEOUT, allow_redirects=False
            )
            final = _drive_forms(
                session,
                resp,
                {"user_code": user_code, "login": login, "password": "test"},
                lambda url: False,
            )
        if isinstance(final, str) or final.status_code != 200 or "Success" not in final.text:
            where = (
                final
                if isinstance(final, str)
                else f"{final.status_code}: {_page_text(final.text)}"
            )
            raise OidcHarnessError(f"device approval did not succeed ({where})")


def start_oidc_server(
    access_token_ttl: int = 60,
    refresh_token_ttl: int = 24 * 60 * 60,
    *,
    cache_root: Path | str | None = None,
    startup_timeout: float = 30.0,
) -> OidcServer:
    """Install (once) and start the server; returns it started. Usable as ``with``."""
    server = OidcServer(
        access_token_ttl=access_token_ttl,
        refresh_token_ttl=refresh_token_ttl,
        cache_root=cache_root,
        startup_timeout=startup_timeout,
    )
    return server.start()


# ----------------------------------------------------------------------- interaction


class _Form:
    def __init__(self, attrs: dict[str, str]) -> None:
        self.action = attrs.get("action", "")
        self.method = (attrs.get("method") or "get").lower()
        self.id = attrs.get("id", "")
        self.inputs: list[dict[str, str]] = []


class _FormParser(HTMLParser):
    """Collects ``<form>``s and their ``<input>``s (buttons are ignored on purpose)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None
        self._text: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._current = _Form(values)
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None and values.get("name"):
            self._current.inputs.append(values)
        elif tag in ("style", "script"):
            self._skip += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None
        elif tag in ("style", "script") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self._text.append(data.strip())

    @property
    def text(self) -> str:
        return " ".join(self._text)


def _page_text(html: str, limit: int = 600) -> str:
    parser = _FormParser()
    parser.feed(html)
    return parser.text[:limit]


def _drive_forms(
    session: requests.Session,
    resp: requests.Response,
    fields: dict[str, str],
    is_done: Callable[[str], bool],
    max_steps: int = 20,
) -> str | requests.Response:
    """Follow redirects and submit the provider's forms until ``is_done(redirect)``.

    Hidden inputs are submitted as found; visible inputs take their value from
    ``fields`` (by name), falling back to the ``value`` attribute. Returns the
    redirect URL accepted by ``is_done`` (not requested), or the first response
    that is neither a redirect nor a page with a POST form.
    """
    submitted: set[tuple[str, frozenset[str]]] = set()
    for _ in range(max_steps):
        if resp.is_redirect:
            target = urljoin(resp.url, resp.headers["Location"])
            if is_done(target):
                return target
            resp = session.get(target, timeout=HTTP_TIMEOUT, allow_redirects=False)
            continue
        if resp.status_code != 200:
            raise OidcHarnessError(
                f"{resp.request.method} {urlsplit(resp.url).path} -> {resp.status_code}: "
                f"{_page_text(resp.text)}"
            )
        parser = _FormParser()
        parser.feed(resp.text)
        form = next((f for f in parser.forms if f.method == "post"), None)
        if form is None:
            return resp
        data: dict[str, str] = {}
        for field in form.inputs:
            name = field["name"]
            if field.get("type", "text").lower() == "hidden":
                data[name] = field.get("value", "")
            else:
                data[name] = fields.get(name, field.get("value", ""))
        action = urljoin(resp.url, form.action or resp.url)
        key = (action, frozenset(data))
        if key in submitted:
            raise OidcHarnessError(f"the provider showed the same form again: {parser.text[:600]}")
        submitted.add(key)
        resp = session.post(action, data=data, timeout=HTTP_TIMEOUT, allow_redirects=False)
    raise OidcHarnessError(f"no result after {max_steps} interaction steps")


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme.lower(), parts.netloc.lower()


def headless_authorize(authorization_url: str, login: str = "alice") -> str:
    """Log ``login`` in and consent via oidc-provider's devInteractions.

    ``authorization_url`` is a complete authorization request built by the caller.
    Returns the URL the provider redirects the user agent to (the client's
    ``redirect_uri`` with ``code``/``state``/``iss``, or with ``error``) without
    requesting it. Raises :class:`OidcHarnessError` when the provider shows an
    error page instead of redirecting.
    """
    server_origin = _origin(authorization_url)
    with _session() as session:
        resp = session.get(authorization_url, timeout=HTTP_TIMEOUT, allow_redirects=False)
        result = _drive_forms(
            session,
            resp,
            {"login": login, "password": "test"},
            lambda url: _origin(url) != server_origin,
        )
    if not isinstance(result, str):
        raise OidcHarnessError(
            f"authorization ended without a redirect to the client ({result.status_code}): "
            f"{_page_text(result.text)}"
        )
    return result
