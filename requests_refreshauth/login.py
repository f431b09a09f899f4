"""Logging in and out: browser (loopback PKCE), device code, and revocation on logout.

``login()`` is what ``mycli auth login`` runs: it shows the URL (always — for copy and
paste over SSH), opens a browser when there is one, waits on a loopback listener for the
redirect, exchanges the code, works out who logged in, and saves the bundle. The
account becomes the default only if no default is pinned yet, unless told otherwise.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Callable, NamedTuple, Optional, Union

from ._scrub import server_text, terminal_safe
from .bundle import Account, Snapshot, TokenBundle, jwt_claims
from .device import poll_device_token, start_device_authorization
from .errors import AuthError, CallbackTimeoutError, OAuthFlowError
from .loopback import LoopbackServer

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
BrowserOpener = Callable[[str], bool]
Identify = Callable[[TokenBundle], Account]


def _stderr(message: str) -> None:
    print(terminal_safe(message, multiline=True), file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- browsers


def _is_wsl() -> bool:
    try:
        with open("/proc/version", encoding="utf-8", errors="replace") as handle:
            return "microsoft" in handle.read().lower()
    except OSError:
        return False


def default_browser() -> Optional[BrowserOpener]:
    """A function that opens a URL in the user's browser, or ``None`` if there is none.

    ``$BROWSER`` is honoured first (``webbrowser`` reads it). Headless Linux (no
    ``DISPLAY``/``WAYLAND_DISPLAY``, e.g. over SSH) has none; WSL opens the Windows
    browser (``wslview``, else ``explorer.exe``); elsewhere ``webbrowser``.
    """
    if os.environ.get("BROWSER"):  # the user's explicit choice wins, even over SSH
        import webbrowser

        return lambda url: bool(webbrowser.open(url, new=1))
    if sys.platform.startswith("linux") and _is_wsl():
        for command in ("wslview", "explorer.exe"):
            path = shutil.which(command)
            if path:
                return lambda url, path=path: _spawn([path, url])  # type: ignore[misc]
        return None
    if (
        sys.platform.startswith(("linux", "freebsd", "openbsd"))
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        return None
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        return None
    return lambda url: bool(webbrowser.open(url, new=1))


def _spawn(command: list[str]) -> bool:
    try:
        subprocess.Popen(  # noqa: S603 - a fixed program and the URL as one argument
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    except OSError:
        return False
    return True


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
    timeout: float = 180.0,
    make_default: Optional[bool] = None,
    identify: Optional[Identify] = None,
    say: Say = _stderr,
) -> Snapshot:
    """Browser login with loopback redirect (RFC 8252) and PKCE; returns the saved snapshot.

    ``open_browser``: ``None`` finds the system browser, ``False`` never opens one (the
    URL is shown either way), or a callable — tests and embedders drive the browser side.
    ``port``: 0 for an ephemeral port, or a preferred one (next ten tried if busy).
    ``timeout``: seconds to wait for the redirect (``CallbackTimeoutError``). Ctrl-C
    closes the listener and raises ``KeyboardInterrupt``.
    """
    from secrets import token_urlsafe

    state = token_urlsafe(24)
    with LoopbackServer(
        state=state,
        port=port,
        issuer=provider.issuer,
        require_iss=provider.iss_parameter_supported,
    ) as listener:
        request = provider.authorization_request(listener.redirect_uri, state=state)
        opener = default_browser() if open_browser is None else open_browser
        say(f"To sign in, open this URL in a browser:\n\n    {terminal_safe(request.url)}\n")
        opened = callable(opener) and opener(request.url)
        say(
            ("Opened your browser. " if opened else "")
            + "Waiting for the sign-in to finish (Ctrl-C to cancel)…"
        )
        result = listener.wait(timeout)
    if result is None:
        raise CallbackTimeoutError(
            f"No sign-in response arrived within {timeout:.0f}s. Run the login again."
        )
    if "error" in result:
        hidden = (state, request.code_verifier)  # the page may echo what it was sent
        error = server_text(result["error"], hidden, limit=100)
        detail = server_text(result.get("error_description"), hidden) or error
        raise OAuthFlowError(f"The sign-in failed: {error} ({detail}).")
    code = result.get("code")
    if not code:
        raise OAuthFlowError("The sign-in response carried no authorization code.")
    bundle = provider.exchange_code(code, request)
    return _save(store, provider, bundle, make_default, identify, say)


def device_login(
    store: TokenStore,
    provider: PkceProvider,
    *,
    make_default: Optional[bool] = None,
    identify: Optional[Identify] = None,
    say: Say = _stderr,
    on_prompt: Optional[Callable[[DeviceAuthorization], None]] = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Snapshot:
    """Device-code login (RFC 8628), for SSH sessions and machines without a browser."""
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
    return _save(store, provider, bundle, make_default, identify, say)


def _save(
    store: TokenStore,
    provider: OAuthClient,
    bundle: TokenBundle,
    make_default: Optional[bool],
    identify: Optional[Identify],
    say: Say,
) -> Snapshot:
    account = identify(bundle) if identify is not None else identify_account(provider, bundle)
    snapshot = store.save(account, bundle, make_default)
    warning = getattr(getattr(store, "last_write", None), "warning", None)
    if warning:
        say(f"Warning: {warning}")
    name = account.id if account.label is None else f"{account.label} ({account.id})"
    say(f"Signed in as {terminal_safe(name)}.")
    return snapshot


# --------------------------------------------------------------------------- logout


class LogoutResult(NamedTuple):
    account: Account
    #: ``True`` revoked at the server, ``False`` tried and failed, ``None`` not possible.
    revoked: Optional[bool]


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
    access_token = snapshot.bundle.access_token
    if revoke and provider is not None and provider.revocation_endpoint:
        try:
            refresh_token = snapshot.load_refresh_token()
        except AuthError as exc:
            log.warning("could not read the refresh token to revoke it: %s", exc)
        rescued = _rescued_bundle(store, snapshot.account)
        if rescued is not None:
            access_token = rescued.access_token
            refresh_token = rescued.refresh_token or refresh_token
    store.clear(snapshot.account.id)
    _forget_rescues(store, snapshot.account)
    if not revoke or provider is None or not provider.revocation_endpoint:
        return LogoutResult(snapshot.account, None)
    # The refresh token first: revoking it usually ends the whole grant.
    revoked = True
    if refresh_token is not None:
        revoked = provider.revoke(refresh_token, "refresh_token")
    revoked = provider.revoke(access_token, "access_token") and revoked
    return LogoutResult(snapshot.account, revoked)
