"""A store that keeps whole bundles, secrets included, in a 0600 JSON file."""

from __future__ import annotations

from ._recordstore import FileRecordStore

__all__ = ["FileTokenStore"]


class FileTokenStore(FileRecordStore):
    """Bundles in one JSON records file at ``path``.

    For machines without an OS keyring (containers, CI) and for tests. The file is
    written atomically with mode 0600; lock files are kept beside it.
    """

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path!r})"
