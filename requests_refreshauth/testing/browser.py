"""``$BROWSER`` for subprocess tests: ``python -m requests_refreshauth.testing.browser URL``.

Set up by :meth:`LocalAuthServer.browser_env`, which returns every variable needed::

    subprocess.run(["mycli", "auth", "login"], env={**os.environ, **server.browser_env()})

Environment (see :mod:`.approver`):

- ``LOCAL_AUTH_BROWSER_ENDPOINT``: the server's authorization endpoint; any other URL is
  refused, and without it every URL is;
- ``LOCAL_AUTH_BROWSER_USER``: who signs in (empty: the ``login_hint`` or the server's
  default user);
- ``LOCAL_AUTH_BROWSER_DECISION``: ``approve`` (default) or ``deny``;
- ``LOCAL_AUTH_BROWSER_LOG``: if set, a file each URL it is asked to open is appended to,
  one per line, with ``state`` and the PKCE challenge as ``***``.

Exit status: 0 the sign-in was answered and delivered to the CLI, 1 it could not be,
2 the URL was refused (nothing fetched) or the environment is wrong. Messages go to
stderr and never carry the code or the state.
"""

from __future__ import annotations

import os
import sys
from typing import Optional

from .approver import (
    ENV_DECISION,
    ENV_ENDPOINT,
    ENV_LOG,
    ENV_USER,
    ApproverError,
    URLRefusedError,
    approve_url,
    redacted,
)

__all__ = ["main"]

_PROG = "local-auth browser"


def _fail(status: int, message: str) -> int:
    print(f"{_PROG}: {message}", file=sys.stderr)
    return status


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m requests_refreshauth.testing.browser URL``: approve the login at ``URL``
    as the user the environment names, headlessly. Returns the exit status.
    """
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        return _fail(2, "usage: python -m requests_refreshauth.testing.browser URL")
    url = args[0]
    log = os.environ.get(ENV_LOG)
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(redacted(url) + "\n")
    endpoint = os.environ.get(ENV_ENDPOINT)
    if not endpoint:
        return _fail(2, f"{ENV_ENDPOINT} is not set (use LocalAuthServer.browser_env()); "
                     "refusing to open anything")  # fmt: skip
    decision = os.environ.get(ENV_DECISION) or "approve"
    if decision not in ("approve", "deny"):
        return _fail(2, f"{ENV_DECISION} must be 'approve' or 'deny'")
    try:
        approve_url(
            url,
            endpoint,
            user=os.environ.get(ENV_USER) or None,
            approve=decision == "approve",
        )
    except URLRefusedError as exc:
        return _fail(2, str(exc))
    except ApproverError as exc:
        return _fail(1, str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
