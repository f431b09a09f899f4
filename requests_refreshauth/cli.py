"""Drop-in ``auth`` commands for an existing argparse or click CLI.

    # argparse
    sub = parser.add_subparsers()
    add_auth_commands(sub, store=make_store, provider=make_provider)
    args = parser.parse_args(); sys.exit(args.func(args))

    # click
    cli.add_command(click_auth_group(store=make_store, provider=make_provider))

Both give ``auth login [--device] [--no-browser] [--port PORT] [--timeout SECONDS]``,
``auth logout``, ``auth status``, ``auth token``, and ``auth accounts list|use REF|remove
REF``, each with ``--json``; ``--user REF`` picks the account, after the verb or before
it (``auth --user bob status``; after the verb wins). ``store`` and ``provider`` may
be objects or zero-argument factories (so ``--help`` does not read a keyring or fetch
discovery metadata). Human output goes to
stdout, progress and errors to stderr; ``--json`` prints one JSON document on stdout.
Exit codes follow the error's ``code`` (:data:`EXIT_CODES`); every failure, typed or
not, ends as one (no traceback unless ``REFRESHAUTH_DEBUG=1``). Human output has
terminal control characters shown as escapes (``\\x1b``): account labels, server error
text and device codes come from the server.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import IO, TYPE_CHECKING, Any, Callable, Dict, Optional, TypeVar, Union

from ._cli_format import (
    account_json,
    account_name,
    expiry_text,
    session_is_dead,
    status_data,
    status_text,
)
from ._scrub import terminal_safe

if TYPE_CHECKING:
    import argparse

    from .errors import AuthError
    from .login import LogoutResult
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["EXIT_CODES", "AuthCommands", "add_auth_commands", "click_auth_group"]

T = TypeVar("T")
Factory = Union[T, Callable[[], T]]

#: Process exit status by error code. 0 is success, 1 an unexpected error
#: (``AUTH_INTERNAL_ERROR``), 2 a usage error (argparse/click), 130 Ctrl-C (``CANCELLED``
#: under ``--json``).
EXIT_CODES: Dict[str, int] = {
    "NOT_AUTHENTICATED": 3,
    "AUTH_REFRESH_EXPIRED": 3,
    "AUTH_REFRESH_UNAVAILABLE": 3,
    "AUTH_REFRESH_TRANSIENT": 4,
    "AUTH_REFRESH_REJECTED": 5,
    "AUTH_OAUTH_FAILED": 5,
    "AUTH_TOKEN_EXCHANGE_FAILED": 5,
    "AUTH_STORE_READ_FAILED": 6,
    "AUTH_STORE_WRITE_FAILED": 6,
    "ACCOUNT_NOT_FOUND": 7,
    "NO_ACCOUNT_SELECTED": 7,
    "AUTH_CALLBACK_TIMEOUT": 8,
    "AUTH_CONFIGURATION_INVALID": 9,
    "AUTH_INTERNAL_ERROR": 1,
    "CANCELLED": 130,
}


def _resolve(value: Factory[T]) -> T:
    """An object, or the result of calling a zero-argument factory for it."""
    return value() if callable(value) else value


def _build(value: Factory[T]) -> T:
    """:func:`_resolve`, with a ``ValueError`` (a constructor's check: an http endpoint
    in discovered metadata, a missing client id) typed as a configuration error."""
    from .errors import ConfigurationError

    try:
        return _resolve(value)
    except ConfigurationError:
        raise
    except ValueError as exc:
        from ._failures import configuration_error

        raise configuration_error(exc) from None


class AuthCommands:
    """The verbs, independent of the argument parser; each returns an exit status."""

    #: How this CLI keeps the tokens in a file instead of the OS keyring (a command,
    #: e.g. "`mycli --tokens-file PATH auth login`"), named when the keyring is locked;
    #: ``None`` gives generic advice. ``python -m requests_refreshauth`` sets its own.
    file_store_hint: Optional[str] = None

    def __init__(
        self,
        store: Factory[TokenStore],
        provider: Factory[AuthProvider],
        *,
        prog: str = "",
        stdout: Optional[IO[str]] = None,
        stderr: Optional[IO[str]] = None,
    ) -> None:
        self._store_factory = store
        self._provider_factory = provider
        self._store: Optional[TokenStore] = None
        self._provider: Optional[AuthProvider] = None
        self.prog = prog
        self._stdout = stdout
        self._stderr = stderr

    # Streams are looked up at use time so test runners that swap sys.stdout see output.
    @property
    def stdout(self) -> IO[str]:
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> IO[str]:
        return self._stderr or sys.stderr

    @property
    def store(self) -> TokenStore:
        if self._store is None:
            self._store = _build(self._store_factory)
        return self._store

    @property
    def provider(self) -> AuthProvider:
        if self._provider is None:
            self._provider = _build(self._provider_factory)
        return self._provider

    def _provider_for_revocation(self) -> tuple[Any, Optional[str]]:
        """The provider (``None`` if it cannot revoke), and why it could not be built
        (offline discovery): logging out must work without the server."""
        from ._failures import as_auth_error

        try:
            provider = self.provider
        except Exception as exc:  # noqa: BLE001 - typed, reported by logout, which goes on
            return None, str(as_auth_error(exc)).rstrip(".")
        return (provider if hasattr(provider, "revoke") else None), None

    # ------------------------------------------------------------------ plumbing

    def say(self, message: str) -> None:
        print(terminal_safe(message, multiline=True), file=self.stderr, flush=True)

    def _emit(self, as_json: bool, data: Any, human: str) -> None:
        if as_json:  # json.dumps escapes every control character (ensure_ascii)
            print(json.dumps(data, indent=2, sort_keys=True), file=self.stdout, flush=True)
        elif human:
            print(terminal_safe(human, multiline=True), file=self.stdout, flush=True)

    def run(self, verb: Callable[..., int], *, as_json: bool = False, **kwargs: Any) -> int:
        """Run a verb, turning every failure into a message and an exit status."""
        from ._failures import as_auth_error, debugging

        if debugging():
            _show_library_logs(self.stderr)
        try:
            return verb(as_json=as_json, **kwargs)
        except KeyboardInterrupt:
            return self._fail(as_json, "CANCELLED", "Cancelled.")
        except Exception as exc:  # noqa: BLE001 - every failure ends as a typed error
            error = _with_file_hint(as_auth_error(exc), self.file_store_hint)
            if error is not exc and debugging():
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=self.stderr)
            hint = ""
            if error.login_required and self.prog:
                hint = f"\nRun `{self.prog} login` to sign in."
            return self._fail(as_json, error.code, str(error), hint)

    def _fail(self, as_json: bool, code: str, message: str, hint: str = "") -> int:
        """Report a failure (one JSON document under ``--json``); its exit status."""
        try:
            if as_json:
                self._emit(True, {"error": {"code": code, "message": message}}, "")
            elif code == "CANCELLED":
                self.say(message)
            else:
                self.say(f"error: {message}{hint}")
        except OSError:  # stdout/stderr closed (a pipe's reader left): the status still counts
            pass
        return EXIT_CODES.get(code, 1)

    # ------------------------------------------------------------------ verbs

    def login(
        self,
        *,
        as_json: bool = False,
        device: bool = False,
        no_browser: bool = False,
        default: Optional[bool] = None,
        timeout: float = 180.0,
        port: Optional[int] = None,
    ) -> int:
        from .login import device_login, login
        from .providers.pkce import PkceProvider
        from .refresh import refresh_access_token

        provider = self.provider
        if isinstance(provider, PkceProvider):
            if device:
                snapshot = device_login(
                    self.store, provider, make_default=default, say=self.say, prog=self.prog
                )
            else:
                snapshot = login(
                    self.store,
                    provider,
                    open_browser=False if no_browser else None,
                    make_default=default,
                    timeout=timeout,
                    port=port or 0,
                    fallback_ports=0 if port else 10,  # --port: that exact redirect URI
                    say=self.say,
                    device_command=f"{self.prog} login --device".strip(),
                    prog=self.prog,
                )
        else:  # a provider that needs no user: obtaining a token is the login
            snapshot = refresh_access_token(self.store, provider, force=True)
        data = {
            "account": account_json(snapshot.account),
            "default": snapshot.is_default,
            "expires_at": snapshot.bundle.expires_at,
            **_where_secrets_went(self.store, snapshot.account.id),
        }
        self._emit(as_json, data, "")
        return 0

    def logout(self, *, as_json: bool = False, user: Optional[str] = None) -> int:
        from .login import logout

        provider, unbuilt = self._provider_for_revocation()
        result = logout(self.store, provider, user)
        if result is None:
            self._emit(as_json, {"account": None}, "Not logged in.")
            return 0
        data: Dict[str, Any] = {"account": account_json(result.account), "revoked": result.revoked}
        if result.revoked is not True:
            data["revocation_error"] = _revocation_error(result, unbuilt)
        self._emit(as_json, data, _logout_text(result, unbuilt))
        return 0

    def status(self, *, as_json: bool = False, user: Optional[str] = None) -> int:
        from .errors import NotAuthenticatedError

        status = self.store.status(user)
        if status is None:
            raise NotAuthenticatedError("Not logged in.")
        data = status_data(status)
        self._emit(as_json, data, status_text(status))
        if not session_is_dead(status):
            return 0
        # Shown in full above; the status says a script cannot go on without a login.
        if not as_json and self.prog:
            self.say(f"Run `{self.prog} login` to sign in.")
        return EXIT_CODES["AUTH_REFRESH_EXPIRED"]

    def token(
        self, *, as_json: bool = False, user: Optional[str] = None, retry_refresh: bool = False
    ) -> int:
        from ._session_end import session_ended_error
        from .bundle import is_fresh
        from .refresh import DEFAULT_SKEW, refresh_access_token

        status = self.store.status(user)  # records only: an ended session is known offline
        ended = status is not None and status.session_ended is not None
        if status is not None and status.session_ended is not None and not retry_refresh:
            raise session_ended_error(status.account, status.session_ended)
        snapshot = None if status is None else self.store.active(status.account.id)
        if ended or snapshot is None or not is_fresh(snapshot.bundle, time.time(), DEFAULT_SKEW):
            # Only now build the provider: a valid token must print offline, even when
            # the provider's configuration needs the network (discovery).
            snapshot = _refresh_or_fail(
                lambda: refresh_access_token(
                    self.store, self.provider, user, known=snapshot, retry_ended_session=ended
                )
            )
        bundle = snapshot.bundle
        data = {
            "access_token": bundle.access_token,
            "token_type": bundle.token_type,
            "expires_at": bundle.expires_at,
            "account": snapshot.account.id,
        }
        self._emit(as_json, data, bundle.access_token)
        return 0

    def accounts_list(self, *, as_json: bool = False) -> int:
        statuses = list(self.store.accounts())
        if as_json:
            self._emit(True, [status_data(s) for s in statuses], "")
            return 0
        if not statuses:
            self._emit(False, None, "No accounts. Log in first.")
            return 0
        rows = [
            (
                "*" if s.is_default else " ",
                account_name(s.account.id, s.account.label),
                expiry_text(s.expires_at),
                "refresh token" if s.has_refresh_token else "no refresh token",
            )
            if not session_is_dead(s)
            else (
                "*" if s.is_default else " ",
                account_name(s.account.id, s.account.label),
                "session ended" if s.session_ended is not None else "session expired",
                "log in again",
            )
            for s in statuses
        ]
        width = max(len(r[1]) for r in rows)
        lines = [
            f"{mark} {name:<{width}}  {expiry}, {refresh}" for mark, name, expiry, refresh in rows
        ]
        self._emit(False, None, "\n".join(lines))
        return 0

    def accounts_use(self, ref: str, *, as_json: bool = False) -> int:
        account = self.store.set_default(ref)
        data = {"default": account_json(account)}
        self._emit(
            as_json, data, f"{account_name(account.id, account.label)} is now the default account."
        )
        return 0

    def accounts_remove(self, ref: str, *, as_json: bool = False) -> int:
        return self.logout(as_json=as_json, user=ref)


def _show_library_logs(stream: IO[str]) -> None:
    """``REFRESHAUTH_DEBUG=1``: the library's logs (all levels) on stderr, even when the
    package logger is quiet (a ``NullHandler``). Never secrets: no log line has any."""
    import logging

    logger = logging.getLogger("requests_refreshauth")
    if any(getattr(h, "_refreshauth_debug", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    handler._refreshauth_debug = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def _revocation_error(result: LogoutResult, unbuilt: Optional[str]) -> Dict[str, Any]:
    """Why ``logout --json`` could not revoke, and until when the sign-in stays live."""
    if result.revoked is None:
        reason = unbuilt or "the server offers no token revocation"
        return {
            "reason": reason,
            "server_reached": False,
            "message": unbuilt,
            "valid_until": result.valid_until,
        }
    return {
        "reason": result.reason,
        "server_reached": result.server_reached,
        "message": result.message,
        "valid_until": result.valid_until,
    }


def _logout_text(result: LogoutResult, unbuilt: Optional[str]) -> str:
    """One message: what happened here, what did not happen at the server, and what that
    means (a grant nobody holds any more is still live there until it expires)."""
    from ._cli_format import _when

    name = account_name(result.account.id, result.account.label)
    if result.revoked:
        return f"Logged out of {name}."
    if result.revoked is None and unbuilt is None:
        why = "The server offers no way to revoke the tokens"
    elif result.revoked is None:
        why = f"The tokens could not be revoked at the server ({unbuilt})"
    elif result.server_reached:
        why = f"The server did not revoke the tokens ({result.reason})"
    else:
        why = f"The server could not be reached ({result.reason}) to revoke the tokens"
    until = f" ({_when(result.valid_until)})" if result.valid_until else ""
    return (
        f"Logged out of {name} on this machine.\n{why}; "
        f"the sign-in stays valid there until it expires{until}."
    )


def _where_secrets_went(store: TokenStore, account_id: str) -> Dict[str, Any]:
    """``secrets`` ("keyring", "plaintext", "file" or "memory") and ``records`` (the
    records file, ``None`` for memory) of a saved account, for ``login --json``."""
    from .errors import AuthError

    try:
        status = store.status(account_id)
    except AuthError:
        status = None
    path = getattr(store, "path", None)
    return {
        "secrets": status.secrets if status is not None else None,
        "records": path if isinstance(path, str) else None,
    }


def _with_file_hint(error: AuthError, hint: Optional[str]) -> AuthError:
    """A locked keyring's error, naming this CLI's way to keep the tokens in a file."""
    from .errors import KeyringUnavailableError

    if hint and isinstance(error, KeyringUnavailableError):
        return error.amend(file_hint=hint)
    return error


def _refresh_or_fail(refresh: Callable[[], T]) -> T:
    """``refresh()``, raising the ``save_failed`` error it reported, if any: the token
    works, but a script must not carry on as if it were saved (``auth token`` exits 6)."""
    import threading

    from .events import AuthEvent, add_listener

    failed: list[AuthEvent] = []
    me = threading.get_ident()

    def listen(event: AuthEvent) -> None:
        if event.kind == "save_failed" and threading.get_ident() == me:
            failed.append(event)

    remove = add_listener(listen)
    try:
        result = refresh()
    finally:
        remove()
    if failed and failed[-1].error is not None:
        raise failed[-1].error
    return result


# --------------------------------------------------------------------------- argparse


def add_auth_commands(
    subparsers: Any,
    *,
    store: Factory[TokenStore],
    provider: Factory[AuthProvider],
    name: str = "auth",
    prog: Optional[str] = None,
) -> argparse.ArgumentParser:
    """Add ``<name> login|logout|status|token|accounts`` to an argparse CLI.

    ``subparsers`` is what ``parser.add_subparsers()`` returned. Each verb sets
    ``func`` (call ``sys.exit(args.func(args))``), the argparse convention.
    """
    parent = subparsers.add_parser(name, help="sign in, sign out and inspect accounts")
    _add_user_before_verb(parent)
    verbs = parent.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    verbs.required = True
    commands = AuthCommands(store, provider, prog=prog or f"{parent.prog}")
    _add_verbs(verbs, commands)
    return parent  # type: ignore[no-any-return]


_RETRY_HELP = "after the server ended the session, try its refresh token once more (or log in)"


#: Where ``--user`` given before the verb (``mycli auth --user bob status``) is kept.
_USER_BEFORE = "refreshauth_user_before_verb"


def _user(args: argparse.Namespace) -> Optional[str]:
    """``--user`` after the verb, else before it (the one nearer the verb wins)."""
    after: Optional[str] = getattr(args, "user", None)
    return after if after is not None else getattr(args, _USER_BEFORE, None)


def _add_user_before_verb(parser: Any) -> None:
    parser.add_argument(
        "--user", dest=_USER_BEFORE, metavar="REF", help="account id or label (for any verb)"
    )


def _port_number(text: str) -> int:
    """argparse ``type``: a TCP port, or 0 for any free one (a usage error otherwise)."""
    import argparse

    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number 1-65535 (or 0 for any free port), not {text!r}"
        )
    return port


def _seconds(text: str) -> float:
    """argparse ``type``: a positive, finite number of seconds."""
    import argparse
    import math

    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, not {text!r}")
    return seconds


_PORT_HELP = "listen for the redirect on this exact port (for a registered redirect URI)"
_TIMEOUT_HELP = "seconds to wait for the browser sign-in (default: 180)"


def _add_verbs(verbs: Any, commands: AuthCommands) -> None:
    def common(parser: Any, user: bool = True) -> None:
        parser.add_argument("--json", action="store_true", help="print JSON on stdout")
        if user:
            parser.add_argument("--user", metavar="REF", help="account id or label")

    login = verbs.add_parser("login", help="sign in (browser, or --device)")
    common(login, user=False)
    login.add_argument(
        "--device", action="store_true", help="sign in with a code on another device"
    )
    login.add_argument("--no-browser", action="store_true", help="only print the sign-in URL")
    login.add_argument(
        "--default", action="store_true", default=None, help="make this the default account"
    )
    login.add_argument("--port", type=_port_number, metavar="PORT", help=_PORT_HELP)
    login.add_argument(
        "--timeout", type=_seconds, default=180.0, metavar="SECONDS", help=_TIMEOUT_HELP
    )
    login.set_defaults(
        func=lambda a: commands.run(
            commands.login,
            as_json=a.json,
            device=a.device,
            no_browser=a.no_browser,
            default=a.default,
            port=a.port,
            timeout=a.timeout,
        )
    )
    logout = verbs.add_parser("logout", help="sign out and revoke the tokens")
    common(logout)
    logout.set_defaults(func=lambda a: commands.run(commands.logout, as_json=a.json, user=_user(a)))
    status = verbs.add_parser("status", help="show the account and its token's expiry")
    common(status)
    status.set_defaults(func=lambda a: commands.run(commands.status, as_json=a.json, user=_user(a)))
    token = verbs.add_parser("token", help="print a valid access token (refreshing it)")
    common(token)
    token.add_argument("--retry-refresh", action="store_true", help=_RETRY_HELP)
    token.set_defaults(
        func=lambda a: commands.run(
            commands.token, as_json=a.json, user=_user(a), retry_refresh=a.retry_refresh
        )
    )

    accounts = verbs.add_parser("accounts", help="list, choose or remove accounts")
    account_verbs = accounts.add_subparsers(dest="accounts_command", metavar="ACTION")
    account_verbs.required = True
    listing = account_verbs.add_parser("list", help="list stored accounts")
    common(listing, user=False)
    listing.set_defaults(func=lambda a: commands.run(commands.accounts_list, as_json=a.json))
    use = account_verbs.add_parser("use", help="make an account the default")
    common(use, user=False)
    use.add_argument("ref", metavar="REF")
    use.set_defaults(func=lambda a: commands.run(commands.accounts_use, as_json=a.json, ref=a.ref))
    remove = account_verbs.add_parser("remove", help="log out of an account")
    common(remove, user=False)
    remove.add_argument("ref", metavar="REF")
    remove.set_defaults(
        func=lambda a: commands.run(commands.accounts_remove, as_json=a.json, ref=a.ref)
    )


# --------------------------------------------------------------------------- click


def click_auth_group(
    *,
    store: Factory[TokenStore],
    provider: Factory[AuthProvider],
    name: str = "auth",
    prog: Optional[str] = None,
) -> Any:
    """A click group with the same verbs: ``cli.add_command(click_auth_group(...))``.

    click is imported here, not at module import: it is the host CLI's dependency.
    """
    import click

    commands = AuthCommands(store, provider, prog=prog or name)

    def finish(status: int) -> None:
        if status:
            raise SystemExit(status)

    def host_prog() -> None:
        """Hints say `<host> auth login`: learn the command path from click at run time."""
        if prog is None:
            context = click.get_current_context(silent=True)
            while context is not None and context.command is not group:
                context = context.parent
            if context is not None:
                commands.prog = context.command_path

    json_option = click.option("--json", "as_json", is_flag=True, help="print JSON on stdout")
    user_option = click.option("--user", metavar="REF", default=None, help="account id or label")

    def checked(check: Callable[[str], Any]) -> Callable[[Any, Any, Optional[str]], Any]:
        """A click callback running one of the argparse ``type`` checks."""
        import argparse

        def callback(context: Any, param: Any, value: Optional[str]) -> Any:
            if value is None:
                return None
            try:
                return check(value)
            except argparse.ArgumentTypeError as exc:
                raise click.BadParameter(str(exc)) from None

        return callback

    def user_or_before(user: Optional[str]) -> Optional[str]:
        """``--user`` after the verb, else the group's ``--user`` (before the verb)."""
        if user is not None:
            return user
        context = click.get_current_context(silent=True)
        return None if context is None else context.meta.get(_USER_BEFORE)

    @click.group(name=name, help="Sign in, sign out and inspect accounts.")
    @click.option("--user", "user_before", metavar="REF", default=None, help="account id or label")
    @click.pass_context
    def group(context: Any, user_before: Optional[str]) -> None:
        context.meta[_USER_BEFORE] = user_before

    @group.command(help="Sign in (browser, or --device).")
    @json_option
    @click.option("--device", is_flag=True, help="sign in with a code on another device")
    @click.option("--no-browser", is_flag=True, help="only print the sign-in URL")
    @click.option(
        "--default",
        "make_default",
        is_flag=True,
        default=None,
        help="make this the default account",
    )
    @click.option("--port", metavar="PORT", callback=checked(_port_number), help=_PORT_HELP)
    @click.option(
        "--timeout",
        metavar="SECONDS",
        default="180",
        callback=checked(_seconds),
        help=_TIMEOUT_HELP,
    )
    def login(
        as_json: bool,
        device: bool,
        no_browser: bool,
        make_default: Optional[bool],
        port: Optional[int],
        timeout: float,
    ) -> None:
        host_prog()
        finish(
            commands.run(
                commands.login,
                as_json=as_json,
                device=device,
                no_browser=no_browser,
                default=make_default or None,
                port=port,
                timeout=timeout,
            )
        )

    @group.command(help="Sign out and revoke the tokens.")
    @json_option
    @user_option
    def logout(as_json: bool, user: Optional[str]) -> None:
        host_prog()
        finish(commands.run(commands.logout, as_json=as_json, user=user_or_before(user)))

    @group.command(help="Show the account and its token's expiry.")
    @json_option
    @user_option
    def status(as_json: bool, user: Optional[str]) -> None:
        host_prog()
        finish(commands.run(commands.status, as_json=as_json, user=user_or_before(user)))

    @group.command(help="Print a valid access token (refreshing it).")
    @json_option
    @user_option
    @click.option("--retry-refresh", is_flag=True, help=_RETRY_HELP)
    def token(as_json: bool, user: Optional[str], retry_refresh: bool) -> None:
        host_prog()
        finish(
            commands.run(
                commands.token,
                as_json=as_json,
                user=user_or_before(user),
                retry_refresh=retry_refresh,
            )
        )

    @group.group(help="List, choose or remove accounts.")
    def accounts() -> None:
        pass

    @accounts.command(name="list", help="List stored accounts.")
    @json_option
    def list_(as_json: bool) -> None:
        host_prog()
        finish(commands.run(commands.accounts_list, as_json=as_json))

    @accounts.command(help="Make an account the default.")
    @json_option
    @click.argument("ref")
    def use(as_json: bool, ref: str) -> None:
        host_prog()
        finish(commands.run(commands.accounts_use, as_json=as_json, ref=ref))

    @accounts.command(help="Log out of an account.")
    @json_option
    @click.argument("ref")
    def remove(as_json: bool, ref: str) -> None:
        host_prog()
        finish(commands.run(commands.accounts_remove, as_json=as_json, ref=ref))

    return group
