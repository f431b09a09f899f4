"""Logging in and out: browser (loopback PKCE), device code, and revocation on logout.

``login()`` is what ``mycli auth login`` runs: it shows the URL (always — for copy and
paste over SSH), opens a browser when there is one, waits on a loopback listener for the
redirect, exchanges the code, works out who logged in, and saves the bundle. The
account becomes the default only if no default is pinned yet, unless told otherwise.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

from ._claims import Claims, claims_parameter
from ._revoking import revoke as revoke_token
from ._revoking import revoke_unsaved, unsaved_error
from ._scrub import server_text, terminal_safe
from ._system_browser import BrowserOpener, default_browser
from .bundle import Account, Snapshot, TokenBundle, describe_account, jwt_claims
from .device import poll_device_token, start_device_authorization
from .errors import (
    AuthError,
    CallbackTimeoutError,
    ConfigurationError,
    OAuthFlowError,
    StoreReadError,
    StoreWriteError,
)
from .loopback import LoopbackServer
from .providers.client import Revocation

if TYPE_CHECKING:
    from .device import DeviceAuthorization
    from .providers.client import OAuthClient
    from .providers.pkce import PkceProvider
    from .stores.base import TokenStore

__all__ = [
    "LogoutResult",
    "default_browser",
    "device_login",
    "identify_account",
    "login",
    "logout",
]

log = logging.getLogger("requests_refreshauth.login")

Say = Callable[[str], None]
Identify = Callable[[TokenBundle], Account]


def _stderr(message: str) -> None:
    print(terminal_safe(message, multiline=True), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- identity


def identify_account(provider: OAuthClient, bundle: TokenBundle) -> Account:
    """Who logged in: OIDC userinfo ``sub`` (label: email), else a JWT access token's
    ``sub``, else the account ``"default"``."""
    claims: dict[str, object] = {}
    if provider.userinfo_endpoint:
        try:
            claims = provider.userinfo(bundle)
        except AuthError as exc:
            log.warning("could not identify the account from userinfo: %s", exc)
    if not claims.get("sub"):
        claims = jwt_claims(bundle.access_token) or {}
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        return Account("default")
    label = next(
        (
            value
            for key in ("email", "preferred_username", "name")
            if isinstance(value := claims.get(key), str) and value
        ),
        None,
    )
    return Account(sub, label)


# --------------------------------------------------------------------------- login


def login(
    store: TokenStore,
    provider: PkceProvider,
    *,
    open_browser: Union[BrowserOpener, bool, None] = None,
    port: int = 0,
    fallback_ports: int = 10,
    timeout: float = 180.0,
    make_default: Optional[bool] = None,
    identify: Optional[Identify] = None,
    say: Say = _stderr,
    device_command: Optional[str] = None,
    prog: Optional[str] = None,
    claims: Optional[Claims] = None,
) -> Snapshot:
    """Browser login with loopback redirect (RFC 8252) and PKCE; returns the saved snapshot.

    ``open_browser``: ``None`` finds the system browser, ``False`` never opens one (the
    URL is shown either way), or a callable — tests and embedders drive the browser side.
    ``port``: 0 for an ephemeral port, or a preferred one (the next ``fallback_ports``
    tried if busy; 0 for a provider that requires this exact redirect URI).
    ``timeout``: seconds to wait for the redirect (``CallbackTimeoutError``); the wait is
    announced, with a reminder each minute. Ctrl-C closes the listener and raises
    ``KeyboardInterrupt``. ``device_command``: how the user starts a device-code
    sign-in (a CLI passes ``"mycli auth login --device"``), named when a browser sign-in
    cannot work here and the provider offers device sign-in. ``prog``: how hints name
    the CLI's auth commands (``"mycli auth"``), e.g. to switch the default account.
    ``claims``: the OIDC ``claims`` request parameter, a JSON object as text (Entra's
    challenge, ``RefreshExpiredError.extra["claims"]``, sent as is) or a mapping.

    The store's ``preflight()`` (if it has one) runs first: a store that cannot save
    (a locked keyring, or one out of reach that holds the default account's tokens)
    fails before any URL is shown. A save that still fails after the code exchange
    revokes what was issued (best effort) and its error says so — except for a re-login
    of a stored account: the new sign-in may share the stored login's grant, and
    revoking it could end that login too (see :mod:`._revoking`).

    Raises:
        ConfigurationError: no browser can be opened and no device flow was offered instead.
        CallbackTimeoutError: the sign-in did not come back within ``timeout``.
        OAuthFlowError: the server answered the sign-in with an error, or without a code.
    """
    from secrets import token_urlsafe

    from ._browser_env import BrowserFailed
    from ._waiting import device_command_for, no_browser_text, span, timeout_text, wait_for

    claims_value = claims_parameter(claims)  # a bad one fails before anything is shown
    params = {} if claims_value is None else {"claims": claims_value}
    device_command = device_command_for(provider, device_command)
    if hasattr(provider, "authorization_endpoint") and not provider.authorization_endpoint:
        raise ConfigurationError(_no_browser_sign_in(device_command))
    _preflight(store)
    state = token_urlsafe(24)
    with LoopbackServer(
        state=state,
        port=port,
        fallback_ports=fallback_ports,
        issuer=provider.issuer,
        require_iss=provider.iss_parameter_supported,
    ) as listener:
        request = provider.authorization_request(listener.redirect_uri, state=state, **params)
        opener = default_browser() if open_browser is None else open_browser
        say(f"To sign in, open this URL in a browser:\n\n    {terminal_safe(request.url)}\n")
        opened, failure = False, None
        if callable(opener):
            try:
                opened = bool(opener(request.url))
            except (BrowserFailed, OSError) as exc:
                failure = str(exc) or type(exc).__name__
            if not opened and not listener.finished:  # a browser that finished, then failed
                why = f" ({failure})" if failure else ""
                say(f"Could not open the browser{why}; open the URL above yourself.")
        if not opened and not listener.finished:
            say(no_browser_text(listener.redirect_uri, device_command))
        say(
            ("Opened your browser. " if opened else "")
            + f"Waiting for the sign-in to finish, up to {span(timeout)} (Ctrl-C to cancel)…"
        )
        result = wait_for(listener.wait, timeout, say)
    if result is None:
        raise CallbackTimeoutError(timeout_text(timeout, device_command))
    if "error" in result:
        hidden = (state, request.code_verifier)  # the page may echo what it was sent
        error = server_text(result["error"], hidden, limit=100)
        detail = server_text(result.get("error_description"), hidden) or error
        raise OAuthFlowError(f"The sign-in failed: {error} ({detail}).")
    code = result.get("code")
    if not code:
        raise OAuthFlowError("The sign-in response carried no authorization code.")
    bundle = provider.exchange_code(code, request)
    return _save(store, provider, bundle, make_default, identify, say, prog)


def _no_browser_sign_in(device_command: Optional[str]) -> str:
    text = "The provider has no authorization endpoint, so it offers no browser sign-in"
    if device_command:
        return f"{text}: sign in with a code instead: `{device_command}`."
    return f"{text}: configure its authorization endpoint (or its device endpoint)."


def device_login(
    store: TokenStore,
    provider: PkceProvider,
    *,
    make_default: Optional[bool] = None,
    identify: Optional[Identify] = None,
    say: Say = _stderr,
    on_prompt: Optional[Callable[[DeviceAuthorization], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
    prog: Optional[str] = None,
) -> Snapshot:
    """Device-code login (RFC 8628), for SSH sessions and machines without a browser.

    Like :func:`login`: the store's preflight runs before the code is shown.
    """
    _preflight(store)
    authorization = start_device_authorization(provider)
    say(
        f"To sign in, open {terminal_safe(authorization.verification_uri)} on any device and "
        f"enter the code:\n\n    {terminal_safe(authorization.user_code)}\n"
    )
    if authorization.verification_uri_complete:
        say(f"(or open {terminal_safe(str(authorization.verification_uri_complete))})")
    if on_prompt is not None:
        on_prompt(authorization)
    polls = 0

    def progress(seconds_left: float) -> None:
        nonlocal polls
        polls += 1
        if polls == 1 or polls % 6 == 0:
            say(f"Waiting for approval… (code valid for {seconds_left:.0f}s more, Ctrl-C cancels)")

    bundle = poll_device_token(provider, authorization, on_wait=progress, sleep=sleep)
    return _save(store, provider, bundle, make_default, identify, say, prog)


def _preflight(store: TokenStore) -> None:
    """The store's ``preflight()``, if it has one: an unusable store (a locked keyring,
    a records directory that cannot be created) fails *before* the user signs in."""
    check = getattr(store, "preflight", None)
    if callable(check):
        check()


def _save(
    store: TokenStore,
    provider: OAuthClient,
    bundle: TokenBundle,
    make_default: Optional[bool],
    identify: Optional[Identify],
    say: Say,
    prog: Optional[str] = None,
) -> Snapshot:
    account = identify(bundle) if identify is not None else identify_account(provider, bundle)
    try:
        snapshot = store.save(account, bundle, make_default)
    except (StoreWriteError, StoreReadError) as exc:
        outcome = revoke_unsaved(provider, bundle, store, account)
        raise unsaved_error(exc, outcome) from None
    # This save's own report: a store-wide "last write" may be another thread's by now.
    report = snapshot.write_report
    if report is not None and report.warning:
        say(f"Warning: {report.warning}")
    note = _default_note(store, snapshot, prog)
    say(f"Signed in as {describe_account(snapshot.account)}.{note}")
    return snapshot


def _default_note(store: TokenStore, snapshot: Snapshot, prog: Optional[str]) -> str:
    """When the new account is not the default: which one is, and how to switch."""
    if snapshot.is_default:
        return ""
    try:
        default = store.status()
    except AuthError:
        return ""
    if default is None or default.account.id == snapshot.account.id:
        return ""
    import shlex  # the hint is a command to paste: an id from the server is quoted

    switch = f" (`{prog} accounts use {shlex.quote(terminal_safe(snapshot.account.id))}` to switch)"
    return (
        f" {describe_account(default.account)} is still the default account"
        f"{switch if prog else ''}."
    )


# --------------------------------------------------------------------------- logout


class LogoutResult(NamedTuple):
    account: Account
    #: The grant: ``True`` ended at the server, ``False`` tried and failed, ``None`` not
    #: possible. The refresh token's result (revoking it ends the grant); the access
    #: token's when there is no refresh token.
    revoked: Optional[bool]
    #: Why a token was not revoked, in a few words ("connection refused", "HTTP 400").
    reason: Optional[str] = None
    #: The server answered (and refused); ``False`` when it could not be reached.
    server_reached: bool = False
    #: The full message of the failed revocation (endpoint and reason).
    message: Optional[str] = None
    #: Until when what was not revoked stays valid at the server, when known.
    valid_until: Optional[float] = None
    #: The refresh token's own result (``None``: none to revoke, or not possible).
    refresh_revoked: Optional[bool] = None
    #: The access token's own result: ``False`` with ``revoked`` ``True`` means the grant
    #: ended, but the access token works until it expires (RFC 7009 §2.2.1 lets a server
    #: refuse access tokens).
    access_revoked: Optional[bool] = None


def _rescued_bundle(store: TokenStore, account: Account) -> Optional[TokenBundle]:
    """The live bundle a failed save left in a rescue (see :mod:`.rescue`), if any: after
    such a failure *it* holds the live refresh token, the stored one was rotated out."""
    from .rescue import find

    lock = store.refresh_lock(account)
    if not lock.acquire(timeout=5.0):
        return None
    try:
        status = store.status(account.id)
        found = find(store, status) if status is not None else None
    except AuthError as exc:
        log.debug("could not look for a token rescue (%s)", exc.code)
        return None
    finally:
        lock.release()
    return found.bundle if found is not None else None


def _forget_rescues(store: TokenStore, account: Account) -> None:
    """A rotated bundle a failed save left behind (see :mod:`.rescue`) goes too."""
    from .rescue import settle

    settle(store, account)


def logout(
    store: TokenStore,
    provider: Optional[OAuthClient] = None,
    ref: Optional[str] = None,
    *,
    revoke: bool = True,
) -> Optional[LogoutResult]:
    """Forget an account locally, then revoke its tokens at the server (best effort).

    Local state goes first: a logout must work offline and must not be undone by a
    server that is down. Returns ``None`` when no account was stored.
    """
    snapshot = store.active(ref)
    if snapshot is None:
        return None
    refresh_token: Optional[str] = None
    unreadable: Optional[AuthError] = None
    bundle = snapshot.bundle
    access_token = bundle.access_token
    if revoke and provider is not None and provider.revocation_endpoint:
        try:
            # A store of an earlier protocol has no read_refresh_token: its inline token.
            read = getattr(store, "read_refresh_token", None)
            refresh_token = read(snapshot) if read is not None else snapshot.bundle.refresh_token
        except AuthError as exc:
            log.debug("could not read the refresh token to revoke it (%s)", exc.code)
            unreadable = exc
        rescued = _rescued_bundle(store, snapshot.account)
        if rescued is not None:
            bundle = rescued
            access_token = rescued.access_token
            refresh_token = rescued.refresh_token or refresh_token
    store.clear(snapshot.account.id)
    _forget_rescues(store, snapshot.account)
    live_until = bundle.refresh_expires_at if snapshot.has_refresh_token else bundle.expires_at
    if not revoke or provider is None or not provider.revocation_endpoint:
        return LogoutResult(snapshot.account, None, valid_until=live_until)
    # The refresh token first: revoking it ends the whole grant.
    refresh: Optional[Revocation] = None
    if refresh_token is not None:
        refresh = revoke_token(provider, refresh_token, "refresh_token")
    elif unreadable is not None and snapshot.has_refresh_token:
        refresh = Revocation(False, "the stored refresh token could not be read", True)
    access = revoke_token(provider, access_token, "access_token")
    grant = refresh if refresh is not None else access
    failed, until = grant, live_until
    if grant.revoked:
        failed, until = access, bundle.expires_at
    refresh_revoked = refresh.revoked if refresh is not None else None
    if failed.revoked:
        return LogoutResult(
            snapshot.account, True, refresh_revoked=refresh_revoked, access_revoked=True
        )
    return LogoutResult(
        snapshot.account,
        grant.revoked,
        failed.reason,
        failed.server_reached,
        failed.message,
        until,
        refresh_revoked,
        access.revoked,
    )
