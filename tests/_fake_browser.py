"""A stand-in web browser for subprocess tests of ``auth login``.

Use it through ``$BROWSER``, which :func:`requests_refreshauth.login.default_browser`
honours even on headless Linux::

    BROWSER="<python> tests/_fake_browser.py %s"

It signs in on the test oidc-provider's dev-interaction pages (``headless_authorize``)
and then requests the URL the provider redirects to — the CLI's loopback listener — the
way a real browser lands there. Environment:

- ``FAKE_BROWSER_LOGIN``: the user name to sign in as (default ``alice``);
- ``FAKE_BROWSER_LOG``: if set, a file each opened URL is appended to (one per line),
  so a test can tell that (and how often) the browser was started.

Exits 0 once the listener answered 200, 1 otherwise (the reason on stderr, which the CLI
passes through; it never contains the authorization code).
"""

from __future__ import annotations

import os
import sys
from urllib.parse import urlsplit

# Run as a script, so tests/ (this file's directory) is sys.path[0].
from _oidc_server import HTTP_TIMEOUT, OidcHarnessError, _session, headless_authorize


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: _fake_browser.py URL", file=sys.stderr)
        return 2
    url = argv[1]
    log = os.environ.get("FAKE_BROWSER_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(url + "\n")
    login = os.environ.get("FAKE_BROWSER_LOGIN") or "alice"
    try:
        redirect = headless_authorize(url, login=login)
        with _session() as session:
            landed = session.get(redirect, timeout=HTTP_TIMEOUT)
    except (OidcHarnessError, OSError) as exc:
        print(f"fake browser: sign-in as {login!r} failed: {exc}", file=sys.stderr)
        return 1
    if landed.status_code != 200:
        where = urlsplit(redirect)
        print(
            f"fake browser: {where.scheme}://{where.netloc}{where.path} answered "
            f"{landed.status_code}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
