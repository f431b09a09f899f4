"""What the verbs tell the user about a login's or a logout's result, kept apart from the
verbs: where the secrets went, what revocation did (or could not do) at the server, a
refreshed token that could not be saved, and a locked keyring's way forward."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar

from ._cli_format import account_name

if TYPE_CHECKING:
    from .errors import AuthError
    from .login import LogoutResult
    from .stores.base import TokenStore

__all__ = [
    "logout_text",
    "refresh_or_fail",
    "revocation_error",
    "where_secrets_went",
    "with_file_hint",
]

T = TypeVar("T")


def revocation_error(result: LogoutResult, unbuilt: Optional[str]) -> dict[str, Any]:
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


def logout_text(result: LogoutResult, unbuilt: Optional[str]) -> str:
    """One message: what happened here, what did not happen at the server, and what that
    means (a grant nobody holds any more is still live there until it expires)."""
    from ._cli_format import _when

    name = account_name(result.account.id, result.account.label)
    if result.revoked and result.access_revoked is False:
        until = _when(result.valid_until) if result.valid_until else "it expires"
        return (
            f"Logged out of {name}. The sign-in was ended at the server; the access token "
            f"still works until {until} (the server did not revoke it: {result.reason})."
        )
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


def where_secrets_went(store: TokenStore, account_id: str) -> dict[str, Any]:
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


def with_file_hint(error: AuthError, hint: Optional[str]) -> AuthError:
    """A locked keyring's error, naming this CLI's way to keep the tokens in a file."""
    from .errors import KeyringUnavailableError

    if hint and isinstance(error, KeyringUnavailableError):
        return error.amend(file_hint=hint)
    return error


def refresh_or_fail(refresh: Callable[[], T]) -> T:
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
