"""Issue 11 item 9: one display form for an account, in every message."""

from __future__ import annotations

import pytest
from fakes import FakeProvider, bundle

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    MemoryTokenStore,
    NoAccountSelectedError,
    RefreshUnavailableError,
)
from requests_refreshauth._cli_format import account_name
from requests_refreshauth.bundle import describe_account
from requests_refreshauth.refresh import refresh_access_token


@pytest.mark.parametrize(
    ("account", "shown"),
    [
        (Account("alice"), "alice"),
        (Account("alice", "Alice"), "Alice (alice)"),
        (Account("alice", "alice"), "alice"),  # a label that only repeats the id
        (Account("alice", ""), "alice"),
        (Account("a\x1b[2J", "x\ny"), "x\\ny (a\\x1b[2J)"),  # one line, no controls
    ],
)
def test_the_one_form(account: Account, shown: str) -> None:
    assert describe_account(account) == shown
    assert account_name(account.id, account.label) == shown


def test_the_engine_names_accounts_in_that_form() -> None:
    store = MemoryTokenStore()
    store.save(Account("alice", "Alice"), bundle(-10, refresh=None), make_default=True)
    with pytest.raises(RefreshUnavailableError) as info:
        refresh_access_token(store, FakeProvider())
    assert "for Alice (alice) has expired" in str(info.value)


def test_store_errors_name_accounts_in_that_form() -> None:
    store = MemoryTokenStore()
    store.save(Account("a", "work"), bundle())
    store.save(Account("b", "bee"), bundle())
    with pytest.raises(NoAccountSelectedError) as several:
        store.active()
    assert "work (a), bee (b)" in str(several.value)
    with pytest.raises(AccountNotFoundError) as missing:
        store.active("zed")
    assert "work (a), bee (b)" in str(missing.value)


def test_login_has_no_form_of_its_own() -> None:
    from requests_refreshauth import login

    assert not hasattr(login, "_name")
