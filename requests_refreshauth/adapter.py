"""``RefreshAdapter.mount(session, api_base, store, provider)``: the token, scoped to an origin.

Transport-level alternative to :class:`RefreshAuth` for sessions that talk to several
hosts: only requests routed through this adapter *and* addressed to the origin it was
given carry the token. requests routes by string prefix, so a mount on
``https://api.example.com`` also receives ``https://api.example.com.evil.net/``; the
adapter compares origins (scheme, host, port) and sends anything else untouched. Both
sides are compared in the form requests sends: the host lower-cased and IDNA-encoded
(``bücher.example`` goes out as ``xn--bcher-kva.example``), the default port filled in;
a URL that does not parse gets no token.

The origin is given, never guessed: requests never tells an adapter the prefix it is
mounted on, and learning it from a request would let the request choose. So the
adapter is built with ``origin=`` (or by :meth:`RefreshAdapter.mount`, which takes it
from the prefix it mounts on), and a direct ``adapter.send`` (session wrappers do that)
behaves exactly like one through ``Session.send``.

The provider may share the session: its own calls (sent through ``_http``) pass through
untouched, so a refresh never re-enters the engine.

Redirects are resolved by the session, hop by hop, through ``get_adapter``: every hop
is checked again, and the token is added to a copy of the request so it never rides
along on a redirect the session builds from the original.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit, urlunsplit

from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from ._provider_call import PROVIDER_CALL
from ._urls import canonical_origin, origin_of, valid_origins
from .bundle import Snapshot
from .providers.base import AuthProvider
from .refresh import DEFAULT_SKEW
from .resend import release, renew_after_401, resend_copy, resendable
from .stores.base import TokenStore
from .token_cache import TokenCache

__all__ = ["RefreshAdapter"]

log = logging.getLogger("requests_refreshauth.adapter")

Origin = tuple[str, str, Optional[int]]

_NO_ORIGIN = (
    "RefreshAdapter cannot tell which origin it serves (it was not given origin= and no "
    "session mounted it on a prefix that names a host): use RefreshAdapter.mount(session, "
    "'https://api.example.com/', store, provider), or pass origin='https://api.example.com'."
)


class RefreshAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that adds a fresh bearer token for the origin(s) it is given.

    ``origin``: ``"https://api.example.com"`` (or several, as a list). :meth:`mount`
    builds and mounts one in a single call. Without ``origin``, the origins are those of
    the prefixes a session mounted it on (``session.mount(prefix, adapter)``, read from
    the calling session: see :mod:`._mount_prefix`); a direct ``adapter.send`` then needs
    ``origin``. Remaining keyword arguments go to ``HTTPAdapter``.
    """

    def __init__(
        self,
        store: TokenStore,
        provider: AuthProvider,
        *,
        origin: Union[str, Iterable[str], None] = None,
        account: Optional[str] = None,
        skew: float = DEFAULT_SKEW,
        clock: Callable[[], float] = time.time,
        **adapter_kwargs: Any,
    ) -> None:
        #: Learn the origins from the mounting session (the contract one-liner).
        self._from_mount = origin is None
        self._origins: frozenset[Origin] = frozenset()
        #: URL starts that can only belong to one of our origins (a fast, sound
        #: subset of the origin check; anything else is parsed).
        self._starts: tuple[str, ...] = ()
        if origin is not None:
            self._set_origins(_valid_origins(origin))
        super().__init__(**adapter_kwargs)
        self.source = TokenCache(store, provider, account, skew, clock)
        #: The header of the last snapshot used: a fresh token is the same snapshot
        #: object request after request, so its header is built once (one tuple,
        #: replaced whole, so threads never see a header of another snapshot).
        self._header: tuple[Optional[Snapshot], str] = (None, "")

    @classmethod
    def mount(
        cls,
        session: Session,
        prefix: str,
        store: TokenStore,
        provider: AuthProvider,
        **kwargs: Any,
    ) -> RefreshAdapter:
        """``session.mount(prefix, adapter)`` for an adapter serving ``prefix``'s origin.

        The prefix must name a host (``"https://"`` alone is no scope); one with an
        internationalised host is also mounted under its IDNA spelling, the one requests
        routes by. Keyword arguments are those of the constructor (``account=``,
        ``skew=``, pool sizes).
        """
        adapter = cls(store, provider, origin=prefix, **kwargs)
        session.mount(prefix, adapter)
        routed = _as_sent(prefix)
        if routed != prefix:
            # requests routes the URL it prepared, whose host is IDNA-encoded: a prefix
            # spelt ``https://bücher.example/`` alone would never be matched.
            session.mount(routed, adapter)
        return adapter

    def __repr__(self) -> str:
        return f"RefreshAdapter({self.source.store!r}, account={self.source.account!r})"

    def _set_origins(self, origins: frozenset[Origin]) -> None:
        self._starts = tuple(s for o in origins for s in _starts_of(o))
        self._origins = origins

    def _serves(self, url: str) -> bool:
        """Whether a request to ``url`` gets the token: its origin must be one given, or
        (built without ``origin=``) one of a prefix a session mounted this adapter on."""
        if url.startswith(self._starts):  # also checked inline by send (hot path)
            return True
        origin = canonical_origin(url)
        if origin is None:
            return False  # fail closed: a URL that does not parse gets no token
        if origin in self._origins or not self._from_mount:
            return origin in self._origins
        from ._mount_prefix import mounted_prefixes

        found = {o for o in map(_valid_origin, mounted_prefixes(self)) if o is not None}
        if not found and not self._origins:
            raise ValueError(_NO_ORIGIN)
        if not found <= self._origins:  # a set that only grows: each was the user's choice
            self._set_origins(self._origins | found)
        return origin in self._origins

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Union[float, tuple[float, float], tuple[float, None], None] = None,
        verify: Union[bool, str] = True,
        cert: Union[bytes, str, tuple[Union[bytes, str], Union[bytes, str]], None] = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> Response:
        # Options by keyword, as Session.send passes them (mocks of HTTPAdapter.send
        # expect it), and spelt out: no dict to build per request.
        url = request.url
        assert url is not None
        if PROVIDER_CALL.active or not (url.startswith(self._starts) or self._serves(url)):
            if not PROVIDER_CALL.active:
                origin = origin_of(url)
                log.warning(
                    "not attaching the access token to a request for %s: outside the "
                    "adapter's origin",
                    "://".join(origin[:2]),
                )
            # Else the provider's own call to the authorization server (it shares this
            # session): no token, and no refresh from inside a refresh.
            return super().send(
                request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
            )

        snapshot = self.source.current()
        last, authorization = self._header
        if last is not snapshot:
            authorization = snapshot.bundle.authorization
            self._header = (snapshot, authorization)
        sent = _with_header(request, authorization)
        response = super().send(
            sent, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        if response.status_code != 401 or not resendable(response, request, log):
            return response
        renewed = renew_after_401(self.source, snapshot.bundle.access_token, response, sent)
        if renewed.bundle.authorization == authorization:
            return response
        release(response)
        retry = resend_copy(request, sent, response)
        retry.headers["Authorization"] = renewed.bundle.authorization
        new_response = super().send(
            retry, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        new_response.history.insert(0, response)
        return new_response


def _with_header(request: PreparedRequest, authorization: str) -> PreparedRequest:
    """A copy of ``request`` carrying the token; the caller's request is left untouched.

    ``PreparedRequest.copy`` also copies the cookie jar, the dearest part of it; the
    jar is shared here instead, since nothing writes to the jar of a request once it is
    sent (``resend_copy`` and redirects copy the original request, with its own jar).
    """
    sent = PreparedRequest.__new__(PreparedRequest)
    sent.__dict__.update(request.__dict__)
    sent.headers = _headers_with(request.headers, authorization)
    return sent


def _headers_with(headers: Any, authorization: str) -> CaseInsensitiveDict[str]:
    """``headers`` plus ``Authorization``, as a new dict.

    ``CaseInsensitiveDict.copy`` re-lowers every key through ``__setitem__``; its
    ``_store`` (lower-cased key -> (key, value), unchanged since requests 1.x) is
    copied directly instead, with the same result. Any other mapping is copied the
    ordinary way.
    """
    store = getattr(headers, "_store", None)
    if type(headers) is CaseInsensitiveDict and type(store) is OrderedDict:
        copied: CaseInsensitiveDict[str] = CaseInsensitiveDict.__new__(CaseInsensitiveDict)
        entries = OrderedDict(store)
        entries["authorization"] = ("Authorization", authorization)
        copied._store = entries  # type: ignore[attr-defined]
        return copied
    copied = CaseInsensitiveDict(headers)
    copied["Authorization"] = authorization
    return copied


def _valid_origin(url: str) -> Optional[Origin]:
    origin = canonical_origin(url)
    if origin is None or origin[0] not in ("http", "https"):
        return None
    return origin


def _as_sent(prefix: str) -> str:
    """``prefix`` with its host spelt as requests sends it (IDNA), for session routing."""
    if prefix.isascii():
        return prefix
    parts = urlsplit(prefix)
    origin = canonical_origin(prefix)
    if origin is None:
        return prefix
    host = f"[{origin[1]}]" if ":" in origin[1] else origin[1]
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _valid_origins(given: Union[str, Iterable[str]]) -> frozenset[Origin]:
    return valid_origins(given, _valid_origin)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _starts_of(origin: Origin) -> tuple[str, ...]:
    """How a prepared URL to ``origin`` can begin: ``scheme://host[:port]/``.

    Sound, not complete: the authority ends at the first ``/``, so a URL starting so
    has exactly this origin; other spellings (upper case, userinfo) are parsed.
    """
    scheme, host, port = origin
    if ":" in host:
        host = f"[{host}]"
    starts = [f"{scheme}://{host}:{port}/"]
    if port == _DEFAULT_PORTS.get(scheme):
        starts.append(f"{scheme}://{host}/")
    return tuple(starts)
