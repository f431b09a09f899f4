"""Saving a refreshed bundle under the refresh lock, and rescuing it when that fails.

After a rotation the new bundle holds the only live refresh token, so the save gets a
budget of quick retries (:mod:`._save_thread`, which also stops waiting at a deadline the
lock's waiters can afford), is fenced by the lock's hold (a holder whose hold ended
never overwrites a newer bundle), and, if it still fails, leaves a rescue
(:mod:`.rescue`) that the next refresh adopts. A rescue names every bundle of its chain,
so an older bundle landing late does not make a newer rescue look obsolete
(:func:`.rescue.is_live`).
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple, Optional

from . import rescue
from ._save_thread import Unsaved, forget_failures, save_within, store_is_stuck
from .bundle import Account, Snapshot, TokenBundle, describe_account, fingerprint
from .errors import SaveFailedError
from .events import AuthEvent, emit
from .refresh_lock import Fence
from .stores.base import (
    AccountStatus,
    RevisionConflict,
    SnapshotChanged,
    TokenStore,
    status_or_none,
)

__all__ = [
    "SAVE_BUDGET",
    "Base",
    "Taken",
    "Unsaved",
    "describe",
    "forget_failures",
    "persist",
    "save_deadline",
    "save_failed",
    "save_within",
    "store_is_stuck",
    "take_rescue",
]

log = logging.getLogger("requests_refreshauth.refresh")

#: At most this long is spent saving one refreshed bundle (all retries). A records lock
#: is held for milliseconds by a healthy writer; a full disk does not heal in seconds.
SAVE_BUDGET = 2.0
#: Kept free before the waiters' deadline for writing a rescue and releasing the lock.
_RESERVE = 1.0
#: Even a late save gets this long (a lock_timeout too short for the POST and a save).
_MIN_WAIT = 0.5


def save_deadline(release_by: float, now: float) -> float:
    """When (monotonic) to stop saving, for a lock holder that must release by
    ``release_by``: a budget, capped to leave the reserve, never less than a minimum."""
    return max(now + _MIN_WAIT, min(now + SAVE_BUDGET, release_by - _RESERVE))


describe = describe_account


class Base(NamedTuple):
    """What is stored while the lock is held: the record a save replaces."""

    revision: int
    fingerprint: Optional[str]
    generation: int  # of the rescue ``current`` came from (0: from the store)
    release_by: float  # monotonic: release the lock by then
    #: Access fingerprints of the bundles before ``current`` in its rescue chain.
    superseded: tuple[str, ...] = ()
    #: The refresh lock's hold (its token) that saves are fenced by.
    lock_token: Optional[str] = None


class Taken(NamedTuple):
    """A rescue taken: the snapshot to use, whether the store now holds it, and the
    stored record it stands over when it does not."""

    snapshot: Snapshot
    saved: bool
    over: AccountStatus


def fence_of(revision: int, lock_token: Optional[str], stored: Optional[str]) -> Optional[Fence]:
    """The fence of a save replacing revision ``revision`` (whose access token has the
    fingerprint ``stored``) under the hold ``lock_token``; ``None`` for an unfenced lock."""
    return None if lock_token is None else Fence(revision, lock_token, stored)


def take_rescue(
    store: TokenStore,
    found: rescue.Rescue,
    status: AccountStatus,
    release_by: float,
    lock_token: Optional[str] = None,
) -> Taken:
    """Save a rescued bundle into the store (or, if it still fails, use it from memory),
    fenced by the refresh lock's hold ``lock_token``.

    Raises:
        SnapshotChanged: the account was logged out or saved by a new login meanwhile.
    """
    account = status.account
    where = found.path or "this process's memory"
    if store_is_stuck(store, account):
        # A save of this account is still blocked, or just failed: trying again would
        # hold the refresh lock for the whole budget. The rescue stays valid meanwhile.
        log.info(
            "using the tokens of %s rescued in %s; not saving them yet (the store just "
            "failed to save)",
            describe(account),
            where,
        )
        return Taken(
            Snapshot(account, found.bundle, status.revision, status.is_default), False, status
        )
    for _ in range(2):
        try:
            saved = save_within(
                store,
                account,
                found.bundle,
                status.revision,
                save_deadline(release_by, time.monotonic()),
                fence_of(status.revision, lock_token, status.access_fingerprint),
            )
        except RevisionConflict:
            # An earlier bundle of the rescue's chain may have landed late: still live.
            latest = status_or_none(store, account.id)
            if latest is None or not rescue.is_live(
                found, latest.revision, latest.access_fingerprint
            ):
                raise SnapshotChanged(
                    f"{describe(account)} changed while adopting a rescue"
                ) from None
            status = latest
            continue
        except Unsaved as failure:
            log.warning(
                "using the tokens of %s rescued in %s; the store still cannot take them (%s)",
                describe(account),
                where,
                failure.reason,
            )
            unsaved = Snapshot(account, found.bundle, status.revision, status.is_default)
            return Taken(unsaved, False, status)
        rescue.settle(store, account)
        log.warning("saved the tokens of %s rescued in %s into the store", describe(account), where)
        return Taken(saved, True, status)
    raise SnapshotChanged(f"{describe(account)} changed while adopting a rescue")


def persist(
    store: TokenStore, account: Account, renewed: TokenBundle, current: Snapshot, base: Base
) -> Snapshot:
    """Save ``renewed`` over ``base``; raises :class:`Unsaved` or ``RevisionConflict``."""
    expected, replaced = base.revision, base.fingerprint
    for _ in range(2):
        try:
            deadline = save_deadline(base.release_by, time.monotonic())
            fence = fence_of(expected, base.lock_token, replaced)
            saved = save_within(store, account, renewed, expected, deadline, fence)
        except RevisionConflict:
            # A save given up on earlier may have landed since, storing the very bundle
            # ``renewed`` came from under a new revision: that is no conflict.
            # So can an earlier bundle of its rescue chain: ``renewed`` is newer still.
            latest = status_or_none(store, account.id)
            if latest is None or latest.revision == expected:
                raise
            landed = latest.access_fingerprint
            if landed != fingerprint(current.bundle.access_token) and (
                landed is None or landed not in base.superseded
            ):
                raise
            expected, replaced = latest.revision, landed
            continue
        if base.generation:
            rescue.settle(store, account)
        return saved
    raise RevisionConflict(account.id)


def save_failed(
    store: TokenStore,
    account: Account,
    old: TokenBundle,
    renewed: TokenBundle,
    current: Snapshot,
    base: Base,
    reason: str,
) -> Snapshot:
    """The server answered, the store did not take it: keep the rotated bundle from being
    lost (a rescue), say so loudly, and use it (a library call does not raise for this)."""
    where = getattr(store, "path", None) or repr(store)
    rotated = renewed.refresh_token is not None and renewed.refresh_token != old.refresh_token
    path: Optional[str] = None
    why: Optional[str] = "the refresh token did not change"
    if rotated:
        path, why = rescue.keep(
            store,
            account,
            renewed,
            base_revision=base.revision,
            base_fingerprint=base.fingerprint,
            generation=base.generation + 1,
            superseded=rescue.chain_of(
                base.fingerprint,
                base.superseded,
                current=fingerprint(current.bundle.access_token),
            ),
        )
    if path is not None:
        kept = (
            f"They were kept in the rescue file {path} (plaintext, mode 600), which the "
            "next refresh (in any process) adopts; fix the store and run it again."
        )
    elif old.refresh_token is None:  # renewed without one (client credentials)
        kept = "Nothing was lost: the next request, in any process, obtains a new token."
    elif rotated:
        kept = (
            f"They are held only by this process ({why}): once it exits, other processes "
            "need a new login."
        )
    else:
        kept = "The stored refresh token still works; nothing was lost."
    message = (
        f"The refreshed tokens of {describe(account)} could not be saved to {where} "
        f"({reason}). {kept}"
    )
    log.error(
        "could not save the refreshed token of %s to %s (%s). %s",
        describe(account),
        where,
        reason,
        kept,
    )
    error = SaveFailedError(message, account=account, rescue_path=path)
    emit(AuthEvent("save_failed", account, expires_at=renewed.expires_at, error=error))
    return Snapshot(account, renewed, base.revision, current.is_default)
