"""``python -m requests_refreshauth``: the auth verbs for any provider, for debugging.

    python -m requests_refreshauth --issuer https://auth.example.com --client-id mycli login
    python -m requests_refreshauth --issuer ... --client-id ... status --json
    python -m requests_refreshauth demo     # see it work against a local server

Tokens go to the OS keyring (records file under the user's config directory) unless
``--store file`` is given (tokens in a records file of its own, never the keyring
store's: ``--records`` names either). Every failure exits with the code of its typed error
(:data:`~requests_refreshauth.cli.EXIT_CODES`; 9 for an unusable configuration such as a
plain-http endpoint in the discovered metadata, 1 for an unexpected error) and, under
``--json``, one JSON document on stdout. Tracebacks are shown only with
``REFRESHAUTH_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, List, Optional, Tuple

from ._cli_argparse import _add_user_before_verb, _add_verbs
from ._cli_options import USER_BEFORE
from ._cli_verbs import AuthCommands
from ._paths import user_dir
from .demo import add_demo_arguments, run_demo

if TYPE_CHECKING:
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["main"]


def build_parser() -> Tuple[argparse.ArgumentParser, _StandaloneCommands]:
    parser = argparse.ArgumentParser(
        prog="python -m requests_refreshauth",
        description="Sign in to an OAuth 2.0 / OpenID Connect provider and keep the token fresh.",
    )
    parser.add_argument("--issuer", help="issuer URL (metadata is discovered and cached)")
    parser.add_argument("--client-id", help="the public client id registered at the issuer")
    parser.add_argument(
        "--scope", action="append", default=None, help="a scope to request (repeatable)"
    )
    parser.add_argument(
        "--store",
        choices=("keyring", "file"),
        default="keyring",
        help="where tokens live (keyring falls back to the records file when none exists)",
    )
    parser.add_argument(
        "--records", type=Path, help="records file (default: per issuer, client and --store)"
    )
    _add_user_before_verb(parser)
    verbs = parser.add_subparsers(dest="command", metavar="COMMAND")
    verbs.required = True
    commands = _StandaloneCommands(parser)
    _add_verbs(verbs, commands)
    demo = verbs.add_parser(
        "demo", help="watch N processes share one login across token expiries (local server)"
    )
    add_demo_arguments(demo)
    demo.set_defaults(func=run_demo)
    return parser, commands


class _StandaloneCommands(AuthCommands):
    """AuthCommands whose store and provider come from the command line."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(
            self._make_store, self._make_provider, prog="python -m requests_refreshauth"
        )
        self.parser = parser
        self.args: Optional[argparse.Namespace] = None

    def _need(self) -> argparse.Namespace:
        assert self.args is not None
        if not self.args.issuer or not self.args.client_id:
            self.parser.error("--issuer and --client-id are required for this command")
        return self.args

    def _records(self, args: argparse.Namespace) -> Path:
        return records_path(args.issuer, args.client_id, args.store, args.records)

    def _make_store(self) -> TokenStore:
        from .stores.file import FileTokenStore
        from .stores.keyring import KeyringTokenStore

        args = self._need()
        records = self._records(args)
        if args.store == "file":
            return FileTokenStore(records)
        return KeyringTokenStore(f"requests-refreshauth:{args.issuer}", records)

    def _make_provider(self) -> AuthProvider:
        from .providers.pkce import PkceProvider

        args = self._need()
        scopes = args.scope if args.scope is not None else ["openid", "offline_access"]
        return PkceProvider.from_issuer(args.issuer, args.client_id, scopes)


def records_path(issuer: str, client_id: str, store: str, records: Optional[Path]) -> Path:
    """The records file: ``--records``, else one per issuer, client and store kind.

    Each kind has its own default file: the keyring store's records point into the
    keyring and the file store's hold the tokens, so sharing one file would make each
    store read the other's records as malformed.
    """
    if records:
        return Path(records)
    key = hashlib.sha256(f"{issuer}\n{client_id}".encode()).hexdigest()[:16]
    suffix = "" if store == "keyring" else f"-{store}"
    return user_dir("config") / f"tokens-{key}{suffix}.json"


def _file_records(records: Path) -> Path:
    """Where the ``--store file`` hint keeps tokens when ``--records`` named the keyring
    store's file: next to it, never the same file."""
    return records.with_name(f"{records.stem}-file{records.suffix or '.json'}")


def _invocation(
    args: argparse.Namespace, store: Optional[str] = None, records: Optional[Path] = None
) -> str:
    """How this invocation was configured (or would be, with another ``store`` and
    ``records``), so hints like "run … login" work as printed."""
    store = store or args.store
    records = records or args.records
    words = ["python -m requests_refreshauth"]
    for flag, value in (("--issuer", args.issuer), ("--client-id", args.client_id)):
        if value:
            words += [flag, shlex.quote(value)]
    for scope in args.scope or ():
        words += ["--scope", shlex.quote(scope)]
    if store != "keyring":
        words += ["--store", store]
    if records:
        words += ["--records", shlex.quote(str(records))]
    return " ".join(words)


def main(argv: Optional[List[str]] = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    commands.args = args
    commands.prog = _invocation(args)
    if getattr(args, USER_BEFORE, None) is not None and args.command == "demo":
        parser.error("--user does not apply to `demo`")
    if args.store == "keyring":  # what a locked keyring's message offers instead
        records = _file_records(Path(args.records)) if args.records else None
        commands.file_store_hint = f"`{_invocation(args, 'file', records)} login`"
    # The auth verbs type their own failures; this catches the rest (the demo) the same way.
    status: int = commands.run(
        lambda as_json: args.func(args), as_json=bool(getattr(args, "json", False))
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
