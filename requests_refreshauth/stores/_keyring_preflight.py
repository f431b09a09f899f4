"""The keyring half of a keyring store's preflight: a real write probe before a sign-in.

A locked keyring found only when the tokens arrive makes the user do the browser part for
nothing; a slot set and deleted again finds it first (and on a desktop brings up the
unlock prompt at the right moment).
"""

from __future__ import annotations

import logging
import secrets
from typing import Any, Callable, Optional

from ..errors import StoreReadError
from ._keyring_access import KeyringAbsent, KeyringAccess, KeyringFailure, KeyringTimeout
from ._keyring_advice import PREFLIGHT_OUTCOME
from ._keyring_placement import keyring_usable, unavailable, where_to_write
from .records import Records

__all__ = ["PROBE_SLOT", "probe_keyring"]

log = logging.getLogger("requests_refreshauth.store")

#: The slot name prefix of :meth:`KeyringTokenStore.preflight`'s write probe.
PROBE_SLOT = "refreshauth-preflight"
_PROBING = "checking that the keyring can be written"


def probe_keyring(
    keyring: KeyringAccess, service: str, policy: str, path: str, load: Callable[[], Records]
) -> None:
    """Raise now the error a save under ``policy`` would raise for the keyring.

    A slot is set and deleted again under ``service``, each call bounded by the
    keyring's timeout. A keyring *known absent* passes under "fallback" (plaintext will
    be used), unless the likely account's secrets are in it (``load``: the records).
    """
    if policy == "plaintext":
        return
    if not keyring_usable(keyring, policy, PREFLIGHT_OUTCOME):
        _refuse_if_absent_matters(keyring, policy, path, load)
        return
    probe = f"{PROBE_SLOT}-{secrets.token_hex(8)}"
    try:
        keyring.set(service, probe, secrets.token_urlsafe(16), what=_PROBING)
    except KeyringAbsent:
        _refuse_if_absent_matters(keyring, policy, path, load)
        return
    except KeyringFailure as exc:
        with_probe = f"Cannot save tokens in the OS keyring: {exc}"
        if isinstance(exc, KeyringTimeout):  # it may land later: remove it then
            keyring.delete_later(service, probe, after=exc.pending)
        else:  # an error answer wrote nothing, but make sure
            try:
                keyring.delete(service, probe)
            except (KeyringFailure, KeyringAbsent) as cleanup:
                log.debug("could not remove the keyring probe slot: %s", cleanup)
        raise unavailable(with_probe, PREFLIGHT_OUTCOME, policy) from None
    try:
        keyring.delete(service, probe)
    except (KeyringFailure, KeyringAbsent) as exc:
        log.debug("could not remove the keyring probe slot: %s", exc)


def _refuse_if_absent_matters(
    keyring: KeyringAccess, policy: str, path: str, load: Callable[[], Records]
) -> None:
    """No keyring can be reached: refuse now what a save would refuse — under
    "system" anything, under "fallback" an account whose secrets are in the keyring.
    Which account will sign in is not known yet: the default (or only) one is the
    likely one."""
    old: Optional[dict[str, Any]] = None
    try:
        records: Optional[Records] = load()
    except StoreReadError:
        records = None
    if records is not None:
        only = next(iter(records.accounts)) if len(records.accounts) == 1 else None
        old = records.accounts.get(records.default or only or "")
    where_to_write(keyring, policy, path, old, PREFLIGHT_OUTCOME)
