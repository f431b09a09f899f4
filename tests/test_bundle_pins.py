"""Behaviour of ``bundle.py`` that mutation testing found unpinned (``tox -e mutation``).

Messages are pinned by the names and remedies a user reads in them, as whole words, never
by their exact wording. Token values never reach an assertion message.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Any

import pytest
from support import says

from requests_refreshauth import Account, Snapshot, TokenBundle, WriteReport
from requests_refreshauth import bundle as bundle_module
from requests_refreshauth.bundle import fingerprint
from requests_refreshauth.errors import StoreReadError

NOW = 1_750_000_000.0
LONE = "\ud800"  # a lone surrogate: what a JSON "\ud800" escape decodes to


# ------------------------------------------------------------- lone surrogates, fingerprints


@pytest.mark.parametrize("field", ["access_token", "refresh_token"])
def test_a_token_with_a_lone_surrogate_is_refused_by_name(field: str) -> None:
    fields: dict[str, Any] = {"access_token": "at-123456", field: f"tok-{LONE}-123"}
    with pytest.raises(TypeError) as caught:
        TokenBundle(**fields)
    assert says(str(caught.value), field, "valid Unicode")
    assert LONE not in str(caught.value)


def test_a_lone_surrogate_still_has_a_fingerprint() -> None:
    """A malformed token must stay nameable in logs ("which token was refused?")."""
    tag = fingerprint(f"at-{LONE}")
    assert re.fullmatch(r"[0-9a-f]{10}", tag)
    assert tag != fingerprint("at-\udfff")
    assert fingerprint("at-plain") == fingerprint("at-plain")


# ------------------------------------------------------------------------------- messages


def test_an_empty_token_type_is_refused_by_name() -> None:
    with pytest.raises(TypeError) as caught:
        TokenBundle("at-123456", token_type="")
    assert says(str(caught.value), "token_type")


@pytest.mark.parametrize("field", ["expires_at", "refresh_expires_at", "issued_at"])
def test_a_non_finite_time_is_refused_by_name(field: str) -> None:
    fields: dict[str, Any] = {field: float("nan")}
    with pytest.raises(TypeError) as caught:
        TokenBundle("at-123456", **fields)
    assert says(str(caught.value), field, "epoch seconds")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [({"id": ""}, "Account.id"), ({"id": "a", "label": 5}, "Account.label")],
)
def test_a_bad_account_is_refused_by_name(arguments: dict[str, Any], field: str) -> None:
    with pytest.raises(TypeError) as caught:
        Account(**arguments)
    assert says(str(caught.value), field)


def test_str_of_a_bundle_is_its_masked_repr() -> None:
    bundle = TokenBundle("at-123456", "rt-654321")
    shown = str(bundle)
    assert shown == repr(bundle)
    assert "***" in shown and "at-123456" not in shown


def test_from_dict_defaults_to_a_bearer_token() -> None:
    assert TokenBundle.from_dict({"access_token": "at-123456"}).token_type == "Bearer"


# ------------------------------------------------------------------------------ snapshots


def test_a_snapshot_defaults_to_revision_zero_not_default_no_report() -> None:
    snap = Snapshot(Account("a"), TokenBundle("at-123456"))
    assert snap.revision == 0
    assert snap.is_default is False
    assert snap.write_report is None


def test_a_snapshot_keeps_what_it_is_given() -> None:
    report = WriteReport(Account("a"), "plaintext", "stored in plain text")
    snap = Snapshot(
        Account("a"), TokenBundle("at-123456"), revision=3, is_default=True, write_report=report
    )
    assert snap.revision == 3
    assert snap.is_default is True
    assert snap.write_report is report


def test_a_refresh_token_held_elsewhere_points_at_the_store() -> None:
    snap = Snapshot(Account("a"), TokenBundle("at-123456"), has_refresh_token=True)
    with (
        pytest.warns(DeprecationWarning, match="full_bundle"),
        pytest.raises(StoreReadError) as caught,
    ):
        snap.full_bundle()
    message = str(caught.value)
    assert says(message, "not in this snapshot", "elsewhere", "store.read_refresh_token(snapshot)")


@pytest.mark.parametrize("method", ["load_refresh_token", "full_bundle"])
def test_the_deprecated_loaders_warn_at_the_callers_line(method: str) -> None:
    snap = Snapshot(Account("a"), TokenBundle("at-123456", "rt-654321"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(snap, method)()
    (warning,) = caught
    assert warning.category is DeprecationWarning
    # stacklevel: the caller's line, not ours (under mutmut its trampoline is the caller)
    assert Path(warning.filename).name != "bundle.py"
    if "MUTANT_UNDER_TEST" not in os.environ:
        assert warning.filename == __file__
    message = str(warning.message)
    assert says(message, f"Snapshot.{method}()", "store.read_refresh_token(snapshot)")


# ----------------------------------------------------------- the deprecated expiry helper


@pytest.mark.parametrize(
    ("refresh_expires_at", "expired"),
    [(NOW - 1, True), (NOW, True), (NOW + 1, False), (None, False)],
)
def test_the_deprecated_refresh_token_expired_follows_the_engine(
    refresh_expires_at: Any, expired: bool
) -> None:
    with pytest.warns(DeprecationWarning, match="refresh_expired"):
        helper = bundle_module.refresh_token_expired
    bundle = TokenBundle("at-123456", "rt-654321", refresh_expires_at=refresh_expires_at)
    assert helper(bundle, NOW) is expired
