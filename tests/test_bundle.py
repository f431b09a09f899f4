"""TokenBundle, Account, Snapshot and the pure expiry arithmetic in ``bundle.py``.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first, so a failure prints ``assert False``, not a token.
"""

from __future__ import annotations

import json
import math
import string
from typing import Any, Optional

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from support import b64url, jwt

from requests_refreshauth import Account, Snapshot, TokenBundle
from requests_refreshauth.bundle import (
    TokenState,
    effective_skew,
    fingerprint,
    is_fresh,
    jwt_expiry,
    seconds_left,
)
from requests_refreshauth.errors import StoreReadError
from requests_refreshauth.refresh import refresh_expired

NOW = 1_750_000_000.0

# ----------------------------------------------------------------------------- strategies

_TOKEN_CHARS = string.ascii_letters + string.digits + "._~+/="
access_tokens = st.text(_TOKEN_CHARS, min_size=12, max_size=64).map(lambda s: "at-" + s)
refresh_tokens = st.text(_TOKEN_CHARS, min_size=12, max_size=64).map(lambda s: "rt-" + s)
times = st.floats(min_value=-1e10, max_value=1e10, allow_nan=False)
opt_times = st.none() | times
skews = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)
# Scope words cannot contain "at-"/"rt-" (no hyphen), so a token found in a repr leaked.
scopes = st.none() | st.lists(st.text(string.ascii_lowercase + ":.", min_size=1, max_size=12)).map(
    tuple
)
token_types = st.sampled_from(["Bearer", "bearer", "BEARER", "DPoP", "MAC"])


@st.composite
def bundles(draw: Any, *, access: Any = access_tokens, refresh: Any = None) -> TokenBundle:
    refresh = refresh if refresh is not None else st.none() | refresh_tokens
    return TokenBundle(
        access_token=draw(access),
        refresh_token=draw(refresh),
        expires_at=draw(opt_times),
        refresh_expires_at=draw(opt_times),
        token_type=draw(token_types),
        scope=draw(scopes),
        issued_at=draw(opt_times),
    )


# ----------------------------------------------------------------------------- construction


def test_defaults_and_normalisation() -> None:
    bundle = TokenBundle("at-abc", expires_at=10, scope="read  write ")
    assert bundle.refresh_token is None
    assert bundle.refresh_expires_at is None
    assert bundle.issued_at is None
    assert bundle.token_type == "Bearer"
    assert bundle.scope == ("read", "write")
    assert isinstance(bundle.expires_at, float)
    assert bundle.expires_at == 10.0
    assert TokenBundle("at-abc", scope=["a", "b"]).scope == ("a", "b")
    assert TokenBundle("at-abc", scope="").scope == ()


@pytest.mark.parametrize(
    ("kwargs", "field_name"),
    [
        ({"access_token": ""}, "access_token"),
        ({"access_token": None}, "access_token"),
        ({"access_token": 123}, "access_token"),
        ({"access_token": b"at-bytes"}, "access_token"),
        ({"refresh_token": ""}, "refresh_token"),
        ({"refresh_token": 5}, "refresh_token"),
        ({"refresh_token": b"rt-bytes"}, "refresh_token"),
        ({"token_type": ""}, "token_type"),
        ({"token_type": None}, "token_type"),
        ({"expires_at": "1700000000"}, "expires_at"),
        ({"expires_at": True}, "expires_at"),
        ({"expires_at": math.inf}, "expires_at"),
        ({"expires_at": -math.inf}, "expires_at"),
        ({"expires_at": math.nan}, "expires_at"),
        ({"refresh_expires_at": "soon"}, "refresh_expires_at"),
        ({"refresh_expires_at": False}, "refresh_expires_at"),
        ({"issued_at": math.nan}, "issued_at"),
        ({"issued_at": [1]}, "issued_at"),
    ],
)
def test_constructor_type_errors(kwargs: dict[str, Any], field_name: str) -> None:
    args: dict[str, Any] = {"access_token": "at-valid"}
    args.update(kwargs)
    with pytest.raises(TypeError) as info:
        TokenBundle(**args)
    assert field_name in str(info.value)


def test_constructor_rejects_int_too_large_for_a_float_with_type_error() -> None:
    with pytest.raises(TypeError):
        TokenBundle("at-valid", expires_at=10**400)


@pytest.mark.parametrize(
    "kwargs",
    [{"id": ""}, {"id": None}, {"id": 7}, {"id": "a", "label": 5}, {"id": "a", "label": b"x"}],
)
def test_account_type_errors(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        Account(**kwargs)


def test_account_label_optional() -> None:
    assert Account("sub-1").label is None
    assert Account("sub-1", "work").label == "work"
    assert Account("sub-1", "") == Account("sub-1", "")


def test_frozen() -> None:
    bundle = TokenBundle("at-abc")
    with pytest.raises(AttributeError):
        bundle.access_token = "at-other"
    with pytest.raises(AttributeError):
        Account("a").id = "b"


def test_replace_validates_and_copies() -> None:
    bundle = TokenBundle("at-abc", refresh_token="rt-abc", expires_at=5)
    newer = bundle.replace(access_token="at-new", expires_at=9)
    assert newer.expires_at == 9.0
    ok = newer.refresh_token == "rt-abc" and bundle.access_token == "at-abc"
    assert ok
    with pytest.raises(TypeError):
        bundle.replace(access_token="")


@pytest.mark.parametrize(
    ("token_type", "scheme"),
    [("Bearer", "Bearer"), ("bearer", "Bearer"), ("BEARER", "Bearer"), ("DPoP", "DPoP")],
)
def test_authorization_header(token_type: str, scheme: str) -> None:
    header = TokenBundle("at-xyz", token_type=token_type).authorization
    ok = header == f"{scheme} at-xyz"
    assert ok


# ----------------------------------------------------------------------------- redaction


@given(bundles(), st.booleans())
def test_repr_and_str_never_contain_tokens(bundle: TokenBundle, with_loader: bool) -> None:
    loader_token = "rt-loaded-" + bundle.access_token[3:]
    snapshot = Snapshot(
        Account("user@example.com", "work"),
        bundle,
        revision=3,
        has_refresh_token=True if with_loader else None,
    )
    texts = [
        repr(bundle),
        str(bundle),
        f"{bundle}",
        f"{bundle!r}",
        repr([bundle]),
        repr({"b": bundle}),
        repr(snapshot),
        str(snapshot),
        repr(snapshot.state),
        repr(Snapshot(Account("a"), snapshot.bundle.replace(refresh_token=loader_token))),
    ]
    secrets = [bundle.access_token, loader_token]
    if bundle.refresh_token is not None:
        secrets.append(bundle.refresh_token)
    leaked = any(secret in text for secret in secrets for text in texts)
    assert not leaked
    assert "'***'" in repr(bundle)
    # The refresh token's presence is visible, its value is not.
    assert ("refresh_token=None" in repr(bundle)) == (bundle.refresh_token is None)


# ----------------------------------------------------------------------------- to_dict / from_dict


@given(
    bundles(
        access=st.text(min_size=1),
        refresh=st.none() | st.text(min_size=1),
    )
)
def test_to_dict_from_dict_round_trip(bundle: TokenBundle) -> None:
    data = bundle.to_dict()
    same = TokenBundle.from_dict(data) == bundle
    assert same
    same_via_json = TokenBundle.from_dict(json.loads(json.dumps(data))) == bundle
    assert same_via_json
    # Absent optionals are omitted rather than written as null.
    assert all(value is not None for value in data.values())


@given(
    st.text(min_size=1),
    st.lists(st.text(min_size=1), max_size=4),
)
def test_scope_from_iterable_round_trips(token: str, scope: list[str]) -> None:
    bundle = TokenBundle(token, scope=scope)
    assert bundle.scope == tuple(scope)
    assert TokenBundle.from_dict(bundle.to_dict()).scope == tuple(scope)


def test_to_dict_shape() -> None:
    bundle = TokenBundle(
        "at-1", "rt-1", expires_at=100, refresh_expires_at=200, scope="a b", issued_at=50
    )
    data = bundle.to_dict()
    assert sorted(data) == [
        "access_token",
        "expires_at",
        "issued_at",
        "refresh_expires_at",
        "refresh_token",
        "scope",
        "token_type",
    ]
    assert data["scope"] == ["a", "b"]
    assert sorted(TokenBundle("at-1").to_dict()) == ["access_token", "token_type"]


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"refresh_token": "rt-1"},
        {"access_token": ""},
        {"access_token": 5},
        {"access_token": "at-1", "expires_at": "tomorrow"},
        {"access_token": "at-1", "scope": 5},
        {"access_token": "at-1", "token_type": None},
    ],
)
def test_from_dict_bad_shapes(data: dict[str, Any]) -> None:
    with pytest.raises((TypeError, KeyError)):
        TokenBundle.from_dict(data)


# ----------------------------------------------------------------------------- expiry math


def test_no_expiry_is_fresh() -> None:
    bundle = TokenBundle("at-1")
    for now in (-1e12, 0.0, NOW, 1e15):
        for skew in (0.0, 60.0, 1e9):
            assert is_fresh(bundle, now, skew)
    assert seconds_left(bundle, NOW) is None


@given(st.none() | times, times, skews)
def test_tokens_without_expiry_are_always_fresh(
    issued_at: Optional[float], now: float, skew: float
) -> None:
    assert is_fresh(TokenBundle("at-1", issued_at=issued_at), now, skew)


def test_boundaries_without_issued_at() -> None:
    bundle = TokenBundle("at-1", expires_at=NOW + 100)
    assert seconds_left(bundle, NOW) == 100
    assert is_fresh(bundle, NOW, 60)
    assert is_fresh(bundle, NOW + 39.9, 60)
    assert not is_fresh(bundle, NOW + 40, 60)  # exactly skew left → refresh
    assert not is_fresh(bundle, NOW + 100, 0)  # expiry instant → stale
    assert is_fresh(bundle, NOW + 99.9, 0)
    assert not is_fresh(bundle, NOW + 500, 0)
    assert effective_skew(bundle, 60) == 60  # no issued_at: no clamp


def test_negative_skew_counts_as_zero() -> None:
    bundle = TokenBundle("at-1", expires_at=NOW + 1)
    assert effective_skew(bundle, -100) == 0
    assert is_fresh(bundle, NOW, -100)
    assert not is_fresh(bundle, NOW + 1, -100)


def test_sixty_second_skew_on_thirty_second_token_does_not_make_it_stale() -> None:
    bundle = TokenBundle("at-1", expires_at=NOW + 30, issued_at=NOW)
    assert effective_skew(bundle, 60) == 15
    assert is_fresh(bundle, NOW, 60)
    assert is_fresh(bundle, NOW + 14.9, 60)
    assert not is_fresh(bundle, NOW + 15, 60)
    # Without the clamp the same token would be stale on arrival.
    assert not is_fresh(bundle.replace(issued_at=None), NOW, 60)


def test_clamp_with_degenerate_lifetimes() -> None:
    # expires before it was issued (clock skew between machines): clamp to 0, never negative.
    backwards = TokenBundle("at-1", expires_at=NOW - 10, issued_at=NOW)
    assert effective_skew(backwards, 60) == 0
    assert not is_fresh(backwards, NOW, 60)
    zero = TokenBundle("at-1", expires_at=NOW, issued_at=NOW)
    assert effective_skew(zero, 60) == 0
    assert not is_fresh(zero, NOW, 60)


@given(bundles(), times, times, skews)
def test_is_fresh_is_monotonic_in_now(
    bundle: TokenBundle, now_a: float, now_b: float, skew: float
) -> None:
    early, late = sorted((now_a, now_b))
    if is_fresh(bundle, late, skew):
        assert is_fresh(bundle, early, skew)


@given(bundles(), times, skews, skews)
def test_is_fresh_is_monotonic_in_skew(
    bundle: TokenBundle, now: float, skew_a: float, skew_b: float
) -> None:
    small, large = sorted((skew_a, skew_b))
    if is_fresh(bundle, now, large):
        assert is_fresh(bundle, now, small)


@given(bundles(), skews)
def test_clamp_never_exceeds_skew_nor_half_the_lifetime(bundle: TokenBundle, skew: float) -> None:
    clamped = effective_skew(bundle, skew)
    assert 0 <= clamped <= max(0.0, skew)
    if bundle.expires_at is not None and bundle.issued_at is not None:
        lifetime = bundle.expires_at - bundle.issued_at
        assert clamped <= max(0.0, lifetime) / 2
        assert clamped == min(max(0.0, skew), max(0.0, lifetime) / 2)
    else:
        assert clamped == max(0.0, skew)


@given(
    st.floats(min_value=0, max_value=2e9),
    st.floats(min_value=0.001, max_value=1e7),
    st.floats(min_value=0, max_value=0.49),
    st.floats(min_value=0, max_value=1e7),
)
def test_clamped_token_is_fresh_for_the_first_half_of_its_life(
    issued_at: float, lifetime: float, fraction: float, skew: float
) -> None:
    bundle = TokenBundle("at-1", expires_at=issued_at + lifetime, issued_at=issued_at)
    now = issued_at + lifetime * fraction
    assert bundle.expires_at is not None
    assert bundle.issued_at is not None
    # Float rounding at the edge: compare with the lifetime as the library computes it.
    assume(bundle.expires_at - now > (bundle.expires_at - bundle.issued_at) / 2)
    assert is_fresh(bundle, now, skew)


@given(bundles(), times, skews)
def test_clamp_only_ever_makes_a_token_fresher(
    bundle: TokenBundle, now: float, skew: float
) -> None:
    unclamped = bundle.replace(issued_at=None)
    if is_fresh(unclamped, now, skew):
        assert is_fresh(bundle, now, skew)


def _fresh_by_the_rule(
    expires_at: Optional[float], issued_at: Optional[float], now: float, skew: float
) -> bool:
    """The documented rule: no expiry is fresh; otherwise more than the skew must be left,
    the skew taken as at least 0 and at most half the lifetime (when the issue time is known)."""
    if expires_at is None:
        return True
    margin = max(0.0, skew)
    if issued_at is not None:
        margin = min(margin, max(0.0, expires_at - issued_at) / 2.0)
    return expires_at - now > margin


@given(bundles(), times, skews, st.integers(min_value=0, max_value=10**6))
# A 30 s token 10 s in, skew 60: fresh only because the skew is clamped to 15 s.
@example(TokenBundle("at-example", expires_at=NOW + 30, issued_at=NOW), NOW + 10, 60.0, 1)
# 14 s left of a 30 s token: stale, the clamped skew (15 s) is not exceeded.
@example(TokenBundle("at-example", expires_at=NOW + 30, issued_at=NOW), NOW + 16, 60.0, 1)
def test_token_state_and_snapshot_agree_with_is_fresh(
    bundle: TokenBundle, now: float, skew: float, revision: int
) -> None:
    snapshot = Snapshot(Account("a"), bundle, revision=revision)
    state = snapshot.state
    # is_fresh() is TokenState.is_fresh() on the bundle's times: comparing the two would
    # compare the code with itself. Both are checked against the rule, restated here.
    expected = _fresh_by_the_rule(bundle.expires_at, bundle.issued_at, now, skew)
    assert state.is_fresh(now, skew) is expected
    assert is_fresh(bundle, now, skew) is expected
    assert state.revision == revision
    assert state.expires_at == bundle.expires_at
    assert state.issued_at == bundle.issued_at
    assert state.access_fingerprint == fingerprint(bundle.access_token)
    metadata_only = TokenState(revision, bundle.expires_at, bundle.issued_at, None)
    assert metadata_only.is_fresh(now, skew) is expected


@given(opt_times, times)
def test_refresh_expired_matches_definition(when: Optional[float], now: float) -> None:
    # the exact end is pinned in test_cleanup_dead_code.py
    assert refresh_expired(when, now) == (when is not None and now >= when)


# ----------------------------------------------------------------------------- jwt_expiry


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"sub": "u1", "exp": 1_750_000_000, "iat": 1_749_996_400}, 1_750_000_000.0),
        ({"exp": 1_750_000_000.5}, 1_750_000_000.5),
        ({"exp": 0}, 0.0),
        ({"exp": -5}, -5.0),
        ({"sub": "u1"}, None),
        ({"exp": "1750000000"}, None),
        ({"exp": None}, None),
        ({"exp": True}, None),
        ({"exp": False}, None),
        ({"exp": math.inf}, None),
        ({"exp": -math.inf}, None),
        ({"exp": math.nan}, None),
        ({"exp": [1750000000]}, None),
        ({"exp": {"value": 1}}, None),
        ([1, 2, 3], None),
        ("exp", None),
        (1750000000, None),
        (None, None),
        (True, None),
    ],
)
def test_jwt_expiry_payloads(payload: Any, expected: Optional[float]) -> None:
    assert jwt_expiry(jwt(payload)) == expected


def test_jwt_expiry_real_shape_and_padding() -> None:
    token = jwt({"iss": "https://issuer.example", "aud": ["api"], "exp": 1_750_000_123})
    assert jwt_expiry(token) == 1_750_000_123.0
    header, payload, signature = token.split(".")
    padded = payload + "=" * (-len(payload) % 4)
    assert jwt_expiry(f"{header}.{padded}.{signature}") == 1_750_000_123.0
    # Unsigned JWTs (alg none) have an empty signature part: still readable.
    assert jwt_expiry(f"{header}.{payload}.") == 1_750_000_123.0
    # 1e400 in JSON is infinity: unusable.
    assert jwt_expiry(jwt(raw=b'{"exp": 1e400}')) is None


@pytest.mark.parametrize(
    "token",
    [
        "",
        "opaque-access-token",
        "a.b",
        "a.b.c.d",
        "header..signature",
        "..",
        "a.!!!!.c",
        "a.\u00e9\u00e9\u00e9\u00e9.c",
        "a." + b64url(b"\xff\xfe\xfd") + ".c",
        "a." + b64url(b"not json") + ".c",
        "a." + b64url(b'{"exp": 1') + ".c",
        "a." + b64url(b"\x00") + ".c",
        "a.YQ.c",  # base64 of "a": not JSON
        "a.Y.c",  # impossible base64 length
    ],
)
def test_jwt_expiry_garbage(token: str) -> None:
    assert jwt_expiry(token) is None


def test_jwt_expiry_int_too_large_for_a_float() -> None:
    assert jwt_expiry(jwt(raw=b'{"exp": 1' + b"0" * 400 + b"}")) is None


def test_jwt_expiry_deeply_nested_payload() -> None:
    assert jwt_expiry(jwt(raw=b"[" * 100_000)) is None


@given(st.text())
def test_jwt_expiry_never_raises_on_text(token: str) -> None:
    result = jwt_expiry(token)
    assert result is None or math.isfinite(result)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)  # beyond float range
    | st.floats()
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)


@given(json_values, st.one_of(st.none(), json_values))
def test_jwt_expiry_never_raises_on_json_payloads(payload: Any, exp: Any) -> None:
    if isinstance(payload, dict) and exp is not None:
        payload = {**payload, "exp": exp}
    result = jwt_expiry(jwt(payload))
    assert result is None or math.isfinite(result)
    if isinstance(payload, dict):
        value = payload.get("exp")
        assert result == _as_finite_float(value)


def _as_finite_float(value: Any) -> float | None:
    """What jwt_expiry should make of an exp claim: ints beyond float range are unusable."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


@given(st.binary(max_size=200))
def test_jwt_expiry_never_raises_on_binary_payloads(raw: bytes) -> None:
    result = jwt_expiry(jwt(raw=raw))
    assert result is None or math.isfinite(result)


# ----------------------------------------------------------------------------- Snapshot


def test_snapshot_deprecated_loaders_return_the_inline_token() -> None:
    """A snapshot is a value (issue 11): the deprecated loaders warn, do no I/O and give
    the inline refresh token."""
    snap = Snapshot(Account("a"), TokenBundle("at-1", "rt-inline"))
    assert snap.has_refresh_token is True
    with pytest.warns(DeprecationWarning, match="read_refresh_token"):
        assert snap.load_refresh_token() == "rt-inline"
    with pytest.warns(DeprecationWarning, match="read_refresh_token"):
        assert snap.full_bundle() is snap.bundle


def test_snapshot_with_its_refresh_token_elsewhere_names_the_store_call() -> None:
    snap = Snapshot(Account("a"), TokenBundle("at-1"), has_refresh_token=True)
    for method in (snap.load_refresh_token, snap.full_bundle):
        warned = pytest.warns(DeprecationWarning, match="read_refresh_token")
        with warned, pytest.raises(StoreReadError) as info:
            method()
        assert "store.read_refresh_token(snapshot)" in str(info.value)


def test_snapshot_without_refresh_token() -> None:
    snap = Snapshot(Account("a"), TokenBundle("at-1"))
    assert snap.has_refresh_token is False
    with pytest.warns(DeprecationWarning, match="read_refresh_token"):
        assert snap.load_refresh_token() is None
    with pytest.warns(DeprecationWarning, match="read_refresh_token"):
        assert snap.full_bundle() is snap.bundle


def test_snapshot_has_no_loader_and_equality_ignores_the_write_report() -> None:
    bundle = TokenBundle("at-1")
    with pytest.raises(TypeError):
        Snapshot(Account("a"), bundle, 1, refresh_token_loader=lambda: "rt-x")  # type: ignore[call-arg]
    assert Snapshot(Account("a"), bundle, 1) != Snapshot(Account("a"), bundle, 2)


# ----------------------------------------------------------------------------- fingerprint


@given(st.text(min_size=1))
def test_fingerprint_is_short_stable_hex(token: str) -> None:
    tag = fingerprint(token)
    assert len(tag) == 10
    assert set(tag) <= set(string.hexdigits.lower())
    assert fingerprint(token) == tag


def test_fingerprint_distinguishes_tokens() -> None:
    tags = {fingerprint(f"at-{i}") for i in range(1000)}
    assert len(tags) == 1000


def test_a_client_ahead_by_almost_the_lifetime_does_not_refresh_per_request() -> None:
    """No iat, no expires_in: a JWT whose exp is only seconds ahead of this clock is taken
    as clock skew (a 300 s token seen 298.5 s late), not a token to renew at once."""
    from requests_refreshauth.bundle import access_token_expiry

    now = 1_000_000.0
    token = jwt({"exp": now + 1.5}, header={"alg": "none"}, signature="")
    expiry = access_token_expiry(None, token, now)
    assert expiry.clock_suspect
    assert is_fresh(
        TokenBundle(token, expires_at=expiry.expires_at, issued_at=now), now + 1.0, 60.0
    )
    # A token with a believable lifetime left is taken at its word.
    token = jwt({"exp": now + 600}, header={"alg": "none"}, signature="")
    assert access_token_expiry(None, token, now) == (now + 600, False)
