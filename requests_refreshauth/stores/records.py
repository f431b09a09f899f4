"""The JSON records file behind the file and keyring stores.

Readers never lock: every write is a complete new file (temp file in the same directory,
fsync, ``os.replace``), so a reader sees the old file or the new one, never a mix.
Writers read-modify-write under an inter-process lock so concurrent savers of different
accounts lose nothing. A file that cannot be understood is reported with its path and
left exactly as it is: resetting it would log the user out of every account. What a
record may hold is checked in :mod:`._record_checks`; its shape (one schema for both
stores, version 2) is :mod:`._schema`.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import logging
import os
import stat
import sys
import time
from collections.abc import Iterator
from typing import Any, Callable, Optional, TypeVar

from .._fs import UnsafeFile, check_trusted, ensure_private_dir, open_regular, write_atomically
from ..errors import StoreReadError, StoreWriteError
from ..locking import HostLock
from ._record_checks import (
    MAX_REASON,
    session_ended_problem,
    stored_token_problem,
    warn_unreadable_extra,
)

__all__ = [
    "FORMAT",
    "MAX_REASON",
    "VERSION",
    "Records",
    "RecordsFile",
    "decode_records",
    "parse_records",
    "records_from_doc",
    "session_ended_problem",
    "stored_token_problem",
]

log = logging.getLogger("requests_refreshauth.store")

FORMAT = "requests-refreshauth/records"
#: 2: one record schema for every store (:mod:`._schema`); version-1 files are upgraded
#: on read and rewritten as version 2 by the next change.
VERSION = 2

T = TypeVar("T")

_WINDOWS = sys.platform == "win32"
_LOCK_TIMEOUT = 30.0


class Records:
    """The decoded file: accounts by id (in first-saved order), default, revision counter."""

    def __init__(
        self,
        accounts: Optional[dict[str, dict[str, Any]]] = None,
        default: Optional[str] = None,
        revision: int = 0,
        extra: Optional[dict[str, Any]] = None,
    ) -> None:
        self.accounts: dict[str, dict[str, Any]] = accounts if accounts is not None else {}
        self.default = default
        #: Bumped on every account save; account records keep the value of their last
        #: save, so a revision is never reused even across logout and login (no ABA).
        self.revision = revision
        #: Top-level keys this version does not know, kept on rewrite.
        self.extra: dict[str, Any] = extra if extra is not None else {}

    def __repr__(self) -> str:
        return f"Records(accounts={list(self.accounts)}, default={self.default!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Records):
            return NotImplemented
        return (self.accounts, self.default, self.revision, self.extra) == (
            other.accounts,
            other.default,
            other.revision,
            other.extra,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable

    def next_revision(self) -> int:
        """Advance the file's revision (every save increases it) and return the new one."""
        self.revision += 1
        return self.revision

    def to_json(self) -> str:
        """The records as the JSON document written to the records file (no secret)."""
        doc: dict[str, Any] = dict(self.extra)
        doc.update(
            format=FORMAT,
            version=VERSION,
            revision=self.revision,
            default=self.default,
            accounts=self.accounts,
        )
        # ASCII with \u escapes: any str (even a lone surrogate from a hostile token
        # response) can be written, and the file reads back identically.
        return json.dumps(doc, indent=2, ensure_ascii=True) + "\n"


def _bad(path: str, why: str) -> StoreReadError:
    return StoreReadError(
        f"The token records file {path} {why}. It was left unchanged; fix it, or move it "
        "away and log in again."
    )


def decode_records(text: str, path: str) -> dict[str, Any]:
    """The JSON object of a records document (not yet validated: :func:`records_from_doc`)."""

    def bad(why: str) -> StoreReadError:
        return _bad(path, why)

    try:
        doc = json.loads(text)
    except ValueError as exc:
        line = getattr(exc, "lineno", None)
        where = f" (line {line})" if line else ""
        raise bad(f"is not valid JSON{where}") from None
    except RecursionError:
        raise bad("is nested too deeply to be a records file") from None
    if not isinstance(doc, dict):
        raise bad("is not a JSON object")
    return doc


def parse_records(text: str, path: str) -> Records:
    """Decode and validate a records file; :class:`StoreReadError` names ``path`` on failure."""
    return records_from_doc(decode_records(text, path), path)


def records_from_doc(doc: dict[str, Any], path: str) -> Records:
    """Validate a decoded records document (``path``: how errors name where it is).

    Raises:
        StoreReadError: the document is not a records file, is malformed, or was written by a newer
            version (the message names the file; it is never reset).
    """

    def bad(why: str) -> StoreReadError:
        return _bad(path, why)

    if doc.get("format") != FORMAT:
        raise bad(f"is not a requests-refreshauth records file (no format {FORMAT!r})")
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise bad("has no valid format version")
    if version > VERSION:
        raise StoreReadError(
            f"The token records file {path} was written by a newer requests-refreshauth "
            f"(format version {version}; this one understands {VERSION}). Upgrade the "
            "library; the file was left unchanged."
        )
    accounts = doc.get("accounts", {})
    if not isinstance(accounts, dict):
        raise bad("has a malformed 'accounts' section")
    if version == 1:
        from ._schema import upgrade

        # Upgraded first, so every check below sees the tokens where they will be read
        # (a v1 keyring-shape record kept them under ``tokens``).
        accounts = {
            account_id: upgrade(record) if isinstance(record, dict) else record
            for account_id, record in accounts.items()
        }
    for account_id, record in accounts.items():
        if not account_id or not isinstance(record, dict):
            raise bad(f"has a malformed record for account {account_id!r}")
        label = record.get("label")
        rev = record.get("revision", 0)
        if label is not None and not isinstance(label, str):
            raise bad(f"has a malformed label for account {account_id!r}")
        if isinstance(rev, bool) or not isinstance(rev, int) or rev < 0:
            raise bad(f"has a malformed revision for account {account_id!r}")
        problem = stored_token_problem(record.get("bundle")) or stored_token_problem(
            record.get("meta")
        )
        if problem:
            raise bad(f"has a {problem} for account {account_id!r}")
        problem = session_ended_problem(record.get("session_ended"))
        if problem:
            raise bad(f"has a {problem} for account {account_id!r}")
        warn_unreadable_extra(path, account_id, record)
    default = doc.get("default")
    if default is not None and not isinstance(default, str):
        raise bad("has a malformed 'default'")
    revision = doc.get("revision", 0)
    if isinstance(revision, bool) or not isinstance(revision, int) or revision < 0:
        raise bad("has a malformed 'revision'")
    revision = max([revision, *(r.get("revision", 0) for r in accounts.values())])
    extra = {
        k: v
        for k, v in doc.items()
        if k not in ("format", "version", "revision", "default", "accounts")
    }
    return Records(accounts=accounts, default=default, revision=revision, extra=extra)


class RecordsFile:
    """One records file: lock-free reads, locked atomic read-modify-write."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        self.lock = HostLock(self.path + ".lock")
        self._warned_mode = False

    def __repr__(self) -> str:
        return f"RecordsFile({self.path!r})"

    def refresh_lock_path(self, account_id: str) -> str:
        """A per-account lock file beside the records (ids hashed: they may be emails)."""
        digest = hashlib.sha256(account_id.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        return f"{self.path}.refresh-{digest}.lock"

    def refresh_lock_anchor(self) -> str:
        """The directory whose ``flock`` anchors the refresh locks (see :mod:`..locking`):
        not the records' directory, so a refresh in progress never delays a save. It holds
        a ``README`` marker so cleanups of empty directories leave it alone."""
        directory, name = os.path.split(self.path)
        return os.path.join(directory, f".{name}.refresh.d")

    # ------------------------------------------------------------------ reading

    def load(self) -> Records:
        """The current records; an absent file is an empty store."""
        text = self._read_text()
        if text is None:
            return Records()
        return parse_records(text, self.path)

    def _refuse_symlink(self) -> None:
        """A symlinked records file would be replaced by a regular file on the next save,
        silently forking the two copies; refuse it instead."""
        if os.path.islink(self.path):
            raise StoreReadError(
                f"The token records file {self.path} is a symbolic link. Point the store at "
                "the real file (os.path.realpath) instead; nothing was changed."
            )

    def _read_text(self) -> Optional[str]:
        self._refuse_symlink()
        for attempt in range(5):
            try:
                fd = open_regular(self.path, os.O_RDONLY)
                with open(fd, "rb") as handle:
                    info = os.fstat(handle.fileno())
                    check_trusted(self.path, info)
                    self._check_mode(info)
                    raw = handle.read()
                break
            except FileNotFoundError:
                return None
            except UnsafeFile as exc:
                raise StoreReadError(
                    f"Refusing the token records file {self.path}: {exc}. Nothing was changed."
                ) from None
            except PermissionError as exc:
                # On Windows a concurrent os.replace briefly denies access.
                if _WINDOWS and attempt < 4:
                    time.sleep(0.01 * (attempt + 1))
                    continue
                raise StoreReadError(
                    f"The token records file {self.path} cannot be read ({exc.strerror}). "
                    "Check its permissions."
                ) from None
            except OSError as exc:
                raise StoreReadError(
                    f"The token records file {self.path} cannot be read "
                    f"({exc.strerror or type(exc).__name__})."
                ) from None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise StoreReadError(
                f"The token records file {self.path} is not UTF-8 text. It was left "
                "unchanged; fix it, or move it away and log in again."
            ) from None

    def _check_mode(self, info: os.stat_result) -> None:
        if _WINDOWS or self._warned_mode:
            return
        mode = info.st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            self._warned_mode = True
            log.warning(
                "token records file %s is readable by other users (mode %o); it will be "
                "rewritten with mode 600 on the next save",
                self.path,
                stat.S_IMODE(mode),
            )

    # ------------------------------------------------------------------ writing

    def update(self, mutate: Callable[[Records], T]) -> T:
        """Read, let ``mutate`` change the records, write them back — all under the lock.

        ``mutate`` may raise to abort; nothing is written then, nor when it changed nothing.
        """
        with self.locked():
            records = self.load()
            before = records.to_json()
            result = mutate(records)
            after = records.to_json()
            if after != before:
                self._refuse_unreadable(records)
                self._write(after)
            return result

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the records lock (for writers that interleave other I/O with the update)."""
        self._refuse_symlink()
        directory = os.path.dirname(self.path)
        try:
            ensure_private_dir(directory)  # 0700 whatever the umask, parents included
            check_trusted(self.path)  # the directories, even before the file exists
        except UnsafeFile as exc:
            raise StoreWriteError(
                f"Refusing to write the token records file {self.path}: {exc}. Nothing was changed."
            ) from None
        except OSError as exc:
            raise StoreWriteError(
                f"Cannot create the directory of the token records file {self.path} "
                f"({exc.strerror}); nothing was changed."
            ) from None
        if not self.lock.acquire(timeout=_LOCK_TIMEOUT):
            raise StoreWriteError(
                f"Timed out after {_LOCK_TIMEOUT:.0f}s waiting for the lock on {self.path}; "
                "another process is holding it."
            )
        try:
            yield
        finally:
            self.lock.release()

    def preflight(self) -> None:
        """Raise now what a save would raise, without writing the file: its directory
        cannot be created or is not trusted, its lock cannot be taken, the file cannot
        be read or understood, or the directory is not writable.

        Raises:
            StoreWriteError: the records file's directory is not writable (nothing was written).
        """
        with self.locked():
            self.load()
            directory = os.path.dirname(self.path)
            if not os.access(directory, os.W_OK):
                raise StoreWriteError(
                    f"Cannot write the token records file {self.path}: its directory is not "
                    "writable. Nothing was changed."
                )

    def write(self, records: Records) -> None:
        """Replace the file with ``records`` (callers hold :meth:`locked`)."""
        self._refuse_unreadable(records)
        self._write(records.to_json())

    def _refuse_unreadable(self, records: Records) -> None:
        """Never write what :func:`parse_records` would refuse: one bad token would lock
        every account of the file out."""
        for account_id, record in records.accounts.items():
            problem = stored_token_problem(record.get("bundle")) or stored_token_problem(
                record.get("meta")
            )
            if problem:
                raise StoreWriteError(
                    f"Refusing to save a {problem} for account {account_id!r} in {self.path}; "
                    "nothing was changed."
                )

    def _write(self, text: str) -> None:
        directory = os.path.dirname(self.path)
        name = os.path.basename(self.path)
        try:
            self._remove_leftovers(directory, name)
            write_atomically(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise StoreWriteError(
                f"Cannot write the token records file {self.path} ({exc.strerror}); "
                "the previous contents are intact."
            ) from None

    @staticmethod
    def _remove_leftovers(directory: str, name: str) -> None:
        """Delete temp files of writers that died mid-write (only lock holders write)."""
        pattern = os.path.join(glob.escape(directory), f".{glob.escape(name)}.*.tmp")
        for leftover in glob.glob(pattern):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
