"""The public shape: one export table, keyword-only options, the client-credentials order."""

from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
from fakes import FakeProvider, logged_in

import requests_refreshauth
from requests_refreshauth import RefreshAdapter, RefreshAuth

SECRET = "s3rvice-secret-Qx81"
TOKEN_URL = "https://auth.example.com/token"


def _type_checking_imports() -> dict[str, str]:
    """name -> module of every ``from . import`` under ``if TYPE_CHECKING:`` in __init__."""
    tree = ast.parse(Path(requests_refreshauth.__file__).read_text(encoding="utf-8"))
    found: dict[str, str] = {}
    blocks = [
        node
        for node in tree.body
        if isinstance(node, ast.If)
        and isinstance(node.test, ast.Name)
        and node.test.id == "TYPE_CHECKING"
    ]
    assert len(blocks) == 1
    for statement in blocks[0].body:
        assert isinstance(statement, ast.ImportFrom), ast.dump(statement)
        module = "." * statement.level + (statement.module or "")
        for alias in statement.names:
            # "X as X": an explicit re-export for type checkers (mypy --strict, pyright).
            assert alias.asname == alias.name, alias.name
            assert alias.name not in found, alias.name
            found[alias.name] = module
    return found


def test_type_checking_imports_match_the_export_table() -> None:
    assert _type_checking_imports() == requests_refreshauth._EXPORTS


def test_all_is_the_export_table() -> None:
    assert sorted(requests_refreshauth.__all__) == sorted(
        ["__version__", *requests_refreshauth._EXPORTS]
    )
    assert len(set(requests_refreshauth.__all__)) == len(requests_refreshauth.__all__)


def test_every_exported_name_resolves_to_its_module() -> None:
    for name, module in requests_refreshauth._EXPORTS.items():
        value = getattr(requests_refreshauth, name)
        defining = importlib.import_module(module, "requests_refreshauth")
        assert getattr(defining, name) is value, name


def test_client_credentials_provider_is_exported_at_the_top_level() -> None:
    from requests_refreshauth.providers.client_credentials import ClientCredentialsProvider

    assert requests_refreshauth.ClientCredentialsProvider is ClientCredentialsProvider
    assert "ClientCredentialsProvider" in requests_refreshauth.__all__


def test_client_credentials_provider_takes_the_secret_by_keyword() -> None:
    provider = requests_refreshauth.ClientCredentialsProvider(
        "svc", TOKEN_URL, client_secret=SECRET, scopes=("api",)
    )
    assert provider.client_id == "svc"
    assert provider.account.id == "svc"
    assert SECRET not in repr(provider)


@pytest.mark.parametrize(
    "call",
    [
        lambda cls: cls("svc", SECRET, TOKEN_URL),
        lambda cls: cls("svc", SECRET, TOKEN_URL, ("api",)),
        lambda cls: cls("svc", SECRET, token_endpoint=TOKEN_URL),
    ],
    ids=["three-positional", "with-scopes", "url-by-keyword"],
)
def test_the_old_positional_order_fails_loudly_naming_the_new_form(call: object) -> None:
    cls = requests_refreshauth.ClientCredentialsProvider
    with pytest.raises(TypeError) as caught:
        call(cls)  # type: ignore[operator]
    message = str(caught.value)
    assert "ClientCredentialsProvider(client_id, token_endpoint, client_secret=" in message
    assert SECRET not in message
    assert TOKEN_URL not in message


def test_the_secret_cannot_be_omitted() -> None:
    with pytest.raises(TypeError, match="client_secret"):
        requests_refreshauth.ClientCredentialsProvider("svc", TOKEN_URL)  # type: ignore[call-arg]


@pytest.mark.parametrize("cls", [RefreshAuth, RefreshAdapter])
def test_account_and_skew_are_keyword_only(cls: type) -> None:
    parameters = inspect.signature(cls).parameters
    for name in ("account", "skew"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY, (cls, name)
    options = {"origin": "https://api.example.com"} if cls is RefreshAdapter else {}
    with pytest.raises(TypeError, match="positional"):
        cls(logged_in(), FakeProvider(), "alice", **options)


def test_refresh_auth_still_takes_account_and_skew_by_name() -> None:
    auth = RefreshAuth(logged_in(), FakeProvider(), account="alice", skew=30)
    assert auth.source.account == "alice"
    assert auth.source.skew == 30
