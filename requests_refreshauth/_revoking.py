"""Revoking tokens (RFC 7009) for a logout and for a sign-in whose save failed.

What to revoke and how to count the results are decisions with traps:

- A server may give a re-login from the same browser session the *same* grant as the
  login already stored (oidc-provider, Google), and revoking a token ends its grant:
  oidc-provider ends it on revoking the refresh token *or* the access token. A client
  cannot tell whether the grant is shared, so a failed re-login revokes nothing: that
  could end the stored login, which the error says is unchanged.
- RFC 7009 §2.2.1 lets a server refuse access tokens (400 unsupported_token_type). The
  refresh token's result is the grant's result; an unrevoked access token only means it
  works until it expires.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, NamedTuple, Optional

from .errors import AuthError, KeyringUnavailableError
from .providers.client import Revocation

if TYPE_CHECKING:
    from .bundle import Account, TokenBundle
    from .providers.client import OAuthClient
    from .stores.base import TokenStore

__all__ = ["Unsaved", "revoke", "revoke_unsaved", "unsaved_error"]

log = logging.getLogger("requests_refreshauth.login")


class Unsaved(NamedTuple):
    """What became of a sign-in that could not be saved."""

    #: The grant's result: ``True`` ended at the server, ``False`` tried and failed,
    #: ``None`` not tried (no revocation endpoint, or a re-login).
    revoked: Optional[bool]
    #: The access token's own result (``None`` when not tried).
    access_revoked: Optional[bool] = None
    #: The account was already stored: nothing was revoked, on purpose.
    relogin: bool = False


def revoke(provider: OAuthClient, token: str, hint: str) -> Revocation:
    """How revoking ``token`` went; a provider with only ``revoke()`` gives no reason."""
    detailed = getattr(provider, "revocation", None)
    if callable(detailed):
        outcome: Revocation = detailed(token, hint)
        return outcome
    return Revocation(bool(provider.revoke(token, hint)), "the revocation failed")


def _already_stored(store: TokenStore, account: Account) -> bool:
    """Whether ``store`` holds ``account`` (a re-login); unknown counts as yes, since
    the safe mistake is to leave a sign-in live, not to end a stored login."""
    from .stores.base import status_or_none

    try:
        status = status_or_none(store, account.id)
    except AuthError as exc:
        log.debug("could not tell whether the account is stored (%s)", exc.code)
        return True
    return status is not None and status.account.id == account.id  # not a label match


def revoke_unsaved(
    provider: OAuthClient, bundle: TokenBundle, store: TokenStore, account: Account
) -> Unsaved:
    """Revoke what a sign-in issued but could not keep (best effort, each call bounded by
    the provider's timeout): for a new account both tokens, the refresh token first (it
    ends the grant); for a re-login nothing (see the module doc)."""
    if not getattr(provider, "revocation_endpoint", None):
        return Unsaved(None)
    if _already_stored(store, account):
        return Unsaved(None, relogin=True)
    refresh: Optional[bool] = None
    if bundle.refresh_token is not None:
        refresh = revoke(provider, bundle.refresh_token, "refresh_token").revoked
    access = revoke(provider, bundle.access_token, "access_token").revoked
    return Unsaved(access if refresh is None else refresh, access)


def unsaved_error(exc: AuthError, outcome: Unsaved) -> AuthError:
    """The save's error, saying in the same one message what became of the sign-in."""
    from .stores._keyring_advice import sign_in_outcome

    text = sign_in_outcome(
        outcome.revoked, access_revoked=outcome.access_revoked, relogin=outcome.relogin
    )
    if isinstance(exc, KeyringUnavailableError):
        return exc.amend(sign_in=text)
    exc.message = f"{exc.message.rstrip()} {text}"
    exc.args = (exc.message,)
    return exc
