"""Token stores: where bundles live between processes."""

from __future__ import annotations

from .base import AccountStatus, RevisionConflict, TokenStore, resolve_ref
from .file import FileTokenStore
from .keyring import KeyringTokenStore, WriteReport
from .memory import MemoryTokenStore

__all__ = [
    "AccountStatus",
    "FileTokenStore",
    "KeyringTokenStore",
    "MemoryTokenStore",
    "RevisionConflict",
    "TokenStore",
    "WriteReport",
    "resolve_ref",
]
