"""Token stores: where bundles live between processes."""

from __future__ import annotations

from .base import AccountStatus, RevisionConflict, TokenStore, resolve_ref
from .file import FileTokenStore
from .memory import MemoryTokenStore

__all__ = [
    "AccountStatus",
    "FileTokenStore",
    "MemoryTokenStore",
    "RevisionConflict",
    "TokenStore",
    "resolve_ref",
]
