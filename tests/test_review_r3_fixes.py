"""Review findings on the issue 11 work: a service's plaintext login is reported; a subclass
of ClientCredentialsProvider keeps its own signature."""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Optional

from keyring.backends.fail import Keyring as NoKeyring

from requests_refreshauth import ClientCredentialsProvider, KeyringTokenStore, TokenBundle
from requests_refreshauth.cli import AuthCommands

if TYPE_CHECKING:
    from pathlib import Path


def test_a_service_login_into_plaintext_says_so(tmp_path: Path) -> None:
    class Service(ClientCredentialsProvider):
        # A third-party subclass written before ``before_attempt``: it keeps its old signature.
        def renew(self, current: Optional[TokenBundle]) -> TokenBundle:  # type: ignore[override]
            return TokenBundle(access_token="at-svc-12345678", expires_at=time.time() + 3600)

    store = KeyringTokenStore("svc", tmp_path / "records.json", backend=NoKeyring())
    out = io.StringIO()
    provider = Service("svc", "https://login.example/token", client_secret="s3cr3t-value")
    # The old signature does not match the protocol on purpose: the engine must cope with it.
    cli = AuthCommands(store, provider, prog="auth", stdout=out, stderr=out)  # type: ignore[arg-type]
    assert cli.run(cli.login) == 0
    status = store.status("svc")
    assert status is not None and status.secrets == "plaintext"
    assert "plaintext" in out.getvalue().lower(), out.getvalue()
    assert "at-svc-12345678" not in out.getvalue()


def test_a_subclass_with_its_own_positional_signature_is_not_refused() -> None:
    class Tenant(ClientCredentialsProvider):
        def __init__(self, tenant: str, client_id: str, secret: str) -> None:
            token = f"https://login.example/{tenant}/token"
            super().__init__(client_id, token, client_secret=secret)

    assert Tenant("contoso", "svc", "s3cr3t-value").client_id == "svc"
