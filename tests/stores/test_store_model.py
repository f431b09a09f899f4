"""Account refs and store operations checked against a model: ``resolve_ref`` rules, and
MemoryTokenStore and FileTokenStore following the same model.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import examples, make_bundle

from requests_refreshauth import (
    Account,
    AccountNotFoundError,
    AuthError,
    FileTokenStore,
    MemoryTokenStore,
    NoAccountSelectedError,
)
from requests_refreshauth.stores import RevisionConflict, resolve_ref

# ----------------------------------------------------------------------------- resolve_ref


def test_resolve_ref_direct() -> None:
    a, b = Account("a", "x"), Account("b", "x")
    assert resolve_ref([], None, None) is None
    assert resolve_ref([a], None, None) == a
    assert resolve_ref([a, b], "b", None) == b
    assert resolve_ref([a], "gone", None) == a  # a stale default falls through
    with pytest.raises(NoAccountSelectedError):
        resolve_ref([a, b], "gone", None)
    with pytest.raises(NoAccountSelectedError):
        resolve_ref([a, b], None, "x")
    with pytest.raises(AccountNotFoundError) as info:
        resolve_ref([], None, "a")
    assert "no accounts are stored" in str(info.value)
    many = [Account(f"id{i}") for i in range(9)]
    with pytest.raises(NoAccountSelectedError) as more:
        resolve_ref(many, None, None)
    assert "and 4 more" in str(more.value)


_IDS = ["a", "b", "c", "work"]
_LABELS = [None, "work", "home", "a"]


def _model_resolve(
    accounts: list[Account], default: Optional[str], ref: Optional[str]
) -> Union[Account, type[AuthError], None]:
    if ref is None:
        pinned = [a for a in accounts if a.id == default]
        if pinned:
            return pinned[0]
        if not accounts:
            return None
        return accounts[0] if len(accounts) == 1 else NoAccountSelectedError
    by_id = [a for a in accounts if a.id == ref]
    if by_id:
        return by_id[0]
    by_label = [a for a in accounts if a.label == ref]
    if len(by_label) == 1:
        return by_label[0]
    return NoAccountSelectedError if by_label else AccountNotFoundError


@given(
    st.lists(
        st.builds(Account, st.sampled_from(_IDS), st.sampled_from(_LABELS)),
        unique_by=lambda a: a.id,
        max_size=4,
    ),
    st.none() | st.sampled_from(_IDS),
    st.none() | st.sampled_from([*_IDS, "home", "nobody"]),
)
def test_resolve_ref_matches_the_rules(
    accounts: list[Account], default: Optional[str], ref: Optional[str]
) -> None:
    expected = _model_resolve(accounts, default, ref)
    if isinstance(expected, type):
        with pytest.raises(expected):
            resolve_ref(accounts, default, ref)
    else:
        assert resolve_ref(accounts, default, ref) == expected


# ----------------------------------------------------------------------------- model check


@dataclass
class _Model:
    """The store rules from the design notes, written out plainly."""

    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    default: Optional[str] = None
    counter: int = 0

    def accounts(self) -> list[Account]:
        return [Account(i, r["label"]) for i, r in self.records.items()]

    def resolve(self, ref: Optional[str]) -> Optional[Account]:
        result = _model_resolve(self.accounts(), self.default, ref)
        if isinstance(result, type):
            raise result("model")
        return result

    def save(
        self, account: Account, make_default: Optional[bool], expected: Optional[int]
    ) -> tuple[str, int, bool]:
        old = self.records.get(account.id)
        if expected is not None and (old is None or old["revision"] != expected):
            raise RevisionConflict(account.id)
        label = account.label if account.label is not None else (old or {}).get("label")
        self.counter += 1
        self.records[account.id] = {"label": label, "revision": self.counter}
        pinned = self.default in self.records
        if make_default or (make_default is None and not pinned):
            self.default = account.id
        return account.id, self.counter, self.default == account.id

    def clear(self, ref: Optional[str]) -> Optional[str]:
        account = self.resolve(ref)
        if account is None:
            return None
        del self.records[account.id]
        if self.default == account.id:
            rest = sorted(self.records, key=lambda i: self.records[i]["revision"])
            self.default = rest[-1] if rest else None
        return account.id

    def set_default(self, ref: str) -> str:
        account = self.resolve(ref)
        assert account is not None
        self.default = account.id
        return account.id

    def active(self, ref: Optional[str]) -> Optional[tuple[str, Optional[str], int, bool]]:
        account = self.resolve(ref)
        if account is None:
            return None
        rec = self.records[account.id]
        return account.id, rec["label"], rec["revision"], self.default == account.id


def _run(call: Callable[[], Any]) -> Any:
    try:
        return ("ok", call())
    except (AuthError, RevisionConflict) as exc:
        return ("raised", type(exc).__name__)


def _apply(target: Any, op: tuple[Any, ...]) -> Any:
    kind = op[0]
    if isinstance(target, _Model):
        if kind == "save":
            _, account_id, label, make_default, expected = op
            return _run(lambda: target.save(Account(account_id, label), make_default, expected))
        if kind == "clear":
            return _run(lambda: target.clear(op[1]))
        if kind == "set_default":
            return _run(lambda: target.set_default(op[1]))
        return _run(lambda: target.active(op[1]))
    if kind == "save":
        _, account_id, label, make_default, expected = op

        def save() -> Any:
            snap = target.save(
                Account(account_id, label),
                make_bundle(account_id),
                make_default,
                expected_revision=expected,
            )
            return snap.account.id, snap.revision, snap.is_default

        return _run(save)
    if kind == "clear":
        return _run(lambda: getattr(target.clear(op[1]), "id", None))
    if kind == "set_default":
        return _run(lambda: target.set_default(op[1]).id)

    def active() -> Any:
        snap = target.active(op[1])
        if snap is None:
            return None
        return snap.account.id, snap.account.label, snap.revision, snap.is_default

    return _run(active)


_refs = st.none() | st.sampled_from([*_IDS, "home", "nobody"])
operations = st.one_of(
    st.tuples(
        st.just("save"),
        st.sampled_from(_IDS),
        st.sampled_from(_LABELS),
        st.sampled_from([False, True, None]),
        st.none() | st.integers(min_value=0, max_value=12),
    ),
    st.tuples(st.just("clear"), _refs),
    st.tuples(st.just("set_default"), _refs.filter(lambda r: r is not None)),
    st.tuples(st.just("active"), _refs),
)


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(operations, max_size=25))
def test_stores_follow_the_model(ops: list[tuple[Any, ...]]) -> None:
    model = _Model()
    memory = MemoryTokenStore()
    with tempfile.TemporaryDirectory() as directory:
        on_disk = FileTokenStore(os.path.join(directory, "tokens.json"))
        for op in ops:
            expected = _apply(model, op)
            assert _apply(memory, op) == expected, op
            assert _apply(on_disk, op) == expected, op
        # A fresh instance reads back exactly the same state.
        reread = FileTokenStore(on_disk.path)
        assert [(s.account, s.revision, s.is_default) for s in reread.accounts()] == [
            (s.account, s.revision, s.is_default) for s in memory.accounts()
        ]
