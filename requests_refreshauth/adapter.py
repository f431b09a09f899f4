"""``session.mount(api_base, RefreshAdapter(store, provider))``: the token, scoped to an origin.

Transport-level alternative to :class:`RefreshAuth` for sessions that talk to several
hosts: only requests routed through this adapter *and* addressed to the origin it was
mounted for carry the token. requests routes by string prefix, so a mount on
``https://api.example.com`` also receives ``https://api.example.com.evil.net/``; the
adapter compares origins (scheme, host, port) and sends anything else untouched.

The provider may share the session: its own calls (sent through ``_http``) pass through
untouched, so a refresh never re-enters the engine.

Redirects are resolved by the session, hop by hop, through ``get_adapter``: every hop
is checked again, and the token is added to a copy of the request so it never rides
along on a redirect the session builds from the original.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable, FrozenSet, Mapping, Optional, Tuple, Union

from requests import PreparedRequest, Response, Session
from requests.adapters import HTTPAdapter

from ._http import PROVIDER_CALL
from ._urls import origin_of
from .providers.base import AuthProvider
from .refresh import DEFAULT_SKEW
from .replay import release, renew_after_401, resend_copy, resendable
from .source import TokenSource
from .stores.base import TokenStore

__all__ = ["RefreshAdapter"]

log = logging.getLogger("requests_refreshauth.adapter")

Origin = Tuple[str, str, Optional[int]]


class RefreshAdapter(HTTPAdapter):
    """An ``HTTPAdapter`` that adds a fresh bearer token for one origin.

    The origin is the one of the prefix the adapter is mounted on (``session.mount``);
    pass ``origin="https://api.example.com"`` when calling :meth:`send` without a
    session. Remaining keyword arguments go to ``HTTPAdapter`` (pool sizes, retries).
    """

    def __init__(
        self,
        store: TokenStore,
        provider: AuthProvider,
        account: Optional[str] = None,
        skew: float = DEFAULT_SKEW,
        *,
        origin: Optional[str] = None,
        clock: Callable[[], float] = time.time,
        **adapter_kwargs: Any,
    ) -> None:
        super().__init__(**adapter_kwargs)
        self.source = TokenSource(store, provider, account, skew, clock=clock)
        self._origin = _valid_origin(origin) if origin is not None else None
        self._mounted: FrozenSet[Origin] = frozenset()
        if origin is not None and self._origin is None:
            raise ValueError(f"origin must be an http(s) URL with a host, got {origin!r}")

    def __repr__(self) -> str:
        return f"RefreshAdapter({self.source.store!r}, account={self.source.account!r})"

    def _serves(self, origin: Origin) -> bool:
        """Whether requests to ``origin`` get the token: it must be one we are mounted on.

        Origins already seen in a mount table are remembered (a set that only grows:
        every member was chosen by the user for this adapter, through some session), so
        the stack is inspected only for an origin not seen before.
        """
        if self._origin is not None:
            return origin == self._origin
        if origin in self._mounted:
            return True
        found = {o for o in map(_valid_origin, _mounted_prefixes(self)) if o is not None}
        if not found and not self._mounted:
            raise ValueError(
                "RefreshAdapter cannot tell which origin it serves: mount it with "
                "session.mount('https://api.example.com/', adapter) on a prefix that names "
                "a host, or pass origin='https://api.example.com'."
            )
        self._mounted = self._mounted | found
        return origin in self._mounted

    def send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Union[float, Tuple[float, float], Tuple[float, None], None] = None,
        verify: Union[bool, str] = True,
        cert: Union[bytes, str, Tuple[Union[bytes, str], Union[bytes, str]], None] = None,
        proxies: Optional[Mapping[str, str]] = None,
    ) -> Response:
        options: dict[str, Any] = {
            "stream": stream,
            "timeout": timeout,
            "verify": verify,
            "cert": cert,
            "proxies": proxies,
        }
        if PROVIDER_CALL.active:
            # The provider's own call to the authorization server (it shares this
            # session): no token, and no refresh from inside a refresh.
            return super().send(request, **options)
        assert request.url is not None
        origin = origin_of(request.url)
        if not self._serves(origin):
            log.warning(
                "not attaching the access token to a request for %s: outside the adapter's origin",
                "://".join(origin[:2]),
            )
            return super().send(request, **options)

        snapshot = self.source.current()
        sent = request.copy()
        sent.headers["Authorization"] = snapshot.bundle.authorization
        response = super().send(sent, **options)
        if response.status_code != 401 or not resendable(response, request, log):
            return response
        renewed = renew_after_401(self.source, snapshot.bundle.access_token, response, sent)
        if renewed.bundle.authorization == snapshot.bundle.authorization:
            return response
        release(response)
        retry = resend_copy(request, sent, response)
        retry.headers["Authorization"] = renewed.bundle.authorization
        new_response = super().send(retry, **options)
        new_response.history.insert(0, response)
        return new_response


def _valid_origin(url: str) -> Optional[Origin]:
    origin = origin_of(url)
    if origin[0] not in ("http", "https") or not origin[1]:
        return None
    return origin


_SESSION_SEND = Session.send.__code__


def _mounted_prefixes(adapter: RefreshAdapter) -> Tuple[str, ...]:
    """The prefixes the calling session mounted ``adapter`` on.

    requests never tells an adapter its prefix, so the session is found on the stack:
    ``Session.send`` calls ``adapter.send`` directly (a subclass's ``send`` calls it
    through ``super()``). Frames are matched by code object, so only that one frame's
    locals are materialised. Prefixes without a host (such as ``"https://"``) give no
    origin: a token for every host is not a scope.
    """
    frame: Any = sys._getframe(2)
    for _ in range(8):
        if frame is None:
            break
        if frame.f_code is _SESSION_SEND:
            session = frame.f_locals.get("self")
            if isinstance(session, Session):
                return tuple(p for p, mounted in session.adapters.items() if mounted is adapter)
        frame = frame.f_back
    return ()
