"""Secrets kept in the record itself (memory and file stores): the
:class:`~._parts.SecretsPlace` that never leaves the records."""

from __future__ import annotations

from typing import Any, Callable, Optional, TypeVar

from ..bundle import Account, TokenBundle, WriteReport
from ..errors import SecretsInKeyringError
from ._parts import RecordsPlace, Save, Written
from ._schema import KEYRING, PLAINTEXT, bundle_fields, inline_bundle
from ._slots import shown
from .records import Records

__all__ = ["InlineSecrets", "in_keyring_error", "other_service_error"]

T = TypeVar("T")


def in_keyring_error(where: str, account_id: str, record: dict[str, Any]) -> SecretsInKeyringError:
    """The error for a keyring account opened through a store without a keyring."""
    service = record.get("service")
    named = (
        f"KeyringTokenStore({service!r}, ...)"
        if isinstance(service, str)
        else ("KeyringTokenStore (with the keyring service that saved them)")
    )
    return SecretsInKeyringError(
        f"The tokens of account {shown(account_id)} in {where} are in the OS keyring"
        + (f" (service {service!r})" if isinstance(service, str) else "")
        + f", which this store cannot read. Nothing was changed; open the records with {named}"
        " instead, or keep this store's records in a file of their own."
    )


def other_service_error(
    where: str, account_id: str, service: object, ours: str
) -> SecretsInKeyringError:
    """The error for a keyring account opened through a keyring store of another
    service (same records file, another application's keyring service)."""
    return SecretsInKeyringError(
        f"The tokens of account {shown(account_id)} in {where} are in the OS keyring under "
        f"service {shown(str(service))}, not this store's {shown(ours)}. Nothing was read or "
        f"changed; open the records with KeyringTokenStore({shown(str(service))}, ...) instead, "
        "or give each service its own records file."
    )


class InlineSecrets:
    """Tokens in the record (``"secrets": "plaintext"``); ``label``: what
    :attr:`AccountStatus.secrets` says ("file", "memory")."""

    def __init__(self, label: str) -> None:
        self._label = label

    def check(self, where: str, account_id: str, record: dict[str, Any]) -> None:
        if record.get("secrets") == KEYRING:
            raise in_keyring_error(where, account_id, record)

    def label(self, record: dict[str, Any]) -> str:
        # A keyring account listed through this store says where its tokens are.
        return KEYRING if record.get("secrets") == KEYRING else self._label

    def read(self, read: Callable[[], T], records: RecordsPlace) -> T:
        return read()  # records and secrets are one atomic read

    def bundle(self, where: str, account_id: str, record: dict[str, Any]) -> TokenBundle:
        return inline_bundle(where, account_id, record)

    def refresh_token(
        self, account: Account, current: Callable[[], dict[str, Any]], records: RecordsPlace
    ) -> Optional[str]:
        return inline_bundle(records.where(), account.id, current()).refresh_token

    def before_save(self, account: Account, bundle: TokenBundle) -> None:
        """The records file refuses what it could not read back (see RecordsFile)."""

    def write(self, save: Save) -> Written:
        save.record["secrets"] = PLAINTEXT
        save.record["bundle"] = bundle_fields(save.bundle, inline=True)
        return Written(PLAINTEXT)

    def undo(self, written: Written, exc: Exception, *, new_account: bool) -> None:
        """Nothing was written outside the records."""

    def committed(self, save: Save, written: Written) -> Optional[WriteReport]:
        return None  # one place for secrets: nothing to report

    def drop(self, account: Account, record: dict[str, Any], records: Records) -> None:
        """The secrets go with the record."""

    def forget(self, account_id: str) -> None:
        """Nothing is cached."""

    def preflight(self, records: RecordsPlace) -> None:
        """Nothing beyond the records."""
