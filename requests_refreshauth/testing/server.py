"""``LocalAuthServer``: a real OAuth 2.0 authorization server and API on 127.0.0.1.

For this library's tests, demos and benchmarks, and for anyone testing their own CLI's
authentication without a real provider: it speaks the protocol over real sockets (so the
client under test runs unmodified), approves logins headlessly, rotates refresh tokens
and revokes a grant on reuse like production servers do, counts what it served, and
fails on request.

    with LocalAuthServer(access_token_ttl=5) as server:
        provider = server.provider()
        store.save(Account("alice"), server.login("alice"))
        session.auth = RefreshAuth(store, provider)
        session.get(server.resource_url)        # {"sub": "alice", ...}
        assert server.stats().refresh_served == 0

A CLI's own ``auth login`` signs in through :meth:`LocalAuthServer.approver` (in-process
``open_browser=``) or :meth:`LocalAuthServer.browser_env` (``$BROWSER`` for a subprocess):
see :mod:`.approver`.

The protocol is oauthlib's (:mod:`.endpoints`, :mod:`.validator`), routed from HTTP paths
by :mod:`.routes` (the answers themselves: :mod:`.replies`); this module is the server's
lifecycle, its addresses and knobs, and the client conveniences around them.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from typing import (
    TYPE_CHECKING,
    Any,
    Callable,
    Optional,
    Union,
    overload,
)

from ._quiet_logs import quiet_server_side_oauthlib
from .clients import Client
from .endpoints import OAuthServer
from .faults import FaultQueue
from .headless_login import authorization_redirect, redeem
from .http_server import Reply, Server
from .routes import METADATA_PATHS, Router
from .stats import Counters, ServerStats
from .validator import MemoryValidator

if TYPE_CHECKING:
    from types import TracebackType

    import requests

    from ..bundle import TokenBundle
    from ..providers.pkce import PkceProvider
    from .approver import Approver

__all__ = ["DEFAULT_SCOPES", "LocalAuthServer"]

#: What :meth:`LocalAuthServer.provider` asks for unless told otherwise.
DEFAULT_SCOPES = ("openid", "profile", "email", "offline_access", "api")
#: Where :meth:`LocalAuthServer.login` pretends the browser goes back to. Nothing needs
#: to listen there: the redirect is read, not followed.
DEFAULT_REDIRECT_URI = "http://127.0.0.1/callback"


class _Address:
    """A read-only attribute: this server's URL for ``path`` (it needs the server started)."""

    def __init__(self, path: str) -> None:
        self.path = path

    @overload
    def __get__(self, server: None, owner: object) -> _Address: ...
    @overload
    def __get__(self, server: LocalAuthServer, owner: object) -> str: ...
    def __get__(self, server: Optional[LocalAuthServer], owner: object) -> Union[str, _Address]:
        return self if server is None else server.url(self.path)


class LocalAuthServer:
    """An authorization server + protected resource on ``host`` (port 0: any free port).

    Clients: the public ``client_id`` (no secret, PKCE S256 required, any loopback
    redirect URI) and the confidential ``confidential_client_id`` /
    ``confidential_client_secret`` for client credentials (HTTP Basic or in the body).

    Tokens: access tokens live ``access_token_ttl`` seconds (float OK; changeable while
    running); refresh tokens rotate on every use and live ``refresh_token_ttl`` seconds
    from issue (``None``: forever). ``jwt_access_tokens``: JWT-shaped access tokens
    carrying ``exp`` (expiry rounded up to whole seconds); with
    ``include_expires_in=False`` the token response omits ``expires_in``.

    Logins are approved for ``login_hint`` or ``user`` without any page; with
    ``approve=False`` they are answered ``error=access_denied``. The headless browser
    (:meth:`approver`, :meth:`browser_env`) chooses the user and the answer per sign-in.
    ``latency`` seconds are added to every protected-resource request. ``clock`` is the
    server's time. ``supported_scopes=None`` accepts any scope. Both flags and ``latency``
    may be changed while the server runs.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        access_token_ttl: float = 300.0,
        refresh_token_ttl: Optional[float] = None,
        jwt_access_tokens: bool = False,
        include_expires_in: bool = True,
        client_id: str = "test-client",
        confidential_client_id: str = "test-service",
        confidential_client_secret: str = "test-service-secret",
        user: str = "alice",
        approve: bool = True,
        scopes: Iterable[str] = DEFAULT_SCOPES,
        supported_scopes: Optional[Iterable[str]] = None,
        default_scopes: Iterable[str] = ("api",),
        latency: float = 0.0,
        code_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if access_token_ttl < 0 or (refresh_token_ttl is not None and refresh_token_ttl < 0):
            raise ValueError("token lifetimes must be >= 0 seconds")
        self.host = host
        self.client_id = client_id
        self.confidential_client_id = confidential_client_id
        self.confidential_client_secret = confidential_client_secret
        self.user = user
        self.approve = approve
        self.scopes: tuple[str, ...] = tuple(scopes)
        self.latency = latency
        self._port = port
        self._access_token_ttl = float(access_token_ttl)
        self._jwt_access_tokens = jwt_access_tokens
        self._include_expires_in = include_expires_in
        self._clock = clock
        self._counters = Counters()
        self._faults = FaultQueue()
        self._validator = MemoryValidator(
            [
                Client(client_id, None, frozenset({"authorization_code", "refresh_token"})),
                Client(
                    confidential_client_id,
                    confidential_client_secret,
                    frozenset({"client_credentials", "authorization_code", "refresh_token"}),
                ),
            ],
            self._counters,
            clock=clock,
            code_ttl=code_ttl,
            refresh_token_ttl=refresh_token_ttl,
            supported_scopes=None if supported_scopes is None else frozenset(supported_scopes),
            default_scopes=tuple(default_scopes),
        )
        self._lifecycle = threading.Lock()
        self._httpd: Optional[Server] = None
        self._thread: Optional[threading.Thread] = None
        self._oauth: Optional[OAuthServer] = None
        self._router: Optional[Router] = None
        self._issuer: Optional[str] = None
        self._stopped = False
        self._sessions: list[requests.Session] = []

    def __repr__(self) -> str:
        where = self._issuer or "not started"
        state = "running" if self.running else ("stopped" if self._stopped else "idle")
        return f"LocalAuthServer({where}, {state}, client_id={self.client_id!r})"

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> LocalAuthServer:
        """Bind and serve in a daemon thread. Idempotent; a stopped server stays stopped."""
        with self._lifecycle:
            if self._httpd is not None:
                return self
            if self._stopped:
                raise RuntimeError("a stopped LocalAuthServer cannot be restarted")
            httpd = Server((self.host, self._port), self._serve)
            port = httpd.server_address[1]
            host = f"[{self.host}]" if ":" in self.host else self.host
            self._issuer = f"http://{host}:{port}"
            self._oauth = OAuthServer(
                self._validator,
                issuer=self._issuer,
                access_token_ttl=self._access_token_ttl,
                jwt_access_tokens=self._jwt_access_tokens,
                include_expires_in=self._include_expires_in,
                clock=self._clock,
            )
            self._router = Router(self._oauth, self._counters, self._faults, self)
            quiet_server_side_oauthlib()
            self._thread = threading.Thread(
                target=httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"LocalAuthServer:{port}",
                daemon=True,
            )
            self._httpd = httpd
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections, close the sessions this server made."""
        with self._lifecycle:
            httpd, thread = self._httpd, self._thread
            self._httpd, self._thread, self._stopped = None, None, True
            sessions, self._sessions = self._sessions, []
        if httpd is not None:
            httpd.shutdown()
            httpd.close()
        if thread is not None:
            thread.join(timeout=5.0)
        for session in sessions:
            session.close()

    @property
    def running(self) -> bool:
        """Whether the server is started and accepting requests."""
        return self._httpd is not None

    def __enter__(self) -> LocalAuthServer:
        return self.start()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def issuer(self) -> str:
        """The server's base URL (its OAuth issuer); raises ``RuntimeError`` before it is
        started.
        """
        if self._issuer is None:
            raise RuntimeError("the server is not started; use start() or `with`")
        return self._issuer

    def url(self, path: str = "/") -> str:
        """The absolute URL of ``path`` on this server."""
        return self.issuer + (path if path.startswith("/") else "/" + path)

    authorization_endpoint = _Address("/authorize")
    token_endpoint = _Address("/token")
    revocation_endpoint = _Address("/revoke")
    userinfo_endpoint = _Address("/userinfo")
    metadata_url = _Address(METADATA_PATHS[0])
    #: A protected resource: ``{"sub", "client_id", "scope"}`` for a valid token.
    resource_url = _Address("/api/whoami")

    # ------------------------------------------------------------------ knobs

    @property
    def access_token_ttl(self) -> float:
        """Lifetime, in seconds, of the access tokens the server issues."""
        return self._access_token_ttl

    @access_token_ttl.setter
    def access_token_ttl(self, seconds: float) -> None:
        """Applies to access tokens issued from now on."""
        self._access_token_ttl = float(seconds)
        if self._oauth is not None:
            self._oauth.access_token_ttl = self._access_token_ttl

    def stats(self) -> ServerStats:
        """A snapshot of the server's counters (grants served, reuse detected, requests
        per token...), immutable.
        """
        return self._counters.snapshot()

    def reset_stats(self) -> None:
        """Zero the counters (pending faults stay: they were asked for explicitly)."""
        self._counters.reset()

    def inject(self, kind: str, count: int = 1, **options: Any) -> None:
        """Make the next ``count`` token-endpoint requests fail as ``kind``.

        Kinds (see :mod:`.faults`): ``"503"`` (``retry_after=1``), ``"429"``
        (``retry_after=None``), ``"500"``, ``"malformed"`` (``body=...``: a 200 with a
        non-JSON body; the request is not processed), ``"delay"`` (``seconds=1.0``,
        then processed normally), ``"drop_after_rotate"`` (processed, then the
        connection is closed without an answer).
        """
        self._faults.inject(kind, count, **options)

    def clear_faults(self) -> None:
        """Drop every fault queued by ``inject_fault`` and not yet served."""
        self._faults.clear()

    def expire_access_tokens(self) -> None:
        """Expire every access token issued so far, server-side (for the 401 path)."""
        self._validator.expire_access_tokens()

    # ------------------------------------------------------------------ routing

    def _serve(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> Optional[Reply]:
        router = self._router
        assert router is not None
        return router(method, target, headers, body)

    # ------------------------------------------------------------------ client helpers

    def session(self) -> requests.Session:
        """A ``requests.Session`` that ignores proxy variables (closed by :meth:`stop`)."""
        import requests

        session = requests.Session()
        session.trust_env = False  # never send 127.0.0.1 through an HTTP(S)_PROXY
        with self._lifecycle:
            self._sessions.append(session)
        return session

    def provider(self, **overrides: Any) -> PkceProvider:
        """A :class:`~requests_refreshauth.PkceProvider` configured for this server.

        Endpoints, issuer, the public client id and :data:`DEFAULT_SCOPES`, a session
        with ``trust_env=False`` and a 10 s timeout; ``overrides`` replace any of them.
        """
        from ..providers.pkce import PkceProvider

        options: dict[str, Any] = {
            "client_id": self.client_id,
            "token_endpoint": self.token_endpoint,
            "authorization_endpoint": self.authorization_endpoint,
            "scopes": self.scopes,
            "timeout": 10.0,
            "revocation_endpoint": self.revocation_endpoint,
            "userinfo_endpoint": self.userinfo_endpoint,
            "issuer": self.issuer,
            "iss_parameter_supported": True,
        }
        options.update(overrides)
        if "session" not in options:
            options["session"] = self.session()
        return PkceProvider(**options)

    def approver(
        self, user: Optional[str] = None, *, approve: bool = True, timeout: float = 10.0
    ) -> Approver:
        """A headless browser for ``login(..., open_browser=server.approver("alice"))``.

        It opens only this server's authorization endpoint (anything else raises
        :class:`~requests_refreshauth.testing.URLRefusedError`), signs in as ``user`` or
        denies (``approve=False``), and delivers the redirect to the CLI's loopback
        listener. See :mod:`.approver`.
        """
        from .approver import Approver

        return Approver(self.authorization_endpoint, user=user, approve=approve, timeout=timeout)

    def browser_env(
        self,
        user: Optional[str] = None,
        *,
        approve: bool = True,
        log: Union[str, os.PathLike[str], None] = None,
    ) -> dict[str, str]:
        """Environment variables that make a subprocess's ``$BROWSER`` the approver.

        ``subprocess.run([...], env={**os.environ, **server.browser_env("alice")})``;
        ``log``: a file each URL the browser was asked to open is appended to
        (``state`` and the PKCE challenge as ``***``). See :mod:`.browser`.
        """
        from .approver import browser_env

        return browser_env(self.authorization_endpoint, user=user, approve=approve, log=log)

    def login(
        self,
        user: Optional[str] = None,
        *,
        redirect_uri: str = DEFAULT_REDIRECT_URI,
        provider: Optional[PkceProvider] = None,
        **params: str,
    ) -> TokenBundle:
        """A complete headless authorization-code + PKCE login, over real HTTP.

        Builds the request with ``provider.authorization_request``, sends it as the
        browser would, reads the code from the redirect (without following it, so nothing
        has to listen on ``redirect_uri``), checks ``state`` and ``iss`` and redeems the
        code with ``provider.exchange_code``. Raises ``OAuthFlowError`` on a refusal.
        """
        provider = provider or self.provider()
        request = provider.authorization_request(
            redirect_uri, login_hint=user or self.user, **params
        )
        query = authorization_redirect(provider, request)
        return redeem(provider, request, query, self.issuer)
