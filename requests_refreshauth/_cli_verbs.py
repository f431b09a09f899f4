"""The auth verbs, independent of the argument parser (declared in :mod:`._cli_table`, from
which :mod:`._cli_argparse` and :mod:`._cli_click` are generated): each verb returns an
exit status, every failure ends as one typed message and its class's ``exit_status``."""

from __future__ import annotations

import json
import sys
import time
import traceback
from typing import IO, TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from ._cli_format import (
    account_json,
    account_name,
    accounts_text,
    session_is_dead,
    status_data,
    status_text,
    unrenewable,
)
from ._cli_logging import library_warnings, show_library_logs
from ._cli_report import (
    logout_text,
    refresh_or_fail,
    revocation_error,
    where_secrets_went,
    with_file_hint,
)
from ._scrub import terminal_safe

if TYPE_CHECKING:
    from .providers.base import AuthProvider
    from .stores.base import AccountStatus, TokenStore

__all__ = ["EXIT_CODES", "AuthCommands", "Factory"]

T = TypeVar("T")
Factory = Union[T, Callable[[], T]]

#: Ctrl-C's exit status (``CANCELLED`` under ``--json``; not an error class).
CANCELLED_EXIT = 130
if TYPE_CHECKING:
    #: Process exit status by error code, for programs that know only the code (derived
    #: from the error classes' ``exit_status``). 0 is success, 1 an unexpected error
    #: (``AUTH_INTERNAL_ERROR``, or an error of no library class), 2 a usage error
    #: (argparse/click), 130 Ctrl-C (``CANCELLED`` under ``--json``).
    EXIT_CODES: dict[str, int]


def __getattr__(name: str) -> dict[str, int]:
    """``EXIT_CODES``, built on first use: the error classes import requests, which
    importing the CLI (``--help``) does not."""
    if name != "EXIT_CODES":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .errors import exit_statuses

    table = globals()["EXIT_CODES"] = {**exit_statuses(), "CANCELLED": CANCELLED_EXIT}
    return table


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
        """Where results go (``--json`` documents, tokens): the stream given, else stdout."""
        return self._stdout or sys.stdout

    @property
    def stderr(self) -> IO[str]:
        """Where messages for people go (prompts, warnings, errors): the stream given, else
        ``sys.stderr``.
        """
        return self._stderr or sys.stderr

    @property
    def store(self) -> TokenStore:
        """The token store, built from its factory on first use (``--help`` builds none)."""
        if self._store is None:
            self._store = _build(self._store_factory)
        return self._store

    @property
    def provider(self) -> AuthProvider:
        """The provider, built from its factory on first use (a verb that needs no server,
        such as ``status``, never builds it).
        """
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
        """Tell the user ``message`` on :attr:`stderr`, terminal controls escaped."""
        print(terminal_safe(message, multiline=True), file=self.stderr, flush=True)

    def _emit(self, as_json: bool, data: Any, human: str) -> None:
        if as_json:  # json.dumps escapes every control character (ensure_ascii)
            print(json.dumps(data, indent=2, sort_keys=True), file=self.stdout, flush=True)
        elif human:
            print(terminal_safe(human, multiline=True), file=self.stdout, flush=True)

    def run(self, verb: Callable[..., int], *, as_json: bool = False, **kwargs: Any) -> int:
        """Run a verb, turning every failure into a message and an exit status."""
        from ._failures import debugging

        if debugging():
            show_library_logs(self.stderr)
        with library_warnings(self.say):
            return self._run(verb, as_json, **kwargs)

    def _run(self, verb: Callable[..., int], as_json: bool, **kwargs: Any) -> int:
        from ._failures import as_auth_error, debugging

        try:
            return verb(as_json=as_json, **kwargs)
        except KeyboardInterrupt:
            return self._fail(as_json, "CANCELLED", "Cancelled.", CANCELLED_EXIT)
        except Exception as exc:  # noqa: BLE001 - every failure ends as a typed error
            error = with_file_hint(as_auth_error(exc), self.file_store_hint)
            if error is not exc and debugging():
                traceback.print_exception(type(exc), exc, exc.__traceback__, file=self.stderr)
            hint = ""
            if error.login_required and self.prog:
                hint = f"\nRun `{self.prog} login` to sign in."
            return self._fail(as_json, error.code, str(error), error.exit_status, hint)

    def _fail(self, as_json: bool, code: str, message: str, status: int, hint: str = "") -> int:
        """Report a failure (one JSON document under ``--json``); returns ``status``."""
        try:
            if as_json:
                self._emit(True, {"error": {"code": code, "message": message}}, "")
            elif code == "CANCELLED":
                self.say(message)
            else:
                self.say(f"error: {message}{hint}")
        except OSError:  # stdout/stderr closed (a pipe's reader left): the status still counts
            pass
        return status

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
        claims: Optional[str] = None,
    ) -> int:
        """Log in (browser with PKCE, or ``device=True``: the device flow) and save the
        account; ``default=True`` makes it the default account, ``None`` only when no default
        is set yet.
        Returns the exit status (0 on success; an error's ``exit_status`` otherwise).
        """
        from .errors import ConfigurationError
        from .login import device_login, login
        from .providers.pkce import PkceProvider
        from .refresh import refresh_access_token

        provider = self.provider
        if claims and (device or not isinstance(provider, PkceProvider)):
            raise ConfigurationError("--claims is for the browser sign-in, not this login.")
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
                    claims=claims,
                )
        else:  # a provider that needs no user: obtaining a token is the login
            snapshot = refresh_access_token(self.store, provider, force=True)
            report = snapshot.write_report  # where this save put the secrets (plaintext?)
            if report is not None and report.warning:
                self.say(f"Warning: {report.warning}")
        data = {
            "account": account_json(snapshot.account),
            "default": snapshot.is_default,
            "expires_at": snapshot.bundle.expires_at,
            **where_secrets_went(self.store, snapshot.account.id),
        }
        self._emit(as_json, data, "")
        return 0

    def logout(self, *, as_json: bool = False, user: Optional[str] = None) -> int:
        """Log ``user`` (default: the default account) out: its tokens are revoked at the
        server where it offers revocation, then removed from the store. Returns the exit status.
        """
        from .login import logout

        provider, unbuilt = self._provider_for_revocation()
        result = logout(self.store, provider, user)
        if result is None:
            self._emit(as_json, {"account": None}, "Not logged in.")
            return 0
        data: dict[str, Any] = {
            "account": account_json(result.account),
            "revoked": result.revoked,  # the grant: the refresh token's result
            "refresh_revoked": result.refresh_revoked,
            "access_revoked": result.access_revoked,
        }
        if result.revoked is not True or result.access_revoked is False:
            data["revocation_error"] = revocation_error(result, unbuilt)
        self._emit(as_json, data, logout_text(result, unbuilt))
        return 0

    def status(self, *, as_json: bool = False, user: Optional[str] = None) -> int:
        """Show who is logged in and until when, from the records alone (no secret is read,
        no request is sent). Returns the exit status (3 when nobody is logged in).
        """
        from .errors import NotAuthenticatedError, RefreshExpiredError

        status = self.store.status(user)
        if status is None:
            raise NotAuthenticatedError("Not logged in.")
        status = self._for_this_client(status)
        # Only a token without a refresh token reads differently for a service (client
        # credentials: renewed without one) than for a user's login; only then is the
        # provider built (one that cannot be, offline, is taken to be a user's login).
        user_login = status.has_refresh_token or self._uses_refresh_token()
        # Like `token`: an expiring token with no refresh token needs a login.
        renewable = not unrenewable(status) or not user_login
        data = status_data(status)
        text = status_text(status, uses_refresh_token=not renewable, service=not user_login)
        self._emit(as_json, data, text)
        if renewable and not session_is_dead(status):
            return 0
        # Shown in full above; the status says a script cannot go on without a login.
        if not as_json and self.prog:
            self.say(f"Run `{self.prog} login` to sign in.")
        return RefreshExpiredError.exit_status

    def token(
        self, *, as_json: bool = False, user: Optional[str] = None, retry_refresh: bool = False
    ) -> int:
        """Print a usable access token of ``user`` (refreshed first if needed) for scripts
        (``$(mycli auth token)``); ``retry_refresh=True`` retries a session the server ended
        once. Returns the exit status.
        """
        from . import rescue
        from ._session_end import session_ended_error
        from .bundle import is_fresh
        from .refresh import DEFAULT_SKEW, refresh_access_token

        status = self.store.status(user)  # records only: an ended session is known offline
        seen = None if status is None else status.session_ended
        ended = None if status is None else self._for_this_client(status).session_ended
        # Ended: only a rescue (a live bundle a failed save left) can help. Without one,
        # refuse offline; with one, the engine adopts it under the lock.
        if (
            status is not None
            and ended is not None
            and not retry_refresh
            and not rescue.may_exist(self.store, status.account.id)
        ):
            raise session_ended_error(status.account, ended)
        known = None
        if status is not None and ended is None:
            known = self.store.active(status.account.id)
        if (
            ended is not None
            or known is None
            or not is_fresh(known.bundle, time.time(), DEFAULT_SKEW)
        ):
            # Only now build the provider: a valid token must print offline, even when
            # the provider's configuration needs the network (discovery). A retry names
            # the mark it saw: if a peer's retry was refused meanwhile, none is sent.
            retry = seen if retry_refresh and seen is not None else False
            snapshot = refresh_or_fail(
                lambda: refresh_access_token(
                    self.store, self.provider, user, known=known, retry_ended_session=retry
                )
            )
        else:
            snapshot = known
        bundle = snapshot.bundle
        data = {
            "access_token": bundle.access_token,
            "token_type": bundle.token_type,
            "expires_at": bundle.expires_at,
            "account": snapshot.account.id,
        }
        self._emit(as_json, data, bundle.access_token)
        return 0

    def _built_provider(self) -> Optional[AuthProvider]:
        """The provider if it exists without calling its factory (no network), else None."""
        if self._provider is not None:
            return self._provider
        return None if callable(self._provider_factory) else self.provider

    def _for_this_client(self, status: AccountStatus) -> AccountStatus:
        """``status`` without a mark that does not apply to our provider (another client
        id; no refresh token sent), when it is known unbuilt (else the mark applies)."""
        from ._session_end import applicable_mark, client_of

        ended = status.session_ended
        if ended is None:
            return status
        provider = self._built_provider()
        if provider is None:
            return status
        mark = applicable_mark(status, client_of(provider))
        if provider.uses_refresh_token and mark is not None:
            return status
        return status._replace(session_ended=None)

    def _uses_refresh_token(self) -> bool:
        """Whether the provider renews with refresh tokens; one that cannot be built
        (offline discovery) is taken to (the usual case: a user's login)."""
        try:
            return bool(self.provider.uses_refresh_token)
        except Exception:  # noqa: BLE001 - only the exit status depends on it
            return True

    def accounts_list(self, *, as_json: bool = False) -> int:
        """List the stored accounts (the default one marked). Returns the exit status."""
        statuses = [self._for_this_client(s) for s in self.store.accounts()]
        if as_json:
            self._emit(True, [status_data(s) for s in statuses], "")
            return 0
        if not statuses:
            self._emit(False, None, "No accounts. Log in first.")
            return 0
        self._emit(False, None, accounts_text(statuses))
        return 0

    def accounts_use(self, ref: str, *, as_json: bool = False) -> int:
        """Make ``ref`` the default account. Returns the exit status."""
        account = self.store.set_default(ref)
        data = {"default": account_json(account)}
        self._emit(
            as_json, data, f"{account_name(account.id, account.label)} is now the default account."
        )
        return 0

    def accounts_remove(self, ref: str, *, as_json: bool = False) -> int:
        """Remove ``ref``: the same as :meth:`logout` of that account."""
        return self.logout(as_json=as_json, user=ref)
