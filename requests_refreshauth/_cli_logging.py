"""The CLI's relay of the library's log records: the package logger stays quiet (a
``NullHandler``) for library users, but a CLI user must hear its warnings, and see every
record under ``REFRESHAUTH_DEBUG``."""

from __future__ import annotations

import logging  # already imported by the package (its logger's NullHandler)
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Callable, Optional

from ._scrub import terminal_safe

__all__ = ["CLI_REPORTED", "library_warnings", "show_library_logs"]

#: ``extra`` key marking a log record whose news the CLI already tells the user in its
#: own words (the plaintext fallback at login): :func:`library_warnings` skips it.
CLI_REPORTED = "refreshauth_cli_reported"


@contextmanager
def library_warnings(say: Callable[[str], None]) -> Iterator[None]:
    """For one verb, the library's WARNING+ records as ``warning: …`` lines.

    The package logger has a ``NullHandler`` (library logs are opt-in), which also
    silences, in a CLI that never configures logging, what its user must hear: a records
    file others can read, a rescue file ignored, a refreshed token not saved, a probing
    callback. Not added when the host configured logging (it shows them its way) or
    under ``REFRESHAUTH_DEBUG`` (which shows every record already).
    """
    logger = logging.getLogger("requests_refreshauth")
    if not _logging_unconfigured(logger):
        yield
        return
    handler = _SayHandler(say)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _logging_unconfigured(logger: Optional[logging.Logger]) -> bool:
    """No handler but ``NullHandler`` between ``logger`` and the root."""
    while logger is not None:
        if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
            return False
        logger = logger.parent if logger.propagate else None
    return True


class _SayHandler(logging.Handler):
    """WARNING+ records as one ``warning: …`` line each (terminal-safe)."""

    def __init__(self, say: Callable[[str], None]) -> None:
        super().__init__(logging.WARNING)
        self._say = say

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, CLI_REPORTED, False):
            return
        try:
            self._say("warning: " + terminal_safe(record.getMessage()))
        except OSError:  # stderr closed (its reader left): nobody to tell
            pass
        except Exception:  # noqa: BLE001 - logging must never break the verb
            self.handleError(record)


def show_library_logs(stream: IO[str]) -> None:
    """``REFRESHAUTH_DEBUG=1``: the library's logs (all levels) on stderr, even when the
    package logger is quiet (a ``NullHandler``). Never secrets: no log line has any."""
    logger = logging.getLogger("requests_refreshauth")
    if any(getattr(h, "_refreshauth_debug", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    handler._refreshauth_debug = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
