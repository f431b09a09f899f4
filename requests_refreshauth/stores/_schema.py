"""The one account-record schema (records format version 2), as pure functions.

Every record says where its secrets live (``secrets``: ``"plaintext"``, in the record, or
``"keyring"``, with its ``service``, ``slot`` and ``chunks``) and keeps the bundle's
fields in one place (``bundle``): all of them when the secrets are inline, and for the
keyring everything but the tokens, plus their fingerprints (so a reader can tell a
concurrent write from a finished one). Both stores read and write this one shape, so a
records file written through either opens through the other.

Version 1 had two shapes under one version: ``{bundle}`` (FileTokenStore) and
``{secrets, meta, tokens?}`` (KeyringTokenStore). :func:`upgrade` turns both into this
one on read; every write is version 2.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from .._extra import ExtraFields, stored, with_readable_extra
from ..bundle import Account, TokenBundle, fingerprint
from ..errors import StoreReadError
from ._slots import shown
from .base import AccountStatus, SessionEnded

if TYPE_CHECKING:
    from .records import Records

__all__ = [
    "KEYRING",
    "PLAINTEXT",
    "access_fingerprint_of",
    "bundle_fields",
    "extra_of",
    "has_refresh_token",
    "inline_bundle",
    "malformed",
    "session_ended_of",
    "status_of",
    "upgrade",
]

PLAINTEXT = "plaintext"
KEYRING = "keyring"
_FINGERPRINTS = ("access_fingerprint", "refresh_fingerprint")


def upgrade(record: dict[str, Any]) -> dict[str, Any]:
    """A version-1 record in the version-2 shape (a new dict; unknown keys kept). A
    record of neither shape is returned as it is: reading it reports it malformed."""
    if "secrets" not in record and isinstance(record.get("bundle"), dict):
        return {**record, "secrets": PLAINTEXT}
    meta = record.get("meta")
    if not isinstance(meta, dict) or record.get("secrets") not in (PLAINTEXT, KEYRING):
        return record
    new = {k: v for k, v in record.items() if k not in ("meta", "tokens")}
    fields = dict(meta)
    if record["secrets"] == PLAINTEXT:
        tokens = record.get("tokens")
        tokens = tokens if isinstance(tokens, dict) else {}
        for name in _FINGERPRINTS:
            fields.pop(name, None)
        fields.update((k, tokens.get(k)) for k in ("access_token", "refresh_token"))
        if fields.get("refresh_token") is None:
            fields.pop("refresh_token", None)
    new["bundle"] = fields
    return new


def bundle_fields(bundle: TokenBundle, *, inline: bool) -> dict[str, Any]:
    """The record's ``bundle`` for ``bundle``: :meth:`TokenBundle.to_dict` when the
    secrets are inline; else that without the tokens, plus their fingerprints. The
    bundle's ``extra`` fields are not secret (see :mod:`.._extra`)."""
    fields = bundle.to_dict()
    if inline:
        return fields
    del fields["access_token"]
    fields.pop("refresh_token", None)
    fields["access_fingerprint"] = fingerprint(bundle.access_token)
    fields["refresh_fingerprint"] = (
        fingerprint(bundle.refresh_token) if bundle.refresh_token is not None else None
    )
    return fields


def malformed(where: str, account_id: str) -> StoreReadError:
    return StoreReadError(
        f"The stored record for account {shown(account_id)} in {where} is malformed. It was "
        "left unchanged; log in again to replace it."
    )


def fields_of(where: str, account_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """The record's ``bundle``; a record that does not say where its secrets are is
    refused, never guessed at."""
    fields = record.get("bundle")
    if record.get("secrets") == "encrypted":  # sealed (.encryption), read without its key
        from .encryption import unkeyed_error

        raise unkeyed_error(where, account_id, record)
    if not isinstance(fields, dict) or record.get("secrets") not in (PLAINTEXT, KEYRING):
        raise malformed(where, account_id)
    return fields


def inline_bundle(where: str, account_id: str, record: dict[str, Any]) -> TokenBundle:
    """The whole bundle of a record whose secrets are inline."""
    try:
        # An extra field this version cannot read costs only that field (warned
        # about by parse_records), never the account.
        return TokenBundle.from_dict(with_readable_extra(fields_of(where, account_id, record)))
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        raise malformed(where, account_id) from None


def extra_of(where: str, account_id: str, record: dict[str, Any]) -> ExtraFields:
    """The record's extra fields this version can read (the others were warned about
    when the records were parsed): never a reason to refuse the account."""
    return stored(fields_of(where, account_id, record).get("extra"))


def session_ended_of(record: dict[str, Any]) -> Optional[SessionEnded]:
    """The record's ``session_ended`` mark (validated when the records were parsed)."""
    mark = record.get("session_ended")
    if not isinstance(mark, dict):
        return None
    client_id = mark.get("client_id")
    return SessionEnded(
        float(mark["at"]), str(mark["reason"]), client_id if isinstance(client_id, str) else None
    )


def access_fingerprint_of(record: dict[str, Any]) -> Optional[str]:
    """The fingerprint of the record's access token (inline: computed; keyring: the
    recorded one); ``None`` when the record has none it can tell. Revisions restart
    when a records file is recreated: this tells two logins of one revision apart."""
    fields = record.get("bundle")
    if not isinstance(fields, dict):
        return None
    if record.get("secrets") == PLAINTEXT:
        token = fields.get("access_token")
        return fingerprint(token) if isinstance(token, str) else None
    recorded = fields.get("access_fingerprint")
    return recorded if isinstance(recorded, str) else None


def has_refresh_token(record: dict[str, Any]) -> bool:
    """Whether the record has a refresh token (inline, or its fingerprint)."""
    fields = record.get("bundle")
    key = "refresh_token" if record.get("secrets") == PLAINTEXT else "refresh_fingerprint"
    return isinstance(fields, dict) and fields.get(key) is not None


def status_of(where: str, records: Records, account: Account, secrets: str) -> AccountStatus:
    """The account's status from its record alone (no secret read); ``secrets``: what
    :attr:`AccountStatus.secrets` says for it."""
    record = records.accounts[account.id]
    fields = fields_of(where, account.id, record)
    inline = record["secrets"] == PLAINTEXT
    try:
        shell = TokenBundle(
            # A placeholder for a secret kept elsewhere; the fingerprint is recorded.
            access_token=fields["access_token"] if inline else "-",
            expires_at=fields.get("expires_at"),
            refresh_expires_at=fields.get("refresh_expires_at"),
            issued_at=fields.get("issued_at"),
            token_type=fields.get("token_type", "Bearer"),
            scope=fields.get("scope"),
        )
        refresh = fields.get("refresh_token" if inline else "refresh_fingerprint")
        if refresh is not None and not isinstance(refresh, str):
            raise TypeError("refresh")
    except (KeyError, TypeError, ValueError, OverflowError):
        raise malformed(where, account.id) from None
    return AccountStatus(
        account=account,
        is_default=records.default == account.id,
        revision=record.get("revision", 0),
        expires_at=shell.expires_at,
        refresh_expires_at=shell.refresh_expires_at,
        issued_at=shell.issued_at,
        has_refresh_token=refresh is not None,
        access_fingerprint=(
            fingerprint(shell.access_token) if inline else fields.get("access_fingerprint")
        ),
        scope=shell.scope,
        token_type=shell.token_type,
        secrets=secrets,
        session_ended=session_ended_of(record),
    )
