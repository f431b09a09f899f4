"""``session.auth = RefreshAuth(store, provider)``: silent refresh for existing code.

Proactive: every request gets a token with more than ``skew`` seconds left (refreshed
first if needed). Reactive: a 401 that a new token could fix is answered by one forced
refresh and one resend from the response hook, the way ``HTTPDigestAuth.handle_401``
resends. The resend happens only for the origin the token was attached for, only if the
token we attached is still on the request (requests strips it on cross-host redirects),
and only if the body can be sent again.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Optional

from requests import PreparedRequest, Response
from requests.auth import AuthBase

from ._urls import origin_of
from .bundle import fingerprint
from .providers.base import AuthProvider
from .refresh import DEFAULT_SKEW
from .resend import release, renew_after_401, resend_copy, resendable
from .stores.base import TokenStore
from .token_cache import TokenCache

__all__ = ["RefreshAuth"]

log = logging.getLogger("requests_refreshauth.auth")


class RefreshAuth(AuthBase):
    """A ``requests`` auth that keeps a stored OAuth 2.0 token fresh.

    ``account`` picks the stored account (id or label; ``None``: the default).
    ``skew``: seconds before expiry at which the token is renewed ahead of time.
    Thread-safe: share one instance (and one session) across threads freely.
    """

    def __init__(
        self,
        store: TokenStore,
        provider: AuthProvider,
        *,
        account: Optional[str] = None,
        skew: float = DEFAULT_SKEW,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.source = TokenCache(store, provider, account, skew, clock)

    def __repr__(self) -> str:
        return f"RefreshAuth({self.source.store!r}, account={self.source.account!r})"

    @property
    def store(self) -> TokenStore:
        """The token store this auth reads and saves the account's tokens in."""
        return self.source.store

    @property
    def provider(self) -> AuthProvider:
        """The provider this auth renews tokens through."""
        return self.source.provider

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        snapshot = self.source.current()
        authorization = snapshot.bundle.authorization
        request.headers["Authorization"] = authorization
        assert request.url is not None
        hook = _RetryOn401(self.source, request.url, authorization)
        request.register_hook("response", hook)  # type: ignore[no-untyped-call]
        return request


class _RetryOn401:
    """Response hook for one logical request: at most one refresh-and-resend.

    requests shares one hooks dict between a request and its redirect copies, so this
    object sees every hop; ``used`` makes the retry happen once per logical request.
    """

    def __init__(self, source: TokenCache, url: str, authorization: str) -> None:
        self.source = source
        self.url = url  # parsed into an origin only if a 401 arrives (hot path)
        self.authorization = authorization
        self.used = False

    def __repr__(self) -> str:
        token = self.authorization.partition(" ")[2]
        return f"<RetryOn401 token#{fingerprint(token)} used={self.used}>"

    def __call__(self, response: Response, **kwargs: Any) -> Response:
        if response.status_code != 401 or self.used:
            return response
        request = response.request
        if request.headers.get("Authorization") != self.authorization:
            return response  # not our token on this hop (stripped on redirect, or replaced)
        if request.url is None or origin_of(request.url) != origin_of(self.url):
            return response
        if not resendable(response, request, log):
            return response
        self.used = True
        rejected = self.authorization.partition(" ")[2]
        snapshot = renew_after_401(self.source, rejected, response, request)
        if snapshot.bundle.authorization == self.authorization:
            return response

        release(response)
        # requests builds redirect hops from this request object, not from our copy; it
        # must carry the new token too, or a redirect after the resend sends the old one.
        # The 401 keeps a copy of what was really sent.
        response.request = request.copy()
        request.headers["Authorization"] = snapshot.bundle.authorization
        retry = resend_copy(request, request, response)
        self.authorization = snapshot.bundle.authorization
        log.debug("resending a request rejected with 401 with a refreshed token")
        new_response: Response = response.connection.send(retry, **kwargs)
        new_response.history.append(response)
        new_response.request = retry
        return new_response
