"""Envelope encryption of the token fields of a records document (``RedisTokenStore``'s
``encryption=``): a Redis dump, backup, replica or ``MONITOR`` shows sealed blobs only.

Per sealed record a fresh random 256-bit data key encrypts (AES-256-GCM, random 96-bit
nonce) the JSON of the record's whole ``bundle``; the data key is wrapped (AES-256-GCM,
its own nonce) by the primary key-encryption key. Both carry associated data binding the
seal format, namespace, account id, record revision and key id, so a blob copied to
another account, namespace or revision fails to open instead of handing out the wrong
tokens. The sealed record keeps its non-secret fields in clear under ``bundle`` (expiry,
scope, token type, extra fields and the tokens' fingerprints, as keyring records do), so
tools can show status without the key; opening takes every field from the ciphertext.

Rule: every write seals every record with the primary key (:func:`seal_doc` is given a
document :func:`open_doc` opened completely). That costs two AES-GCM operations per
account per write (microseconds), and makes rotation simple: old keys still open, and
the first save after a rotation (or ``reencrypt()``) moves every record to the new key.
Only then may an old key be dropped; a record sealed under a key that is not given is a
:class:`StoreReadError` for the whole document, which is never rewritten or reset.

Pure functions, no I/O; ``cryptography`` is imported when a :class:`TokenEncryption` is
made, not when this module is.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional, Union

from ..bundle import fingerprint
from ..errors import ConfigurationError, StoreReadError
from ._slots import shown

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["ENCRYPTED", "SEAL_VERSION", "TokenEncryption", "open_doc", "seal_doc", "unkeyed_error"]

#: The ``secrets`` value of a sealed record.
ENCRYPTED = "encrypted"
PLAINTEXT = "plaintext"
#: The version of the ``sealed`` object (its ``v``).
SEAL_VERSION = 1
_CONTEXT = "requests-refreshauth/sealed-record"
_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_MAX_KEY_ID = 64
_TOKENS = ("access_token", "refresh_token")
_FIELDS = ("wrapped_key", "key_nonce", "nonce", "ciphertext")
_MISSING = (
    "token encryption needs the cryptography package: "
    "pip install 'requests-refreshauth[encryption]'"
)


def _aesgcm() -> type[AESGCM]:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise ImportError(_MISSING) from None
    return AESGCM


def _key_bytes(key_id: str, key: object) -> bytes:
    """Raw 32 bytes, or their (urlsafe or standard) base64 text; never echoed."""
    bad = ConfigurationError(
        f"The key for key id {shown(key_id)} is not a 32-byte key (raw bytes, or their "
        "urlsafe base64 text as TokenEncryption.generate_key() makes)."
    )
    if isinstance(key, (bytes, bytearray)):
        raw = bytes(key)
    elif isinstance(key, str):
        text = key.strip().replace("-", "+").replace("_", "/")
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise bad from None
    else:
        raise bad
    if len(raw) != _KEY_BYTES:
        raise bad
    return raw


def _check_key_id(key_id: object) -> str:
    if (
        not isinstance(key_id, str)
        or not key_id
        or len(key_id) > _MAX_KEY_ID
        or not key_id.isprintable()
    ):
        raise ConfigurationError(
            f"A key id must be a non-empty printable string of at most {_MAX_KEY_ID} "
            f"characters, not {shown(str(key_id))}."
        )
    return key_id


class TokenEncryption:
    """Key-encryption keys by key id; ``primary`` (default: the first) seals new saves,
    every key opens. Give old keys for as long as records sealed with them may exist.

    Raises:
        ConfigurationError: the keys are not a non-empty ``{key id: key}`` mapping, or the primary
            key id is not one of them.
    """

    def __init__(
        self, keys: Mapping[str, Union[bytes, str]], primary: Optional[str] = None
    ) -> None:
        if not isinstance(keys, Mapping):  # never echoed: it may be a key itself
            raise ConfigurationError(
                "TokenEncryption takes its keys by key id, {key id: key} (e.g. "
                "TokenEncryption({'2026-01': key})), not a "
                f"{type(keys).__name__}: the key id in each sealed record names its key."
            )
        if not keys:
            raise ConfigurationError("TokenEncryption needs at least one key: {key id: key}.")
        raws = {_check_key_id(key_id): _key_bytes(key_id, key) for key_id, key in keys.items()}
        aesgcm = _aesgcm()
        # Only AESGCM objects are kept: no attribute holds the key material itself.
        self._keks = {key_id: aesgcm(raw) for key_id, raw in raws.items()}
        self._aesgcm = aesgcm
        self.key_ids: tuple[str, ...] = tuple(self._keks)
        chosen = self.key_ids[0] if primary is None else primary
        if chosen not in self._keks:
            raise ConfigurationError(
                f"The primary key id {shown(str(chosen))} is not one of the keys "
                f"({', '.join(shown(k) for k in self.key_ids)})."
            )
        #: The key id new saves are sealed with.
        self.primary: str = chosen

    def __repr__(self) -> str:
        return f"TokenEncryption(key_ids={list(self.key_ids)!r}, primary={self.primary!r})"

    @staticmethod
    def generate_key() -> str:
        """A new random 32-byte key as urlsafe base64 text (keep it like a password)."""
        return base64.urlsafe_b64encode(secrets.token_bytes(_KEY_BYTES)).decode("ascii")

    def seal(self, plaintext: bytes, context: list[Any]) -> dict[str, Any]:
        """``plaintext`` sealed under the primary key; ``context``: what the blob is for."""
        kid = self.primary
        aad = _aad(context, kid)
        data_key = secrets.token_bytes(_KEY_BYTES)
        nonce, key_nonce = secrets.token_bytes(_NONCE_BYTES), secrets.token_bytes(_NONCE_BYTES)
        return {
            "v": SEAL_VERSION,
            "kid": kid,
            "wrapped_key": _b64(self._keks[kid].encrypt(key_nonce, data_key, aad)),
            "key_nonce": _b64(key_nonce),
            "nonce": _b64(nonce),
            "ciphertext": _b64(self._aesgcm(data_key).encrypt(nonce, plaintext, aad)),
        }

    def open(self, kid: str, parts: dict[str, bytes], context: list[Any]) -> Optional[bytes]:
        """The plaintext, or ``None`` when authentication fails (``kid`` is known)."""
        from cryptography.exceptions import InvalidTag

        aad = _aad(context, kid)
        try:
            data_key = self._keks[kid].decrypt(parts["key_nonce"], parts["wrapped_key"], aad)
            return self._aesgcm(data_key).decrypt(parts["nonce"], parts["ciphertext"], aad)
        except (InvalidTag, ValueError):
            return None


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _aad(context: list[Any], kid: str) -> bytes:
    # A JSON array: no two contexts share an encoding (ids may hold any character).
    return json.dumps([_CONTEXT, SEAL_VERSION, *context, kid], ensure_ascii=True).encode("ascii")


def _context(namespace: str, account_id: str, revision: object) -> list[Any]:
    return [namespace, account_id, revision]


def _clear_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The sealed record's ``bundle``: the non-secret fields and the tokens' fingerprints."""
    clear = {k: v for k, v in fields.items() if k not in _TOKENS}
    for name in _TOKENS:
        token = fields.get(name)
        short = name.split("_")[0]
        clear[f"{short}_fingerprint"] = fingerprint(token) if isinstance(token, str) else None
    return clear


def seal_doc(doc: dict[str, Any], encryption: TokenEncryption, namespace: str) -> dict[str, Any]:
    """``doc`` (a records document, not changed) with every plaintext record sealed under
    the primary key. Other records (keyring, already sealed, malformed) are kept as they
    are; the store hands a fully opened document, so every write re-seals everything."""
    accounts = doc.get("accounts")
    if not isinstance(accounts, dict):
        return doc
    sealed: dict[str, Any] = {}
    for account_id, record in accounts.items():
        fields = record.get("bundle") if isinstance(record, dict) else None
        if not isinstance(fields, dict) or record.get("secrets") != PLAINTEXT:
            sealed[account_id] = record
            continue
        plaintext = json.dumps(fields, ensure_ascii=True).encode("ascii")
        context = _context(namespace, account_id, record.get("revision", 0))
        sealed[account_id] = {
            **record,
            "secrets": ENCRYPTED,
            "bundle": _clear_fields(fields),
            "sealed": encryption.seal(plaintext, context),
        }
    return {**doc, "accounts": sealed}


def open_doc(
    doc: dict[str, Any], encryption: Optional[TokenEncryption], namespace: str, where: str
) -> dict[str, Any]:
    """``doc`` (not changed) with every sealed record opened into the plaintext shape;
    plaintext records (written before encryption was turned on) are kept as they are.
    A record that cannot be opened raises :class:`StoreReadError` naming the account and
    key id (never a secret): nothing is opened then, and nothing is changed."""
    accounts = doc.get("accounts")
    if not isinstance(accounts, dict) or not any(
        isinstance(r, dict) and r.get("secrets") == ENCRYPTED for r in accounts.values()
    ):
        return doc
    opened: dict[str, Any] = {}
    for account_id, record in accounts.items():
        if isinstance(record, dict) and record.get("secrets") == ENCRYPTED:
            record = _open_record(record, encryption, namespace, where, str(account_id))
        opened[account_id] = record
    return {**doc, "accounts": opened}


def _open_record(
    record: dict[str, Any],
    encryption: Optional[TokenEncryption],
    namespace: str,
    where: str,
    account_id: str,
) -> dict[str, Any]:
    blob = record.get("sealed")
    kid = blob.get("kid") if isinstance(blob, dict) else None
    if encryption is None:
        raise unkeyed_error(where, account_id, record)
    if not isinstance(blob, dict) or not isinstance(kid, str):
        raise _unopenable(where, account_id, kid, "are malformed")
    version = blob.get("v")
    if isinstance(version, int) and not isinstance(version, bool) and version > SEAL_VERSION:
        raise StoreReadError(
            f"The tokens of account {shown(account_id)} in {where} were sealed by a newer "
            f"requests-refreshauth (seal version {version}; this one understands "
            f"{SEAL_VERSION}). Upgrade the library; nothing was changed."
        )
    if type(version) is not int or version != SEAL_VERSION:
        raise _unopenable(where, account_id, kid, "are malformed")
    if kid not in encryption.key_ids:
        raise StoreReadError(
            f"The tokens of account {shown(account_id)} in {where} are sealed with key id "
            f"{shown(kid)}, which this store's TokenEncryption does not have (it has "
            f"{', '.join(shown(k) for k in encryption.key_ids)}). Nothing was read or "
            "changed; add that key to TokenEncryption({...}) (keep old keys until "
            "store.reencrypt() has moved every record to the primary key)."
        )
    parts = _decoded(blob)
    if parts is None:
        raise _unopenable(where, account_id, kid, "are malformed")
    context = _context(namespace, account_id, record.get("revision", 0))
    plaintext = encryption.open(kid, parts, context)
    if plaintext is None:
        raise _unopenable(
            where,
            account_id,
            kid,
            "failed authentication: they were altered, sealed with another key of that id, "
            "or copied from another account, namespace or revision",
        )
    try:
        fields = json.loads(plaintext.decode("utf-8"))
    except (ValueError, RecursionError):
        fields = None
    if not isinstance(fields, dict):
        raise _unopenable(where, account_id, kid, "are malformed")
    opened = {k: v for k, v in record.items() if k != "sealed"}
    opened.update(secrets=PLAINTEXT, bundle=fields)
    return opened


def _decoded(blob: dict[str, Any]) -> Optional[dict[str, bytes]]:
    parts: dict[str, bytes] = {}
    for name in _FIELDS:
        text = blob.get(name)
        if not isinstance(text, str):
            return None
        try:
            parts[name] = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            return None
    if len(parts["nonce"]) != _NONCE_BYTES or len(parts["key_nonce"]) != _NONCE_BYTES:
        return None
    if len(parts["wrapped_key"]) != _KEY_BYTES + _TAG_BYTES:
        return None
    return parts


def _unopenable(where: str, account_id: str, kid: object, why: str) -> StoreReadError:
    key = f"key id {shown(kid)}" if isinstance(kid, str) else "an unreadable key id"
    return StoreReadError(
        f"The sealed tokens of account {shown(account_id)} in {where} ({key}) {why}. They "
        "were left unchanged; restore the records from a backup, or delete them and log in "
        "again (that logs out every account of the namespace)."
    )


def unkeyed_error(where: str, account_id: str, record: dict[str, Any]) -> StoreReadError:
    """The error for a sealed record read without a key (or by a store that has none)."""
    blob = record.get("sealed")
    kid = blob.get("kid") if isinstance(blob, dict) else None
    key = f"sealed with key id {shown(kid)}" if isinstance(kid, str) else "sealed"
    return StoreReadError(
        f"The tokens of account {shown(account_id)} in {where} are encrypted ({key}) and "
        "this store has no key for them. Nothing was read or changed; give "
        "RedisTokenStore(..., encryption=TokenEncryption({...})) that key."
    )
