"""Build, start, drive and stop a second real authorization server: django-oauth-toolkit.

The server is ``tests/dot/``: a tiny Django project (PKCE required, refresh-token rotation
with reuse protection, SQLite in ``IMMEDIATE`` transaction mode, a protected resource that
answers a bad token with 401 + ``WWW-Authenticate: Bearer``). It runs from its own
virtualenv on Python 3.12 with the versions pinned in ``tests/dot/requirements.txt``
(DOT 3.x needs Python >= 3.10, and the ``min`` tox env pins an older oauthlib), so the
tests themselves may run on any interpreter.

The virtualenv is built once per machine and cached in
``<oidc_cache_root()>/dot-<sha256(requirements + Python version)[:12]>``: built in a
temporary directory under an inter-process lock, then renamed into place, so a killed
build never leaves a directory that looks ready. Typical use::

    with start_dot_server() as server:
        login(store, server.provider(), open_browser=server.browser("alice"), ...)
        assert server.stats()["refresh_success"] == 0
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional
from urllib.parse import urljoin, urlsplit

import fasteners
import pytest
import requests

# tests/ is not a package: pytest puts tests/ itself on sys.path
from _oidc_server import HTTP_TIMEOUT, _drive_forms, _page_text, oidc_cache_root

if TYPE_CHECKING:
    from types import TracebackType

    from requests_refreshauth import PkceProvider

__all__ = [
    "DOT_DIR",
    "DotHarnessError",
    "DotServer",
    "build_dot_venv",
    "dot",
    "dot_server",
    "dot_unavailable",
    "find_python312",
    "require_dot",
    "start_dot_server",
]

DOT_DIR = Path(__file__).resolve().parent / "dot"
REQUIREMENTS = DOT_DIR / "requirements.txt"
SERVE_SCRIPT = DOT_DIR / "serve.py"
_READY = "ready.json"
IN_CI = os.environ.get("CI", "").lower() == "true"


class DotHarnessError(RuntimeError):
    """The DOT test server could not be built, started or driven."""


class DotUnavailable(DotHarnessError):
    """What the server needs is missing here (Python 3.12, the package index)."""


# --------------------------------------------------------------------------- build


def _venv_python(venv: Path) -> Path:
    if sys.platform == "win32":
        return venv / "Scripts" / "python.exe"
    return venv / "bin" / "python"


def _version_of(python: str) -> Optional[str]:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return out if out.startswith("3.12.") else None


def find_python312() -> Optional[tuple[str, str]]:
    """``(path, version)`` of a Python 3.12, or ``None``.

    ``$REFRESHAUTH_DOT_PYTHON`` first, then this interpreter if it is 3.12, then pyenv's
    builds (as ``.ci/run`` finds them), then ``python3.12`` on PATH.
    """
    candidates: list[str] = []
    explicit = os.environ.get("REFRESHAUTH_DOT_PYTHON")
    if explicit:
        candidates.append(explicit)
    if sys.version_info[:2] == (3, 12):
        candidates.append(sys.executable)
    roots = [os.environ.get("PYENV_ROOT") or "", str(Path.home() / ".pyenv"), "/root/.pyenv"]
    for root in dict.fromkeys(r for r in roots if r):
        found = glob.glob(os.path.join(root, "versions", "3.12.*", "bin", "python3.12"))
        candidates.extend(sorted(found, key=_version_key, reverse=True))
    on_path = shutil.which("python3.12")
    if on_path:
        candidates.append(on_path)
    for candidate in dict.fromkeys(candidates):
        version = _version_of(candidate)
        if version is not None:
            return candidate, version
    return None


def _version_key(path: str) -> tuple[int, ...]:
    name = Path(path).parent.parent.name  # .../versions/3.12.7/bin/python3.12
    return tuple(int(p) if p.isdigit() else -1 for p in name.split("."))


def dot_unavailable() -> Optional[str]:
    """``None`` when the server can be built here, else the reason why not."""
    if find_python312() is None:
        return (
            "no Python 3.12 found (set REFRESHAUTH_DOT_PYTHON, or install one, e.g. with "
            "pyenv); it runs the django-oauth-toolkit test server"
        )
    return None


def _digest(version: str) -> str:
    data = REQUIREMENTS.read_bytes() + f"\npython {version}\n".encode()
    return hashlib.sha256(data).hexdigest()[:12]


def build_dot_venv(cache_root: Path | str | None = None) -> tuple[Path, Optional[float]]:
    """The cached virtualenv (built now if needed) and the seconds a build took now.

    The second value is ``None`` when the cache was warm. Raises :class:`DotUnavailable`
    without a Python 3.12 and :class:`DotHarnessError` when the build fails.
    """
    found = find_python312()
    if found is None:
        raise DotUnavailable(dot_unavailable() or "no Python 3.12")
    python, version = found
    root = Path(cache_root) if cache_root is not None else oidc_cache_root()
    digest = _digest(version)
    target = root / f"dot-{digest}"
    if (target / _READY).is_file():
        return target, None
    root.mkdir(parents=True, exist_ok=True)
    with fasteners.InterProcessLock(str(root / f"dot-{digest}.lock")):
        if (target / _READY).is_file():  # another process built it meanwhile
            return target, None
        for stale in root.glob(f".dot-{digest}-*"):  # left by a killed build
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():  # a directory without its marker is not ready: redo it
            shutil.rmtree(target, ignore_errors=True)
        started = time.monotonic()
        work = Path(tempfile.mkdtemp(prefix=f".dot-{digest}-", dir=root))
        try:
            _build(python, work)
            seconds = round(time.monotonic() - started, 1)
            (work / _READY).write_text(
                json.dumps({"python": version, "build_seconds": seconds}) + "\n"
            )
            os.replace(work, target)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    return target, seconds


def _run(command: list[str], what: str, timeout: float, **kwargs: Any) -> None:
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DotHarnessError(f"{what} failed: {exc}") from exc
    if proc.returncode != 0:
        raise DotHarnessError(
            f"{what} failed with exit code {proc.returncode}:\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )


def _build(python: str, work: Path) -> None:
    _run([python, "-m", "venv", str(work)], "creating the DOT virtualenv", 300)
    venv_python = str(_venv_python(work))
    _run(
        [venv_python, "-m", "pip", "install", "-q", "--no-input", "-r", str(REQUIREMENTS)],
        "pip install -r tests/dot/requirements.txt",
        900,
    )
    # A migrated, seeded database to copy at each start (migrating takes seconds).
    env = dict(os.environ, DOT_TEST_DB=str(work / "template.sqlite3"), PYTHONDONTWRITEBYTECODE="1")
    _run(
        [venv_python, str(SERVE_SCRIPT), "--init-only"], "migrating the DOT database", 300, env=env
    )


# --------------------------------------------------------------------------- server


def _session() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # never send 127.0.0.1 traffic through an HTTP(S)_PROXY
    return session


class DotServer:
    """A running ``tests/dot/serve.py``; create it with :func:`start_dot_server`."""

    client_id = "test-cli"
    scopes = ("read",)

    def __init__(
        self,
        *,
        access_token_ttl: int = 300,
        cache_root: Path | str | None = None,
        startup_timeout: float = 60.0,
    ) -> None:
        self.access_token_ttl = access_token_ttl
        self._cache_root = cache_root
        self._startup_timeout = startup_timeout
        self._proc: Optional[subprocess.Popen[str]] = None
        self._tmp: Optional[tempfile.TemporaryDirectory[str]] = None
        self._http = _session()
        self.base_url = ""
        self.port = 0
        #: ``build_s`` (``None``: the cached venv was used) and ``start_s``.
        self.timings: dict[str, Optional[float]] = {}

    def start(self) -> DotServer:
        if self._proc is not None:
            raise DotHarnessError("server already started")
        venv, build_seconds = build_dot_venv(self._cache_root)
        started = time.monotonic()
        self._tmp = tempfile.TemporaryDirectory(prefix="dot-server-")
        db = Path(self._tmp.name) / "db.sqlite3"
        shutil.copyfile(venv / "template.sqlite3", db)
        self._log_path = Path(self._tmp.name) / "server.log"
        env = dict(os.environ, DOT_TEST_DB=str(db), PYTHONDONTWRITEBYTECODE="1")
        for name in ("PYTHONPATH", "PYTHONHOME", "DJANGO_SETTINGS_MODULE"):
            env.pop(name, None)
        with open(self._log_path, "w", encoding="utf-8") as log:
            self._proc = subprocess.Popen(
                [str(_venv_python(venv)), str(SERVE_SCRIPT), f"--ttl={self.access_token_ttl}"],
                cwd=self._tmp.name,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        try:
            self._await_ready()
        except BaseException:
            self.stop()
            raise
        self.timings = {"build_s": build_seconds, "start_s": round(time.monotonic() - started, 2)}
        return self

    def _await_ready(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        import selectors

        with selectors.DefaultSelector() as selector:
            if sys.platform != "win32":  # select() on pipes is POSIX only
                selector.register(self._proc.stdout, selectors.EVENT_READ)
                if not selector.select(self._startup_timeout):
                    raise DotHarnessError(
                        f"DOT server not ready after {self._startup_timeout:.0f}s{self._log_note()}"
                    )
        line = self._proc.stdout.readline()
        if not line:
            code = self._proc.wait(timeout=10)
            raise DotHarnessError(f"DOT server exited early (exit code {code}){self._log_note()}")
        try:
            self.port = int(json.loads(line)["port"])
        except (ValueError, KeyError, TypeError):
            raise DotHarnessError(f"unexpected ready line {line!r}{self._log_note()}") from None
        self.base_url = f"http://127.0.0.1:{self.port}"
        resp = self._http.get(self.url("/__test/stats"), timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise DotHarnessError(f"DOT server answers {resp.status_code}{self._log_note()}")

    def log_tail(self, limit: int = 4000) -> str:
        """The end of the server's stderr (Django's errors; never tokens)."""
        try:
            return self._log_path.read_text("utf-8", "replace")[-limit:]
        except (AttributeError, OSError):
            return ""

    def _log_note(self) -> str:
        tail = self.log_tail()
        return f"\n--- server log ---\n{tail}" if tail else " (no server log output)"

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=timeout)
            if proc.stdout is not None:
                proc.stdout.close()
        self._http.close()
        if self._tmp is not None:
            with contextlib.suppress(OSError):
                self._tmp.cleanup()
            self._tmp = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> DotServer:
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

    # -- endpoints (DOT has no discovery document without OIDC: all are given) ----

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def authorization_endpoint(self) -> str:
        return self.url("/o/authorize/")

    @property
    def token_endpoint(self) -> str:
        return self.url("/o/token/")

    @property
    def revocation_endpoint(self) -> str:
        return self.url("/o/revoke_token/")

    @property
    def resource_url(self) -> str:
        return self.url("/api/whoami")

    def provider(self, **kwargs: Any) -> PkceProvider:
        """A ``PkceProvider`` for the public client, every endpoint given by hand."""
        from requests_refreshauth import PkceProvider

        options: dict[str, Any] = {
            "client_id": self.client_id,
            "token_endpoint": self.token_endpoint,
            "authorization_endpoint": self.authorization_endpoint,
            "revocation_endpoint": self.revocation_endpoint,
            "scopes": self.scopes,
            "session": _session(),
            "timeout": 10.0,
        }
        options.update(kwargs)
        return PkceProvider(**options)

    # -- test controls -----------------------------------------------------------

    def stats(self) -> dict[str, int]:
        """Counters since start / the last reset, plus token rows in DOT's database."""
        resp = self._http.get(self.url("/__test/stats"), timeout=HTTP_TIMEOUT)
        resp.raise_for_status()
        data: dict[str, int] = resp.json()
        return data

    def _post(self, path: str) -> dict[str, Any]:
        resp = self._http.post(self.url(path), timeout=HTTP_TIMEOUT)
        if resp.status_code != 200:
            raise DotHarnessError(f"POST {path} -> {resp.status_code}{self._log_note()}")
        data: dict[str, Any] = resp.json()
        return data

    def reset_stats(self) -> None:
        self._post("/__test/reset")

    def expire_access_tokens(self) -> int:
        """Make every access token expired on DOT's side; returns how many there were."""
        return int(self._post("/__test/expire-access-tokens")["expired"])

    def revoke(self, token: str, hint: str = "access_token") -> None:
        """Revoke a token through DOT's own revocation endpoint (RFC 7009)."""
        resp = self._http.post(
            self.revocation_endpoint,
            data={"token": token, "token_type_hint": hint, "client_id": self.client_id},
            timeout=HTTP_TIMEOUT,
        )
        if resp.status_code != 200:
            raise DotHarnessError(f"revocation -> {resp.status_code}{self._log_note()}")

    # -- the browser's side ------------------------------------------------------

    def authorize(self, authorization_url: str, login: str = "alice") -> str:
        """Sign ``login`` in on Django's login form; return the redirect to the client.

        The client has ``skip_authorization``, so DOT redirects straight to the loopback
        redirect URI once a user is signed in. The redirect is returned, not requested.
        """
        server = urlsplit(self.base_url).netloc
        with _session() as session:
            resp = session.get(authorization_url, timeout=HTTP_TIMEOUT, allow_redirects=False)
            result = _drive_forms(
                session,
                resp,
                {"username": login, "password": "test"},
                lambda url: urlsplit(url).netloc != server,
            )
        if not isinstance(result, str):
            raise DotHarnessError(
                f"authorization ended without a redirect to the client ({result.status_code}): "
                f"{_page_text(result.text)}"
            )
        return result

    def browser(self, login: str = "alice") -> Callable[[str], bool]:
        """An ``open_browser`` for :func:`requests_refreshauth.login`: signs in headlessly
        and lands on the loopback listener, as a real browser would."""

        def open_browser(url: str) -> bool:
            redirect = self.authorize(url, login)
            with _session() as session:
                landed = session.get(urljoin(url, redirect), timeout=HTTP_TIMEOUT)
            return landed.status_code == 200

        return open_browser


def start_dot_server(
    access_token_ttl: Optional[int] = None,
    *,
    cache_root: Path | str | None = None,
    startup_timeout: float = 60.0,
) -> DotServer:
    """Build the venv (once per machine) and start the server; usable as ``with``.

    ``access_token_ttl`` defaults to ``$REFRESHAUTH_DOT_ACCESS_TOKEN_TTL``, else 300.
    """
    if access_token_ttl is None:
        access_token_ttl = int(os.environ.get("REFRESHAUTH_DOT_ACCESS_TOKEN_TTL") or 300)
    server = DotServer(
        access_token_ttl=access_token_ttl, cache_root=cache_root, startup_timeout=startup_timeout
    )
    return server.start()


# --------------------------------------------------------------------------- fixtures


def require_dot() -> None:
    """Skip without Python 3.12 on a laptop; fail under CI=true, where skipping hides it."""
    reason = dot_unavailable()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"CI=true but the django-oauth-toolkit test server cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def dot_server() -> Iterator[DotServer]:
    """One DOT server for the whole session (its venv built on first use, then cached)."""
    require_dot()
    try:
        build_dot_venv()
    except DotHarnessError as exc:
        # A laptop without the package index cannot build the venv: skip, saying why.
        if IN_CI:
            pytest.fail(f"CI=true but the django-oauth-toolkit test server was not built: {exc}")
        pytest.skip(f"the django-oauth-toolkit test server could not be built: {exc}")
    with start_dot_server() as server:  # built but failing to start: a failure anywhere
        yield server


@pytest.fixture
def dot(dot_server: DotServer) -> DotServer:
    """The session's DOT server with its counters zeroed."""
    dot_server.reset_stats()
    return dot_server
