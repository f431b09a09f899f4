"""Token stores: where bundles live between processes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .base import AccountStatus, RevisionConflict, SessionEnded, TokenStore, resolve_ref
    from .encryption import TokenEncryption
    from .file import FileTokenStore
    from .keyring import KeyringTokenStore, WriteReport
    from .memory import MemoryTokenStore
    from .redis import RedisTokenStore

_EXPORTS = {
    "AccountStatus": ".base",
    "FileTokenStore": ".file",
    "KeyringTokenStore": ".keyring",
    "MemoryTokenStore": ".memory",
    "RedisTokenStore": ".redis",
    "RevisionConflict": ".base",
    "SessionEnded": ".base",
    "TokenEncryption": ".encryption",
    "TokenStore": ".base",
    "WriteReport": ".keyring",
    "resolve_ref": ".base",
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AccountStatus",
    "FileTokenStore",
    "KeyringTokenStore",
    "MemoryTokenStore",
    "RedisTokenStore",
    "RevisionConflict",
    "SessionEnded",
    "TokenEncryption",
    "TokenStore",
    "WriteReport",
    "resolve_ref",
]
