"""A store that keeps whole bundles, secrets included, in a 0600 JSON file."""

from __future__ import annotations

import os

from ._inline import InlineSecrets
from ._places import FileLocks, FileRecords
from ._recordstore import RecordStore

__all__ = ["FileTokenStore"]


class FileTokenStore(RecordStore):
    """Bundles in one JSON records file at ``path``.

    For machines without an OS keyring (containers, CI) and for tests. The file is
    written atomically with mode 0600; lock files are kept beside it. An account whose
    tokens a :class:`~.keyring.KeyringTokenStore` put in the keyring is refused with
    :class:`~requests_refreshauth.errors.SecretsInKeyringError`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        records = FileRecords(path)
        self.records_file = records.file
        self.path = records.file.path
        super().__init__(records, InlineSecrets("file"), FileLocks(records.file))

    def __repr__(self) -> str:
        return f"FileTokenStore({self.path!r})"
