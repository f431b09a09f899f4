"""The error tree.

Every error subclasses :class:`requests.exceptions.RequestException`, so code that
already wraps its API calls in ``except RequestException`` keeps working when a refresh
fails. Each carries a stable ``code`` for programs (JSON output) and a message that tells
a person what to do. Messages never contain token material.

What an error means is on its class, so that code never keys a table by a string:
``exit_status`` (what the CLI exits with; :data:`~requests_refreshauth.cli.EXIT_CODES` is
derived from it), ``retryable`` (the same call may succeed later, unchanged) and
``login_required`` (only a new login helps). A subclass inherits all three, with its code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from requests.exceptions import RequestException

if TYPE_CHECKING:
    from .bundle import Account

__all__ = [
    "AccountNotFoundError",
    "AuthError",
    "CallbackTimeoutError",
    "ConfigurationError",
    "InternalError",
    "KeyringUnavailableError",
    "MoveRefusedError",
    "NoAccountSelectedError",
    "NotAuthenticatedError",
    "OAuthFlowError",
    "RefreshExpiredError",
    "RefreshRejectedError",
    "RefreshTransientError",
    "RefreshUnavailableError",
    "SaveFailedError",
    "SecretsInKeyringError",
    "SlotCollisionError",
    "StoreReadError",
    "StoreWriteError",
    "TokenExchangeError",
]


class AuthError(RequestException):
    """Base class of every error this library raises on purpose."""

    code: ClassVar[str] = "AUTH_ERROR"
    #: The CLI's exit status (documented per code in the README: a contract).
    exit_status: ClassVar[int] = 1
    #: Whether the same call may succeed later, unchanged (network, 5xx, 429).
    retryable: ClassVar[bool] = False
    #: Whether logging in again is the way out (drives the "login required" event).
    login_required: ClassVar[bool] = False

    def __init__(self, message: str, *, account: Optional[Account] = None, **kwargs: Any) -> None:
        # RequestException pops ``request``/``response``; OSError would treat a second
        # positional argument as (errno, strerror), so the message is the only one.
        super().__init__(message, **kwargs)
        self.message = message
        #: The account concerned, when known.
        self.account = account

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class NotAuthenticatedError(AuthError):
    """No tokens are stored for the account: the user has to log in."""

    code = "NOT_AUTHENTICATED"
    exit_status = 3
    login_required = True


class AccountNotFoundError(AuthError):
    """An account reference matched neither an id nor a label."""

    code = "ACCOUNT_NOT_FOUND"
    exit_status = 7


class NoAccountSelectedError(AuthError):
    """Several accounts are stored (or a label is ambiguous) and none was chosen."""

    code = "NO_ACCOUNT_SELECTED"
    exit_status = 7


class RefreshExpiredError(AuthError):
    """The refresh token is expired, revoked or otherwise dead (``invalid_grant``).

    ``error`` / ``error_description``: the server's OAuth error, scrubbed and cut, when
    a server said so (``None`` when the engine decided it locally). ``extra``: the
    server's other diagnostic fields (``suberror``, ``claims``, ``error_codes``,
    ``error_uri``, trace ids), scrubbed and bounded; empty when there were none.
    """

    code = "AUTH_REFRESH_EXPIRED"
    exit_status = 3
    login_required = True

    def __init__(
        self,
        message: str,
        *,
        error: Optional[str] = None,
        error_description: Optional[str] = None,
        extra: Optional[Mapping[str, Any]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.error = error
        self.error_description = error_description
        self.extra: dict[str, Any] = dict(extra or {})


class RefreshUnavailableError(AuthError):
    """The access token expired and there is nothing to renew it with."""

    code = "AUTH_REFRESH_UNAVAILABLE"
    exit_status = 3
    login_required = True


class RefreshRejectedError(AuthError):
    """The server refused the refresh for a reason other than a dead grant.

    ``invalid_client``, ``unauthorized_client``, ``invalid_scope`` and bare 4xx answers
    are configuration problems: retrying cannot help and logging in again may not either.
    """

    code = "AUTH_REFRESH_REJECTED"
    exit_status = 5

    def __init__(
        self,
        message: str,
        *,
        error: Optional[str] = None,
        error_description: Optional[str] = None,
        status_code: Optional[int] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.error = error
        self.error_description = error_description
        self.status_code = status_code


class RefreshTransientError(AuthError):
    """The refresh may succeed later: network failure, 5xx, 429, garbled response."""

    code = "AUTH_REFRESH_TRANSIENT"
    exit_status = 4
    retryable = True

    def __init__(
        self,
        message: str,
        *,
        status_code: Optional[int] = None,
        retry_after: Optional[float] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.status_code = status_code
        self.retry_after = retry_after


class StoreReadError(AuthError):
    """The token store could not be read (corrupt or unreadable file, keyring failure)."""

    code = "AUTH_STORE_READ_FAILED"
    exit_status = 6


class StoreWriteError(AuthError):
    """The token store could not be written; nothing stored was lost."""

    code = "AUTH_STORE_WRITE_FAILED"
    exit_status = 6


class TokenExchangeError(AuthError):
    """Exchanging an authorization code (or device code) for tokens failed."""

    code = "AUTH_TOKEN_EXCHANGE_FAILED"
    exit_status = 5


class OAuthFlowError(AuthError):
    """The authorization server ended an interactive flow with an error."""

    code = "AUTH_OAUTH_FAILED"
    exit_status = 5


class CallbackTimeoutError(AuthError):
    """The browser never came back to the loopback redirect in time."""

    code = "AUTH_CALLBACK_TIMEOUT"
    exit_status = 8


class ConfigurationError(AuthError, ValueError):
    """The configuration cannot work: an issuer or endpoint that is not https (plain http
    only on loopback), a malformed URL, a provider lacking an endpoint the verb needs.

    Also a ``ValueError``, which such checks raised before, so existing handlers still
    catch it. Retrying cannot help; fix the configuration (or ask the server's operator).
    """

    code = "AUTH_CONFIGURATION_INVALID"
    exit_status = 9


class InternalError(AuthError):
    """An unexpected failure, reported without its text (which may hold anything).

    The CLI prints the exception type only; set ``REFRESHAUTH_DEBUG=1`` for the traceback.
    """

    code = "AUTH_INTERNAL_ERROR"
    exit_status = 1


class SlotCollisionError(StoreWriteError):
    """Two accounts would share a keyring slot; the save was refused, nothing written.

    ``account_id`` is the account being saved, ``other_account_id`` the one already
    using the slot. Raised for a custom ``slot_for`` that is not injective.
    """

    def __init__(
        self, message: str, *, account_id: str, other_account_id: str, **kwargs: Any
    ) -> None:
        super().__init__(message, **kwargs)
        self.account_id = account_id
        self.other_account_id = other_account_id


class SaveFailedError(StoreWriteError):
    """A refresh succeeded but its result could not be saved (full disk, a held lock).

    Not raised by library calls (the new token is used): carried by the ``save_failed``
    event. ``rescue_path`` is the private file the rotated tokens were kept in, which the
    next refresh of the account adopts instead of POSTing a rotated-out refresh token;
    ``None`` when only this process holds them.
    """

    def __init__(self, message: str, *, rescue_path: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.rescue_path = rescue_path


class KeyringUnavailableError(StoreWriteError):
    """The OS keyring exists but cannot be used now (locked, failing, not answering).

    Not the same as *no* keyring: the tokens are not moved to plaintext instead. The
    message is composed from parts so that callers can add what only they know without
    a second, contradicting line: ``problem`` (what the keyring said), ``outcome`` (what
    was kept or changed), ``sign_in`` (what became of a sign-in whose tokens this was;
    see :func:`~requests_refreshauth.login.login`) and ``file_hint`` (how *this* program
    keeps tokens in a file instead; generic advice when ``None``).
    """

    def __init__(
        self,
        problem: str,
        *,
        outcome: str,
        policy: str = "fallback",
        sign_in: Optional[str] = None,
        file_hint: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        self.problem, self.outcome, self.policy = problem, outcome, policy
        self.sign_in, self.file_hint = sign_in, file_hint
        super().__init__(self._compose(), **kwargs)

    def _compose(self) -> str:
        from .stores._keyring_advice import compose

        return compose(self.problem, self.outcome, self.policy, self.sign_in, self.file_hint)

    def amend(
        self, *, sign_in: Optional[str] = None, file_hint: Optional[str] = None
    ) -> KeyringUnavailableError:
        """This error with a sign-in outcome and/or a file hint added (in place)."""
        if sign_in is not None:
            self.sign_in = sign_in
        if file_hint is not None:
            self.file_hint = file_hint
        self.message = self._compose()
        self.args = (self.message,)
        return self


def exit_statuses() -> dict[str, int]:
    """Each library error's ``code`` with its class's ``exit_status`` (a subclass shares
    its parent's code and status), for :data:`~requests_refreshauth.cli.EXIT_CODES`."""
    table: dict[str, int] = {}
    for name in __all__:
        cls = globals()[name]
        if cls is not AuthError:
            table.setdefault(cls.code, cls.exit_status)
    return table


class SecretsInKeyringError(StoreReadError):
    """A records file's account keeps its tokens in the OS keyring, and this store cannot
    reach a keyring (``FileTokenStore``): the message names the store (and keyring
    service) that can. Nothing was read or changed."""


class MoveRefusedError(StoreWriteError):
    """Moving a login between stores (:func:`~requests_refreshauth.move.move_account`)
    was refused before anything changed: the target holds another login of the account
    (replace it only by forcing), or it changed while the login was being moved."""
