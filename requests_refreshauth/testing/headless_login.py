"""The two halves of :meth:`LocalAuthServer.login`'s headless sign-in, done over real
HTTP: what a browser would be sent back with, read from the redirect without following
it (nothing has to listen on the redirect URI), and the checks and code exchange a CLI's
callback would then do."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from ..errors import OAuthFlowError

if TYPE_CHECKING:
    from ..bundle import TokenBundle
    from ..providers.pkce import AuthorizationRequest, PkceProvider

__all__ = ["authorization_redirect", "redeem"]


def authorization_redirect(provider: PkceProvider, request: AuthorizationRequest) -> dict[str, str]:
    """The query of the redirect the authorization endpoint answers ``request`` with.

    Raises:
        OAuthFlowError: the authorization endpoint did not redirect back.
    """
    response = provider.session.get(request.url, allow_redirects=False, timeout=10.0)
    with response:
        location = response.headers.get("Location")
        if response.status_code != 302 or not location:
            raise OAuthFlowError(
                f"The authorization endpoint answered HTTP {response.status_code} "
                "instead of redirecting back."
            )
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


def redeem(
    provider: PkceProvider, request: AuthorizationRequest, query: dict[str, str], issuer: str
) -> TokenBundle:
    """Check the redirect's ``iss`` and ``state``, then redeem its code; a refusal
    raises ``OAuthFlowError``.

    Raises:
        OAuthFlowError: the redirect came from another issuer, its state does not match, or it
            carries an error.
    """
    if query.get("iss") != issuer:
        raise OAuthFlowError("The authorization response came from an unexpected issuer.")
    if query.get("state") != request.state:
        raise OAuthFlowError("The authorization response's state does not match.")
    if "error" in query:
        detail = query.get("error_description")
        raise OAuthFlowError(
            f"The authorization server refused the login ({query['error']}"
            + (f": {detail})" if detail else ")")
        )
    return provider.exchange_code(query["code"], request)
