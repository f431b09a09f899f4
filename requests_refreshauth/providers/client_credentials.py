"""Client credentials (RFC 6749 §4.4) for service accounts, renewed without a refresh token.

A service authenticates as itself, so "refreshing" is simply asking again. It still goes
through the engine: the token is cached and shared through the store, and a pool of
workers with an expired token asks the server once, not once per worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Optional

from ..bundle import Account
from .client import OAuthClient
from .token_endpoint import Timeout

if TYPE_CHECKING:
    import requests
    from typing_extensions import Unpack

    from ..bundle import TokenBundle
    from .base import BeforeAttempt
    from .client import SharedOptions

__all__ = ["ClientCredentialsProvider"]

_OLD_ORDER = (
    "ClientCredentialsProvider takes (client_id, token_endpoint, *, client_secret=...): "
    "write ClientCredentialsProvider(client_id, token_endpoint, client_secret=secret) "
    "(the old positional order client_id, client_secret, token_endpoint is refused, so a "
    "secret is never taken for a URL)"
)


class ClientCredentialsProvider(OAuthClient):
    """A confidential client that obtains tokens with its own id and secret.

    ``account``: the store account its tokens are kept under (default: the client id).
    With an empty store, the first request obtains a token by itself — no login step.
    """

    uses_refresh_token = False

    def __new__(cls, *args: Any, **kwargs: Any) -> ClientCredentialsProvider:
        # The order used to be (client_id, client_secret, token_endpoint): refuse
        # that call by its shape, before binding could take the secret for the URL.
        # Only for this constructor: a subclass's own signature is its business.
        old_shape = len(args) > 2 or (len(args) == 2 and "token_endpoint" in kwargs)
        if old_shape and cls.__init__ is ClientCredentialsProvider.__init__:
            raise TypeError(_OLD_ORDER)
        return super().__new__(cls)

    def __init__(
        self,
        client_id: str,
        token_endpoint: str,
        *,
        client_secret: str,
        scopes: Iterable[str] = (),
        session: Optional[requests.Session] = None,
        timeout: Timeout = 30.0,
        account: Optional[str] = None,
        **options: Unpack[SharedOptions],
    ) -> None:
        """``options``: ``client_auth``, ``retry``, ``revocation_endpoint``, ``clock``
        (see :class:`~.client.OAuthClient`)."""
        if not client_secret:
            raise ValueError("client_secret is required for client credentials")
        super().__init__(
            client_id,
            token_endpoint,
            scopes,
            session,
            timeout,
            client_secret=client_secret,
            **options,
        )
        self.account = Account(account or client_id)

    def renew(
        self, current: Optional[TokenBundle], *, before_attempt: Optional[BeforeAttempt] = None
    ) -> TokenBundle:
        """Ask again (``current`` is not needed); ``before_attempt``: see
        :meth:`.base.AuthProvider.renew`."""
        from oauthlib.oauth2 import BackendApplicationClient

        params: Any = self._credentials(client_id=False)
        body = BackendApplicationClient(self.client_id).prepare_request_body(
            scope=list(self.scopes) or None, **params
        )
        return self.token_endpoint.post(
            body,
            grant="client_credentials",  # a refusal: the client's setup, never "log in"
            requested_scope=self.scopes or None,
            secrets=self._secrets(),
            before_attempt=before_attempt,
        )
