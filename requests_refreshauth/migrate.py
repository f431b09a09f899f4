"""Importing a token kept by a requests-oauthlib based CLI.

Such CLIs usually keep ``OAuth2Session.token`` — a dict with ``access_token``,
``refresh_token``, ``expires_in``, ``expires_at`` (absolute), ``token_type``, ``scope`` —
in a JSON file. :func:`import_legacy_token` moves it into a store so users are not asked
to log in again after an upgrade.

It is safe to run on every start-up and after a crash at any step: the import is
idempotent (the same token is recognised by its fingerprint), it never replaces a bundle
in the store that is at least as new, and the legacy file is deleted only when asked and
only after the store holds the token.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple, Optional, Union

from ._fs import UnsafeFile, check_trusted, open_regular, resolve_trusted
from .bundle import Account, TokenBundle, fingerprint
from .errors import AccountNotFoundError, StoreReadError
from .stores.base import AccountStatus, RevisionConflict, TokenStore
from .stores.records import stored_token_problem
from .token_response import number_or_none

__all__ = ["ImportResult", "import_legacy_token"]

log = logging.getLogger("requests_refreshauth.store")

LegacyToken = Union[Mapping[str, Any], str, "os.PathLike[str]"]


class ImportResult(NamedTuple):
    """What :func:`import_legacy_token` did.

    ``status``: ``"imported"``; ``"already-present"`` (the store holds this very token);
    ``"kept-newer"`` (the store holds a bundle at least as new, which was kept).
    """

    status: Literal["imported", "already-present", "kept-newer"]
    account: Account
    source_removed: bool = False


def import_legacy_token(
    store: TokenStore,
    account: Account,
    token: LegacyToken,
    *,
    remove_source: bool = False,
    make_default: Optional[bool] = None,
) -> ImportResult:
    """Import a requests-oauthlib style token (a dict, or the path of its JSON file).

    ``remove_source`` deletes the legacy file once the store holds the token (also on a
    rerun that finds it already imported). ``make_default=None`` pins the account as the
    default only if no default is pinned yet.

    Raises:
        StoreReadError: the legacy token file does not exist (or cannot be read).
    """
    path: Optional[str] = None
    if isinstance(token, Mapping):
        data, issued = token, time.time()
    else:
        path = os.fspath(token)
        loaded = _read_legacy_file(path)
        if loaded is None:  # gone: an earlier run imported it and removed it
            if _existing(store, account) is not None:
                return ImportResult("already-present", account)
            raise StoreReadError(f"The legacy token file {path} does not exist.")
        data, issued = loaded
    bundle = _bundle_from_legacy(data, issued, path)

    existing = _existing(store, account)
    if existing is not None and existing.access_fingerprint == fingerprint(bundle.access_token):
        status: Literal["imported", "already-present", "kept-newer"] = "already-present"
    elif existing is not None and not _strictly_newer(bundle, existing):
        status = "kept-newer"
    else:
        try:
            store.save(
                account,
                bundle,
                make_default,
                expected_revision=existing.revision if existing is not None else None,
            )
            status = "imported"
        except RevisionConflict:
            status = "kept-newer"  # the account changed while we looked: that is newer
    removed = False
    if remove_source and path is not None:
        removed = _remove(path)
    log.info("legacy token for %r: %s", account.id, status)
    return ImportResult(status, account, removed)


def _existing(store: TokenStore, account: Account) -> Optional[AccountStatus]:
    try:
        status = store.status(account.id)
    except AccountNotFoundError:
        return None
    return status if status is not None and status.account.id == account.id else None


def _strictly_newer(bundle: TokenBundle, existing: AccountStatus) -> bool:
    """Only a legacy token that provably expires later replaces what the store holds."""
    return (
        bundle.expires_at is not None
        and existing.expires_at is not None
        and bundle.expires_at > existing.expires_at
    )


def _read_legacy_file(path: str) -> Optional[tuple[Mapping[str, Any], float]]:
    try:
        # A dotfiles manager (GNU stow, home-manager) may make it a symlink: followed only
        # where another user cannot re-point it, then the target judged like any file: no
        # FIFO blocking, a regular file, nobody else's (see _fs). Read-only, so the link
        # is never replaced.
        real = resolve_trusted(path)
        with open(open_regular(real, os.O_RDONLY), "rb") as handle:
            info = os.fstat(handle.fileno())
            check_trusted(real, info)
            raw = handle.read()
            mtime = info.st_mtime
    except FileNotFoundError:
        return None
    except UnsafeFile as exc:
        raise StoreReadError(
            f"Refusing the legacy token file {path}: {exc}. Nothing was imported."
        ) from None
    except OSError as exc:
        raise StoreReadError(
            f"The legacy token file {path} cannot be read ({exc.strerror})."
        ) from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        raise StoreReadError(
            f"The legacy token file {path} is not valid JSON; it was left unchanged."
        ) from None
    if not isinstance(data, dict):
        raise StoreReadError(f"The legacy token file {path} does not hold a token object.")
    # Some CLIs wrap the token: {"token": {...}}.
    inner = data.get("token")
    if "access_token" not in data and isinstance(inner, dict):
        data = inner
    return data, mtime


def _bundle_from_legacy(data: Mapping[str, Any], issued: float, path: Optional[str]) -> TokenBundle:
    where = f"The legacy token file {path}" if path else "The legacy token"
    access = data.get("access_token")
    refresh = data.get("refresh_token") or None
    if not isinstance(access, str) or not access.strip():
        raise StoreReadError(f"{where} has no access_token; nothing was imported.")
    if refresh is not None and not isinstance(refresh, str):
        raise StoreReadError(f"{where} has a malformed refresh_token; nothing was imported.")
    problem = stored_token_problem(
        {
            "access_token": access.strip(),
            "refresh_token": refresh,
            "token_type": data.get("token_type") or None,
        }
    )
    if problem:
        raise StoreReadError(f"{where} has a {problem}; nothing was imported.")
    expires_at = number_or_none(data.get("expires_at"))
    expires_in = number_or_none(data.get("expires_in"))
    issued_at: Optional[float] = None
    if expires_at is None and expires_in is not None:
        # requests-oauthlib writes expires_at; with only expires_in, the file's time is
        # the best estimate of when it was issued.
        expires_at, issued_at = issued + expires_in, issued
    elif expires_at is not None and expires_in is not None:
        issued_at = expires_at - expires_in
    token_type = data.get("token_type")
    scope = data.get("scope")
    try:
        return TokenBundle(
            access_token=access.strip(),
            refresh_token=refresh,
            expires_at=expires_at,
            issued_at=issued_at,
            token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
            scope=scope if isinstance(scope, (str, list, tuple)) else None,
        )
    except (TypeError, ValueError):
        raise StoreReadError(f"{where} is malformed; nothing was imported.") from None


def _remove(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("could not remove the legacy token file %s: %s", path, exc.strerror)
        return False
    return True
