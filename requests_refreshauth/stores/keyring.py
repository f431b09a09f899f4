"""Bundles with their secrets in the OS keyring and everything else in a records file.

The records file (same atomic, locked, 0600 writing as :class:`FileTokenStore`) holds what
is not secret — accounts, labels, the default, expiries, a revision counter, fingerprints
of the tokens, and where each account's secrets live. The keyring holds the secrets: the
access token in the account's slot, the refresh token in ``<slot>/refresh``.

That split keeps the hot path cheap. A cold process reads the records file and one
keyring slot (the access token); a warm one reads nothing; the refresh token is read only
when a refresh POST is actually going to happen. Whether a peer refreshed while we waited
for the lock is decided from the records file's revision alone.

Policies (``credential_store``):

- ``"system"``: the keyring is required; without one, reads and writes fail.
- ``"fallback"`` (default): the keyring when one exists; when it is *known absent* (no
  backend, only a low-priority one nobody chose, ``NoKeyringError``), plaintext in the
  records file, reported in the ``write_report`` of the snapshot ``save`` returns (for
  the user, which ``login`` prints) and logged (WARNING once per store, DEBUG on later saves).
- ``"plaintext"``: never touches the keyring.

A keyring that errors or times out is not absent: the operation fails with a typed error
(:class:`~requests_refreshauth.errors.KeyringUnavailableError` for a write) and an
account whose secrets are in the keyring never silently moves to plaintext.
:meth:`KeyringTokenStore.preflight` finds that out before a sign-in starts.

The store is the one :class:`~._recordstore.RecordStore` composed of a records file,
:class:`~._keyring_secrets.KeyringSecrets` and refresh lock files; the keyring pieces live
in private modules, one concept each: ``_keyring_records`` (which slots a record uses),
``_keyring_read`` (reading a secret that agrees with it), ``_keyring_placement``
(keyring or plaintext), ``_keyring_write`` (undoable writes), ``_keyring_preflight``
(the write probe).
"""

from __future__ import annotations

import os
import warnings
from typing import Any, Callable, Literal, Optional

from ..bundle import Account, WriteReport
from ..refresh_lock import RefreshLock
from ._keyring_access import KeyringAccess
from ._keyring_preflight import PROBE_SLOT as PROBE_SLOT
from ._keyring_secrets import KeyringSecrets
from ._places import FileLocks, FileRecords
from ._recordstore import RecordStore
from ._slots import default_slot

__all__ = ["CredentialStorePolicy", "KeyringTokenStore", "WriteReport", "default_slot"]

CredentialStorePolicy = Literal["system", "fallback", "plaintext"]
_POLICIES = ("system", "fallback", "plaintext")


class KeyringTokenStore(RecordStore):
    """Multi-account token store on the OS keyring (see the module docstring).

    ``service``: the keyring service name (your application's name). ``records_path``: the
    records file. ``slot_for``: account id → slot name for new accounts (it must give
    every account its own slot; a save that would share names with another account's
    raises :class:`~requests_refreshauth.errors.SlotCollisionError`). ``backend``: a
    ``keyring`` backend instance to use instead of keyring's detection (counts as chosen
    explicitly). ``timeout``: seconds any single keyring call may take.
    """

    def __init__(
        self,
        service: str,
        records_path: str | os.PathLike[str],
        *,
        credential_store: CredentialStorePolicy = "fallback",
        slot_for: Optional[Callable[[str], str]] = None,
        backend: Any = None,
        timeout: float = 10.0,
    ) -> None:
        if not service:
            raise ValueError("service is required")
        if credential_store not in _POLICIES:
            raise ValueError(f"credential_store must be one of {_POLICIES}")
        self.service = service
        self.policy: CredentialStorePolicy = credential_store
        self.slot_for = slot_for or default_slot
        records = FileRecords(records_path)
        self.records_file = records.file
        self.path = records.file.path
        self.keyring = KeyringAccess(backend, timeout)
        self._keyring_secrets = KeyringSecrets(
            self.keyring, service, credential_store, self.path, slot_for
        )
        # What tests and tools of earlier versions reached for (private; same objects).
        self._known = self._keyring_secrets.known
        self._reader, self._writer = self._keyring_secrets.reader, self._keyring_secrets.writer
        super().__init__(records, self._keyring_secrets, FileLocks(records.file))

    def __repr__(self) -> str:
        return (
            f"KeyringTokenStore(service={self.service!r}, records={self.path!r}, "
            f"credential_store={self.policy!r})"
        )

    def refresh_lock(self, account: Account) -> RefreshLock:
        """The account's refresh lock; asking for it starts the keyring's backend
        detection (no secret read) so that it overlaps the wait for the lock."""
        if self.policy != "plaintext":
            self.keyring.warm_up()
        return super().refresh_lock(account)

    @property
    def last_write(self) -> Optional[WriteReport]:
        """Deprecated (removed in the next release): what the most recent save of any
        thread did (``None`` before the first save). Read ``write_report`` on the
        snapshot your ``save`` returned: this attribute may already be another save's."""
        warnings.warn(
            "KeyringTokenStore.last_write is deprecated: read write_report on the snapshot "
            "save() returned (last_write may be another thread's save)",
            DeprecationWarning,
            stacklevel=2,
        )
        return self._keyring_secrets.last_write
