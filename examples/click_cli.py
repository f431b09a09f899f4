"""mycli: an existing click CLI that gains ``mycli auth ...`` from requests_refreshauth.

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

import json
import os
from pathlib import Path

import click
import requests

from requests_refreshauth import FileTokenStore, KeyringTokenStore, PkceProvider, RefreshAuth
from requests_refreshauth.cli import click_auth_group

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


@click.group(help="Talk to the example API.")
def cli() -> None:
    pass


@cli.command(help="Show who the API says you are.")
def whoami() -> None:
    session = http()
    try:
        session.auth = RefreshAuth(store(), provider())  # auth
        response = session.get(API, timeout=30)
        response.raise_for_status()
    except requests.RequestException as exc:  # a failed refresh is a RequestException too
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(response.json(), indent=2, sort_keys=True))


cli.add_command(click_auth_group(store=store, provider=provider, prog="mycli auth"))  # auth

if __name__ == "__main__":
    cli(prog_name="mycli")
