"""httpie auth plugin: ``http -A refreshauth URL`` sends a login stored by requests-refreshauth.

Store and provider come from the ``REFRESHAUTH_*`` environment variables the standalone
CLI reads (``requests_refreshauth.standalone.StandaloneConfig``), so ``python -m
requests_refreshauth login`` and this plugin share one login, and concurrent ``http`` runs
share one refresh (one store, one lock). ``-a ACCOUNT`` picks a stored account by id or label.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Optional

from httpie.plugins import AuthPlugin

if TYPE_CHECKING:
    from requests_refreshauth import RefreshAuth

__all__ = ["RefreshAuthPlugin"]


class RefreshAuthPlugin(AuthPlugin):
    name = "requests-refreshauth"
    auth_type = "refreshauth"
    description = "a login stored by `python -m requests_refreshauth login`, refreshed as needed"
    auth_require = False  # no -a: the stored default account
    auth_parse = False  # -a ACCOUNT is an account id or label, not user:password
    prompt_password = False

    def get_auth(
        self, username: Optional[str] = None, password: Optional[str] = None
    ) -> RefreshAuth:
        # Imported here: httpie imports every installed plugin on each run, -A or not.
        from requests_refreshauth import AuthError, RefreshAuth, StandaloneConfig

        try:
            config = StandaloneConfig.from_env()
            return RefreshAuth(config.store(), config.provider(), account=self.raw_auth or None)
        except AuthError as exc:
            # httpie calls get_auth() while parsing arguments, where anything but
            # SystemExit ends in a traceback: report it as httpie reports errors instead.
            program = os.path.basename(sys.argv[0]) or "http"
            sys.stderr.write(f"{program}: error: {type(exc).__name__}: {exc}\n")
            raise SystemExit(1) from None
