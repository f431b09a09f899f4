"""mycli: an existing argparse CLI that gains ``mycli auth ...`` from requests_refreshauth.

    mycli auth login [--device] [--no-browser]    mycli auth status [--json]
    mycli auth token [--json]                     mycli auth accounts list|use REF|remove REF
    mycli auth logout                             mycli whoami

The integration is the two imports, the two factories and the two lines marked ``# auth``;
the rest is the CLI as it was. Configuration comes from the environment: ``MYCLI_ISSUER``,
``MYCLI_CLIENT_ID``, ``MYCLI_API`` (the URL ``whoami`` reads), ``MYCLI_RECORDS`` (keep the
tokens in this file instead of the OS keyring) and ``MYCLI_NO_PROXY=1`` (ignore
``HTTP(S)_PROXY``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Optional

import requests

from requests_refreshauth import FileTokenStore, KeyringTokenStore, PkceProvider, RefreshAuth
from requests_refreshauth.cli import add_auth_commands

ISSUER = os.environ.get("MYCLI_ISSUER", "https://login.example.com")
CLIENT_ID = os.environ.get("MYCLI_CLIENT_ID", "mycli")
API = os.environ.get("MYCLI_API", "https://api.example.com/v1/me")
SCOPES = ("openid", "profile", "email", "offline_access", "api")
CONFIG = Path.home() / ".config" / "mycli"


def http() -> requests.Session:
    session = requests.Session()
    session.trust_env = os.environ.get("MYCLI_NO_PROXY") != "1"
    return session


def store() -> FileTokenStore | KeyringTokenStore:
    path = os.environ.get("MYCLI_RECORDS")
    return FileTokenStore(path) if path else KeyringTokenStore("mycli", CONFIG / "tokens.json")


def provider() -> PkceProvider:  # a factory: `mycli --help` does no network I/O
    return PkceProvider.from_issuer(ISSUER, CLIENT_ID, SCOPES, session=http())


def whoami(args: argparse.Namespace) -> int:
    session = http()
    session.auth = RefreshAuth(store(), provider())  # auth
    response = session.get(API, timeout=30)
    response.raise_for_status()
    print(json.dumps(response.json(), indent=2, sort_keys=True))
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="mycli", description="Talk to the example API.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    commands.add_parser("whoami", help="show who the API says you are").set_defaults(func=whoami)
    add_auth_commands(commands, store=store, provider=provider)  # auth
    args = parser.parse_args(argv)
    try:
        status: int = args.func(args)
    except requests.RequestException as exc:  # a failed refresh is a RequestException too
        print(f"mycli: error: {exc}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
