"""One display form per account, and no two accounts that read the same (review r3)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from requests_refreshauth import Account
from requests_refreshauth.bundle import describe_account

_names = st.text(alphabet=st.sampled_from('ab ()"\\\x1b\n.'), min_size=1, max_size=8)


def _shown(account: Account) -> tuple[str, str | None]:
    label = account.label
    return account.id, None if not label or label == account.id else label


def test_an_id_that_looks_like_a_label_and_id_is_shown_quoted() -> None:
    real = describe_account(Account("alice", "Alice"))
    spoof = describe_account(Account("Alice (alice)"))
    assert real == "Alice (alice)"
    assert spoof != real and spoof == '"Alice (alice)"'


def test_ordinary_names_read_as_before() -> None:
    assert describe_account(Account("alice")) == "alice"
    assert describe_account(Account("alice", "alice")) == "alice"
    assert describe_account(Account("u-1@example.com", "Alice Smith")) == (
        "Alice Smith (u-1@example.com)"
    )


@given(_names, st.none() | _names, _names, st.none() | _names)
def test_two_accounts_read_the_same_only_if_they_are_shown_the_same(
    id_a: str, label_a: str | None, id_b: str, label_b: str | None
) -> None:
    a, b = Account(id_a, label_a), Account(id_b, label_b)
    if describe_account(a) == describe_account(b):
        assert _shown(a) == _shown(b)
    assert "\n" not in describe_account(a)
