"""The httpx auth flow, written once for ``httpx`` and ``httpx2`` (same API, distinct
classes: each accepts only its own ``Auth`` subclasses).

httpx drives an auth as a generator: ``response = yield request``. Both flows do the
same three things as the requests side (:class:`requests_refreshauth.RefreshAuth`):

- attach a usable token: the cached one while fresh, else what the engine gives;
- after a 401 that a new token could fix (:func:`.challenge.refresh_may_help`), to the
  origin the token was attached for and still carrying it, renew once and resend once;
- never resend a body that cannot be sent again (a stream): warn and return the 401.

httpx follows redirects between the yields and drops ``Authorization`` when a redirect
leaves the origin (except an http to https upgrade of the same host), so a token is only
ever attached by the flow, to the request it was given. ``origin=`` limits that to the
listed origins, for clients that talk to several hosts.

The sync flow calls the engine in the calling thread, as the requests side does. The
async flow attaches a fresh token with no thread hop and no I/O; anything else (store,
keyring, locks, the token POST) runs in a single flight per account
(:mod:`._single_flight`), so the event loop never blocks and one refresh serves every
coroutine of the process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, Generator, Hashable, Iterable, MutableMapping
from typing import Any, Callable, ClassVar, Generic, Optional, Protocol, TypeVar, Union

from . import _single_flight
from ._cookie_header import merged_cookie_header
from ._urls import Origin, valid_origins
from .bundle import Snapshot, fingerprint
from .challenge import refresh_may_help
from .errors import AuthError
from .providers.base import AuthProvider
from .refresh import DEFAULT_SKEW
from .stores.base import TokenStore
from .token_cache import TokenCache

__all__ = ["Origin", "RefreshFlow"]

log = logging.getLogger("requests_refreshauth.httpx")

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A 401 is read before the resend (httpx reads it then anyway); a larger declared body is
#: returned unread, so a streamed request is not held by a hostile server's endless body.
_MAX_401_BODY = 1 << 20


def _small(content_length: Optional[str]) -> bool:
    """Whether a 401 body of this ``Content-Length`` is read (unknown: yes, as httpx
    would read it; a value that is not a number: no)."""
    if content_length is None:
        return True
    value = content_length.strip()
    return value.isdigit() and int(value) <= _MAX_401_BODY


class _URL(Protocol):
    @property
    def scheme(self) -> str: ...
    @property
    def raw_host(self) -> bytes: ...
    @property
    def port(self) -> Optional[int]: ...


class _Request(Protocol):
    @property
    def url(self) -> Any: ...  # an httpx URL (see _URL)
    @property
    def headers(self) -> MutableMapping[str, str]: ...
    @property
    def stream(self) -> Any: ...


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...
    @property
    def headers(self) -> Any: ...  # a Mapping[str, str]
    @property
    def request(self) -> Any: ...  # the request of the last hop (a _Request)
    @property
    def cookies(self) -> Any: ...
    def read(self) -> bytes: ...
    async def aread(self) -> bytes: ...


RequestT = TypeVar("RequestT", bound=_Request)
ResponseT = TypeVar("ResponseT", bound=_Response)


def origin_of(url: _URL) -> Origin:
    """(scheme, host, port) as httpx connects: the host IDNA-encoded and lower case, the
    default port filled in."""
    scheme = url.scheme
    port = url.port
    return (
        scheme,
        url.raw_host.decode("ascii").lower(),
        (port if port is not None else _DEFAULT_PORTS.get(scheme)),
    )


class RefreshFlow(Generic[RequestT, ResponseT]):
    """``httpx.Auth`` behaviour; a subclass per httpx flavour names its classes."""

    #: Set by each flavour: its ``URL`` and ``InvalidURL`` classes, and ``ByteStream``
    #: (the bodies that can be sent again: in memory).
    _url_class: ClassVar[Any]
    _invalid_url: ClassVar[type[Exception]]
    _replayable: ClassVar[type]

    requires_request_body = False
    requires_response_body = False

    def __init__(
        self,
        store: TokenStore,
        provider: AuthProvider,
        *,
        account: Optional[str] = None,
        skew: float = DEFAULT_SKEW,
        origin: Union[str, Iterable[str], None] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = TokenCache(store, provider, account, skew, clock)
        self._origins: Optional[frozenset[Origin]] = (
            None if origin is None else self._valid_origins(origin)
        )

    def __repr__(self) -> str:
        scope = "" if self._origins is None else f", origins={len(self._origins)}"
        return (
            f"{type(self).__module__}.RefreshAuth({self.source.store!r}, "
            f"account={self.source.account!r}{scope})"
        )

    @property
    def store(self) -> TokenStore:
        return self.source.store

    @property
    def provider(self) -> AuthProvider:
        return self.source.provider

    # -- sync -------------------------------------------------------------------------

    def sync_auth_flow(self, request: RequestT) -> Generator[RequestT, ResponseT, None]:
        if self._origins is not None and origin_of(request.url) not in self._origins:
            yield request
            return
        authorization = self.source.current().bundle.authorization
        request.headers["Authorization"] = authorization
        response = yield request
        if response.status_code != 401 or not self._may_resend(request, response, authorization):
            return
        response.read()  # as httpx would before the resend; a declared size is capped
        snapshot = self.source.after_rejection(authorization.partition(" ")[2])
        refused: RequestT = response.request
        if self._prepare_resend(refused, response, snapshot, authorization):
            yield refused

    # -- async ------------------------------------------------------------------------

    async def async_auth_flow(self, request: RequestT) -> AsyncGenerator[RequestT, ResponseT]:
        if self._origins is not None and origin_of(request.url) not in self._origins:
            yield request
            return
        snapshot = self.source.fresh()  # no I/O, no thread hop: the hot path
        if snapshot is None:
            snapshot = await self._shared(self.source.current, None)
        authorization = snapshot.bundle.authorization
        request.headers["Authorization"] = authorization
        response = yield request
        if response.status_code != 401 or not self._may_resend(request, response, authorization):
            return
        await response.aread()
        rejected = authorization.partition(" ")[2]
        snapshot = await self._shared(lambda: self.source.after_rejection(rejected), rejected)
        refused: RequestT = response.request
        if self._prepare_resend(refused, response, snapshot, authorization):
            yield refused

    async def _shared(self, work: Callable[[], Snapshot], rejected: Optional[str]) -> Snapshot:
        """``work()`` (an engine call), run off the loop in the account's single flight.

        Callers with the same store, provider, account and skew (and, after a 401, the
        same rejected token) share one flight, whichever instance they belong to; each
        keeps the result in its own cache.
        """
        source = self.source
        key: Hashable = (
            id(source.store),
            id(source.provider),
            source.account,
            source.skew,
            None if rejected is None else fingerprint(rejected),
        )
        # Every caller's cache keeps the result, even one cancelled while it waited.
        flight = _single_flight.join(key, work, source.keep)
        try:
            return await _single_flight.wait(flight)
        except AuthError as exc:
            source.failed(exc)
            raise

    # -- shared -----------------------------------------------------------------------

    def _may_resend(self, request: RequestT, response: ResponseT, authorization: str) -> bool:
        """Whether a 401 is answered by one renewal and one resend of the refused hop (not
        of ``request``: a POST redirected by a 303 must not be sent twice): that hop still
        carried our token, to the origin it was attached for, a new token may help, its
        body can be sent again and the 401's body is small enough to read (warned if not).
        """
        refused = response.request
        if refused.headers.get("Authorization") != authorization:
            return False  # not our token on that hop (dropped on a redirect, or replaced)
        if refused is not request and origin_of(refused.url) != origin_of(request.url):
            return False  # an https upgrade keeps the header; the origin is not ours
        if not refresh_may_help(response.headers.get("WWW-Authenticate")):
            return False
        if not isinstance(refused.stream, self._replayable):
            log.warning(
                "the server rejected the access token (401) but the request body is a "
                "stream (an iterator, a file, or files= uploads) that cannot be sent "
                "again; returning the 401. Send the body as bytes (content=, data=, "
                "json=) to get an automatic retry."
            )
            return False
        if not _small(response.headers.get("Content-Length")):
            log.warning(
                "the server rejected the access token (401) with a body larger than %d "
                "bytes; returning the 401 unread instead of reading it to retry",
                _MAX_401_BODY,
            )
            return False
        return True

    def _prepare_resend(
        self, request: RequestT, response: ResponseT, snapshot: Snapshot, authorization: str
    ) -> bool:
        """Put the renewed token (and the cookies the 401 set) on ``request``; ``False``
        when the engine had no other token to give."""
        renewed = snapshot.bundle.authorization
        if renewed == authorization:
            return False
        request.headers["Authorization"] = renewed
        cookies = merged_cookie_header(
            request.headers.get("Cookie"), [(c.name, c.value or "") for c in response.cookies.jar]
        )
        if cookies is not None:
            request.headers["Cookie"] = cookies
        log.debug("resending a request rejected with 401 with a refreshed token")
        return True

    @classmethod
    def _valid_origins(cls, given: Union[str, Iterable[str]]) -> frozenset[Origin]:
        return valid_origins(given, cls._origin_of_text)

    @classmethod
    def _origin_of_text(cls, text: str) -> Optional[Origin]:
        try:
            url = cls._url_class(text)
        except (cls._invalid_url, ValueError, TypeError):
            return None
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host or url.userinfo:
            return None
        return origin_of(url)
