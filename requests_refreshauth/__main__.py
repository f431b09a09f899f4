"""``python -m requests_refreshauth``: the auth verbs for any provider, for debugging.

    python -m requests_refreshauth --issuer https://auth.example.com --client-id mycli login
    python -m requests_refreshauth --issuer ... --client-id ... status --json
    python -m requests_refreshauth demo     # see it work against a local server

A provider without discovery (GitHub) is given by its endpoints instead of ``--issuer``
(``--token-endpoint`` and ``--authorization-endpoint`` / ``--device-authorization-endpoint``),
a confidential client's secret by the NAME of the variable holding it
(``--client-secret-env``). Every option defaults to its ``REFRESHAUTH_*`` variable
(:mod:`.standalone`, which other front ends use to find the same login), except that
naming a server with an option (``--issuer``, an endpoint) uses none of them.

Tokens go to the OS keyring (records file under the user's config directory) unless
``--store file`` is given (tokens in a records file of its own, never the keyring
store's: ``--records`` names either), or ``--store redis`` (tokens and refresh locks in
Redis at ``--redis-url``, under ``--redis-namespace``: a laptop's login straight into a
fleet's store; the URL's password is never shown, and is safer in
``REFRESHAUTH_REDIS_URL`` than on the command line, where ``ps`` shows it). Every
failure exits with the code of its typed error
(:data:`~requests_refreshauth.cli.EXIT_CODES`; 9 for an unusable configuration such as a
plain-http endpoint in the discovered metadata, 1 for an unexpected error) and, under
``--json``, one JSON document on stdout. Tracebacks are shown only with
``REFRESHAUTH_DEBUG=1``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from .cli import AuthCommands, add_auth_verbs, user_before_verb
from .demo import add_demo_arguments, run_demo
from .errors import ConfigurationError
from .standalone import ENV, FLAGS, STORE_KINDS, StandaloneConfig, records_path

if TYPE_CHECKING:
    from .providers.base import AuthProvider
    from .stores.base import TokenStore

__all__ = ["main", "records_path"]


def build_parser() -> tuple[argparse.ArgumentParser, _StandaloneCommands]:
    parser = argparse.ArgumentParser(
        prog="python -m requests_refreshauth",
        description="Sign in to an OAuth 2.0 / OpenID Connect provider and keep the token fresh.",
        epilog="Each option defaults to its REFRESHAUTH_* environment variable (shown in "
        "brackets); an option given wins. The variables describe one whole configuration: "
        "when --issuer or an endpoint option names a server, none of them is used (not "
        "even REFRESHAUTH_STORE and REFRESHAUTH_RECORDS): give every option it needs.",
    )
    option = parser.add_argument
    option("--issuer", help=f"issuer URL (metadata is discovered and cached) [{ENV['issuer']}]")
    option("--client-id", help=f"the client id registered at the provider [{ENV['client_id']}]")
    option(
        "--scope",
        action="append",
        default=None,
        help=f"a scope to request (repeatable) [{ENV['scopes']}, space-separated]",
    )
    for field, what in _ENDPOINT_HELP:
        option(FLAGS[field], metavar="URL", help=f"{what} [{ENV[field]}]")
    option(
        "--client-secret-env",
        metavar="NAME",
        help="a confidential client: the NAME of the environment variable holding its "
        f"secret (never the secret itself) [{ENV['client_secret_env']}]",
    )
    option(
        "--client-auth",
        choices=("basic", "post"),
        default=None,
        help="how a confidential client sends its secret: HTTP Basic (default) or in the "
        f"body [{ENV['client_auth']}]",
    )
    option(
        "--store",
        choices=STORE_KINDS,
        default=None,
        help="where tokens live (keyring, the default, falls back to the records file when "
        f"none exists; redis: a fleet's store, see --redis-url) [{ENV['store_kind']}]",
    )
    option(
        "--records",
        type=Path,
        help="records file of the keyring and file stores (default: per server and client) "
        f"[{ENV['records']}]",
    )
    option(
        FLAGS["redis_url"],
        metavar="URL",
        help="--store redis: redis://[user:password@]host:port/db (rediss:// for TLS, "
        "unix:///path.sock). A password here is visible to other users (ps): put the URL "
        f"in {ENV['redis_url']} instead, with the rest of the configuration "
        f"[{ENV['redis_url']}]",
    )
    option(
        FLAGS["redis_namespace"],
        metavar="NS",
        help="--store redis: the keys' namespace, the same on every host of the fleet "
        "(default: tokens-<16 hex>, one per server and client, like the records file) "
        f"[{ENV['redis_namespace']}]",
    )
    commands = _StandaloneCommands(parser)
    verbs = add_auth_verbs(parser, commands)
    demo = verbs.add_parser(
        "demo", help="watch N processes share one login across token expiries (local server)"
    )
    add_demo_arguments(demo)
    demo.set_defaults(func=run_demo)
    return parser, commands


#: The endpoint options, for a provider without discovery (instead of --issuer).
_ENDPOINT_HELP = (
    ("authorization_endpoint", "without discovery: the authorization endpoint (browser login)"),
    ("token_endpoint", "without discovery, instead of --issuer: the token endpoint"),
    ("device_authorization_endpoint", "without discovery: the device endpoint (login --device)"),
    ("revocation_endpoint", "without discovery: the revocation endpoint (logout)"),
)

#: The argparse destination of each setting given as an option.
_DEST = {
    "issuer": "issuer",
    "client_id": "client_id",
    "scopes": "scope",
    "authorization_endpoint": "authorization_endpoint",
    "token_endpoint": "token_endpoint",
    "device_authorization_endpoint": "device_authorization_endpoint",
    "revocation_endpoint": "revocation_endpoint",
    "client_secret_env": "client_secret_env",
    "client_auth": "client_auth",
    "store_kind": "store",
    "records": "records",
    "redis_url": "redis_url",
    "redis_namespace": "redis_namespace",
}


def config_from(args: argparse.Namespace) -> StandaloneConfig:
    """The configuration: the options given, over the ``REFRESHAUTH_*`` variables."""
    return StandaloneConfig.from_env(
        **{field: getattr(args, dest, None) for field, dest in _DEST.items()}
    )


class _StandaloneCommands(AuthCommands):
    """AuthCommands whose store and provider come from the command line."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(
            self._make_store, self._make_provider, prog="python -m requests_refreshauth"
        )
        self.parser = parser
        self.args: Optional[argparse.Namespace] = None
        self._showing_where = False  # status: add where a Redis store keeps the tokens

    def _config(self) -> StandaloneConfig:
        """The configuration, or a usage error (exit 2) naming the option and variable."""
        assert self.args is not None
        try:
            return config_from(self.args)
        except ConfigurationError as exc:
            self.parser.error(str(exc))

    def _records(self, args: argparse.Namespace) -> Path:
        self.args = args
        return self._config().records_file

    def _make_store(self) -> TokenStore:
        return self._config().store()

    def status(self, *, as_json: bool = False, user: Optional[str] = None) -> int:
        """The account's status, and, for ``--store redis``, where its tokens are."""
        self._showing_where = True
        try:
            return super().status(as_json=as_json, user=user)
        finally:
            self._showing_where = False

    def _emit(self, as_json: bool, data: Any, human: str) -> None:
        where = self._where() if self._showing_where else None
        if where is not None and isinstance(data, dict):
            data = {**data, "store": where}
            human += f"\nRedis:    {where['url']}, namespace {where['namespace']!r}"
        super()._emit(as_json, data, human)

    def _where(self) -> Optional[dict[str, str]]:
        """The Redis store's URL (no credentials) and namespace; ``None`` for others."""
        config = self._config()
        if config.store_kind != "redis" or config.redis_where is None:
            return None
        return {"kind": "redis", "url": config.redis_where, "namespace": config.namespace}

    def _make_provider(self) -> AuthProvider:
        config = self._config()
        try:
            config.client_secret()  # unset: a usage error, not the provider's failure
        except ConfigurationError as exc:
            self.parser.error(str(exc))
        return config.provider()


def _file_records(records: Path) -> Path:
    """Where the ``--store file`` hint keeps tokens when ``--records`` named the keyring
    store's file: next to it, never the same file."""
    return records.with_name(f"{records.stem}-file{records.suffix or '.json'}")


def _invocation(
    args: argparse.Namespace, store: Optional[str] = None, records: Optional[Path] = None
) -> str:
    """How this invocation was configured (or would be, with another ``store`` and
    ``records``), so hints like "run … login" work as printed: the options as given
    (the environment's settings stay in the environment; a secret is never an option).
    ``--client-secret-env NAME`` only when ``NAME`` is set: an unset "name" may be the
    secret itself, given by mistake (a GitHub secret, 40 hex digits, is a valid name)."""
    store = store or args.store
    records = records or args.records
    words = ["python -m requests_refreshauth"]
    for field in ("issuer", "client_id", *(field for field, _ in _ENDPOINT_HELP)):
        value = getattr(args, _DEST[field], None)
        if value:
            words += [FLAGS[field], shlex.quote(value)]
    for scope in args.scope or ():
        words += ["--scope", shlex.quote(scope)]
    secret_env = args.client_secret_env
    if secret_env and os.environ.get(secret_env):
        words += [FLAGS["client_secret_env"], shlex.quote(secret_env)]
    if args.client_auth:
        words += [FLAGS["client_auth"], shlex.quote(args.client_auth)]
    if store:
        words += ["--store", store]
    if records:
        words += ["--records", shlex.quote(str(records))]
    if store in (None, "redis"):
        words += _redis_words(args)
    return " ".join(words)


def _redis_words(args: argparse.Namespace) -> list[str]:
    """The Redis options as given, but a URL with credentials is left out (never
    printed): the hint then asks for it, and REFRESHAUTH_REDIS_URL is where it goes."""
    from .standalone import hint_url

    words = []
    url = getattr(args, "redis_url", None)
    if url and hint_url(url):
        words += [FLAGS["redis_url"], shlex.quote(url)]
    namespace = getattr(args, "redis_namespace", None)
    if namespace:
        words += [FLAGS["redis_namespace"], shlex.quote(namespace)]
    return words


def _file_store_hint(args: argparse.Namespace) -> Optional[str]:
    """What a locked keyring's message offers instead: the same login, ``--store file``
    (``None`` when the store is a file already, or the configuration is unusable)."""
    try:
        config = config_from(args)
    except ConfigurationError:
        return None
    if config.store_kind != "keyring":
        return None
    # Beside the keyring store's records, never in them (a locked keyring's are there).
    records = _file_records(config.records or config.records_file)
    return f"`{_invocation(args, 'file', records)} login`"


def main(argv: Optional[list[str]] = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    commands.args = args
    commands.prog = _invocation(args)
    if user_before_verb(args) is not None and args.command == "demo":
        parser.error("--user does not apply to `demo`")
    if args.command != "demo":
        commands.file_store_hint = _file_store_hint(args)
    # The auth verbs type their own failures; this catches the rest (the demo) the same way.
    status: int = commands.run(
        lambda as_json: args.func(args), as_json=bool(getattr(args, "json", False))
    )
    return status


if __name__ == "__main__":
    sys.exit(main())
