"""Token-endpoint response classification (``token_response.py``), table-driven plus fuzz.

Token values never reach an assertion message: comparisons involving secrets are reduced
to a boolean in a local variable first.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import logging
import string
from collections.abc import Iterator
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from requests.exceptions import RequestException
from support import examples, jwt

from requests_refreshauth import (
    AuthError,
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    TokenBundle,
    TokenExchangeError,
)
from requests_refreshauth.token_response import (
    bundle_from_token_response,
    interpret_token_response,
    parse_retry_after,
)

NOW = 1_750_000_000.0
PREVIOUS = TokenBundle(
    "at-previous-9f8e7d",
    "rt-previous-6c5b4a",
    expires_at=NOW - 5,
    refresh_expires_at=NOW + 86_400,
    scope=("openid", "api"),
    issued_at=NOW - 3605,
)


def body(**fields: Any) -> str:
    return json.dumps(fields)


def interpret(status: int, text: str, **kwargs: Any) -> TokenBundle:
    kwargs.setdefault("now", NOW)
    return interpret_token_response(status, text, **kwargs)


def secret_free(exc: BaseException, *secrets: str) -> bool:
    """Whether no secret appears in anything an exception shows."""
    texts = [str(exc), repr(exc), *map(str, exc.args)]
    for name in ("message", "error", "error_description"):
        value = getattr(exc, name, None)
        if value is not None:
            texts.append(str(value))
    return not any(secret in text for secret in secrets for text in texts)


# ----------------------------------------------------------------------------- success


def test_full_success_response() -> None:
    bundle = interpret(
        200,
        body(
            access_token="at-new-1",
            token_type="bearer",
            expires_in=3600,
            refresh_token="rt-new-1",
            refresh_expires_in=86_400,
            scope="openid api",
        ),
        previous=PREVIOUS,
        requested_scope=["openid", "api"],
    )
    ok = bundle.access_token == "at-new-1" and bundle.refresh_token == "rt-new-1"
    assert ok
    assert bundle.token_type == "Bearer"
    assert bundle.expires_at == NOW + 3600
    assert bundle.refresh_expires_at == NOW + 86_400
    assert bundle.issued_at == NOW
    assert bundle.scope == ("openid", "api")


@pytest.mark.parametrize(
    ("token_type", "expected"),
    [("bearer", "Bearer"), ("BEARER", "Bearer"), ("Bearer", "Bearer"), ("DPoP", "DPoP")],
)
def test_token_type(token_type: str, expected: str) -> None:
    assert interpret(200, body(access_token="at-1", token_type=token_type)).token_type == expected


@pytest.mark.parametrize("token_type", [None, "", "   ", 5, ["bearer"]])
def test_missing_or_odd_token_type_defaults_to_bearer(token_type: Any) -> None:
    fields: dict[str, Any] = {"access_token": "at-1"}
    if token_type is not None:
        fields["token_type"] = token_type
    assert interpret(200, body(**fields)).token_type == "Bearer"


def test_previous_refresh_token_kept_when_none_returned() -> None:
    bundle = interpret(
        200, body(access_token="at-new", token_type="Bearer", expires_in=60), previous=PREVIOUS
    )
    ok = bundle.refresh_token == PREVIOUS.refresh_token
    assert ok
    assert bundle.refresh_expires_at == PREVIOUS.refresh_expires_at
    assert bundle.scope == PREVIOUS.scope


@pytest.mark.parametrize("returned", [None, "", 42, "rt with space", "rt-\x00nul", "rt-\nnl"])
def test_unusable_refresh_token_keeps_previous(returned: Any) -> None:
    bundle = interpret(200, body(access_token="at-new", refresh_token=returned), previous=PREVIOUS)
    ok = bundle.refresh_token == PREVIOUS.refresh_token
    assert ok
    assert bundle.refresh_expires_at == PREVIOUS.refresh_expires_at


def test_no_previous_and_no_refresh_token() -> None:
    bundle = interpret(200, body(access_token="at-new", expires_in=60))
    assert bundle.refresh_token is None
    assert bundle.refresh_expires_at is None
    assert bundle.scope is None


def test_rotated_refresh_token_drops_previous_refresh_expiry() -> None:
    bundle = interpret(200, body(access_token="at-new", refresh_token="rt-new"), previous=PREVIOUS)
    ok = bundle.refresh_token == "rt-new"
    assert ok
    assert bundle.refresh_expires_at is None


@pytest.mark.parametrize(
    ("refresh_expires_in", "rotated", "expected"),
    [
        (86_400, True, NOW + 86_400),
        ("7200", True, NOW + 7200),
        (0, True, None),  # Keycloak: 0 means "no expiry"
        (600, False, NOW + 600),  # applies to the kept refresh token too
        (-5, False, PREVIOUS.refresh_expires_at),
        ("soon", False, PREVIOUS.refresh_expires_at),
        (True, True, None),
    ],
)
def test_refresh_expires_in(refresh_expires_in: Any, rotated: bool, expected: Any) -> None:
    fields: dict[str, Any] = {"access_token": "at-new", "refresh_expires_in": refresh_expires_in}
    if rotated:
        fields["refresh_token"] = "rt-new"
    bundle = interpret(200, body(**fields), previous=PREVIOUS)
    assert bundle.refresh_expires_at == expected


def test_refresh_expires_in_ignored_without_any_refresh_token() -> None:
    bundle = interpret(200, body(access_token="at-new", refresh_expires_in=600))
    assert bundle.refresh_token is None
    assert bundle.refresh_expires_at is None


@pytest.mark.parametrize(
    ("expires_in", "expected"),
    [
        (3600, NOW + 3600),
        ("3600", NOW + 3600),
        (3600.9, NOW + 3600.9),  # the raw value, not oauthlib's truncation
        (0, NOW),  # oauthlib drops a 0; the server meant "already expired"
        (0.5, NOW + 0.5),
        (" 120 ", NOW + 120),
        ("1e3", NOW + 1000),  # a number in a string is still a number
    ],
)
def test_expires_in(expires_in: Any, expected: float) -> None:
    assert interpret(200, body(access_token="at-1", expires_in=expires_in)).expires_at == expected


@pytest.mark.parametrize(
    "expires_in", ["soon", "", None, {}, [], {"s": 1}, [3600], -30, "NaN", float("nan")]
)
def test_garbage_expires_in_still_saves_the_token(expires_in: Any) -> None:
    bundle = interpret(
        200,
        body(access_token="at-keep", refresh_token="rt-keep", expires_in=expires_in),
        previous=PREVIOUS,
    )
    ok = bundle.access_token == "at-keep" and bundle.refresh_token == "rt-keep"
    assert ok
    assert bundle.expires_at is None  # unknown: used until the server says 401


def test_garbage_expires_in_falls_back_to_jwt_exp() -> None:
    token = jwt({"sub": "u", "exp": NOW + 300})
    bundle = interpret(200, body(access_token=token, expires_in="soon"))
    assert bundle.expires_at == NOW + 300


@pytest.mark.parametrize("raw", ["Infinity", "-Infinity", "1e400"])
def test_infinite_expires_in_still_saves_the_token(raw: str) -> None:
    text = '{"access_token": "at-keep", "refresh_token": "rt-keep", "expires_in": ' + raw + "}"
    bundle = interpret(200, text)
    ok = bundle.refresh_token == "rt-keep"
    assert ok


@pytest.mark.parametrize("field", ["expires_in", "refresh_expires_in"])
def test_huge_integer_expiry_still_saves_the_token(field: str) -> None:
    huge = "1" + "0" * 400
    text = f'{{"access_token": "at-keep", "refresh_token": "rt-keep", "{field}": {huge}}}'
    bundle = interpret(200, text)
    ok = bundle.refresh_token == "rt-keep"
    assert ok


def test_jwt_exp_used_when_expires_in_missing() -> None:
    token = jwt({"sub": "u", "exp": NOW + 900})
    assert interpret(200, body(access_token=token)).expires_at == NOW + 900
    # expires_in wins over the JWT claim.
    assert interpret(200, body(access_token=token, expires_in=60)).expires_at == NOW + 60
    # No expires_in, opaque token: unknown expiry.
    assert interpret(200, body(access_token="opaque-at")).expires_at is None


def test_changed_scope_is_saved_not_lost() -> None:
    bundle = interpret(
        200,
        body(access_token="at-narrow", refresh_token="rt-narrow", scope="openid"),
        requested_scope=["openid", "api", "offline_access"],
        previous=PREVIOUS,
    )
    ok = bundle.access_token == "at-narrow" and bundle.refresh_token == "rt-narrow"
    assert ok
    assert bundle.scope == ("openid",)


def test_changed_scope_with_garbage_expires_in_is_saved() -> None:
    bundle = interpret(
        200,
        body(access_token="at-narrow", refresh_token="rt-n", scope="x y", expires_in="later"),
        requested_scope=["openid"],
    )
    ok = bundle.refresh_token == "rt-n"
    assert ok
    assert bundle.scope == ("x", "y")


def test_wider_scope_and_list_scope() -> None:
    bundle = interpret(200, body(access_token="at-1", scope=["a", "b", "c"]), requested_scope=["a"])
    assert bundle.scope == ("a", "b", "c")


def test_scope_omitted_keeps_previous_scope() -> None:
    bundle = interpret(
        200, body(access_token="at-1"), previous=PREVIOUS, requested_scope=["openid", "api"]
    )
    assert bundle.scope == PREVIOUS.scope


@pytest.mark.parametrize("scope", [123, {"a": 1}, True])
def test_garbage_scope_still_saves_the_token(scope: Any) -> None:
    bundle = interpret(200, body(access_token="at-keep", refresh_token="rt-keep", scope=scope))
    ok = bundle.refresh_token == "rt-keep"
    assert ok


def test_null_error_field_in_success_is_not_an_error() -> None:
    text = body(access_token="at-keep", refresh_token="rt-keep", error=None, error_description=None)
    bundle = interpret(200, text)
    ok = bundle.refresh_token == "rt-keep"
    assert ok


def test_form_encoded_success_body() -> None:
    bundle = interpret(200, "access_token=at-form&token_type=bearer&scope=repo")
    ok = bundle.access_token == "at-form"
    assert ok
    assert bundle.scope == ("repo",)


@pytest.mark.parametrize("status", [200, 201, 203])
def test_any_2xx_with_token_is_success(status: int) -> None:
    assert isinstance(interpret(status, body(access_token="at-1")), TokenBundle)


def test_no_warning_escapes_for_changed_scope(recwarn: pytest.WarningsRecorder) -> None:
    interpret(200, body(access_token="at-1", scope="b"), requested_scope=["a"])
    assert len(recwarn) == 0


def test_bundle_from_token_response_directly() -> None:
    bundle = bundle_from_token_response(
        {"access_token": "at-1", "expires_in": 10, "scope": ["x"]}, now=NOW, previous=PREVIOUS
    )
    assert bundle.expires_at == NOW + 10
    assert bundle.scope == ("x",)
    ok = bundle.refresh_token == PREVIOUS.refresh_token
    assert ok
    with pytest.raises(RefreshTransientError):
        bundle_from_token_response({"access_token": None}, now=NOW)


# ----------------------------------------------------------------------------- unusable 2xx


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "<html><body>Login</body></html>",
        "Service Unavailable",
        "{}",
        "[]",
        "null",
        "42",
        '"at-1"',
        "[1, 2]",
        '{"token_type": "bearer", "expires_in": 3600}',
        body(access_token=""),
        body(access_token=None),
        body(access_token=123),
        body(access_token=["at-1"]),
        body(access_token={"v": "at-1"}),
        body(access_token="at with space"),
        body(access_token="at-with\ttab"),
        body(access_token="at-with\nnewline"),
        body(access_token="at-with\r\ncrlf"),
        body(access_token="at-with\x00nul"),
        body(access_token="at-with\x7fdel"),
        body(access_token=" at-leading"),
        body(access_token="at-trailing "),
        '{"access_token": "at-1"',  # truncated
    ],
)
def test_unusable_success_body_is_transient(text: str) -> None:
    with pytest.raises(RefreshTransientError) as info:
        interpret(200, text, previous=PREVIOUS)
    assert info.value.code == "AUTH_REFRESH_TRANSIENT"
    assert info.value.status_code in (200, None)
    clean = secret_free(info.value, "at-with", "at with", "at-leading", "at-trailing")
    assert clean


@pytest.mark.parametrize("char", ["\u00a0", "\u0085", "\u2003", "\u2028", "\u3000"])
def test_unicode_whitespace_in_access_token_is_transient(char: str) -> None:
    with pytest.raises(RefreshTransientError):
        interpret(200, body(access_token=f"at-uni{char}code"))


@pytest.mark.parametrize("token_type", ["Bearer\r\nX-Injected: 1", "DPoP\n", "Bear er"])
def test_token_type_with_control_characters_never_reaches_the_header(token_type: str) -> None:
    try:
        bundle = interpret(200, body(access_token="at-1", token_type=token_type))
    except AuthError:
        return  # refusing the response is acceptable too
    scheme = bundle.token_type
    assert scheme.isprintable()
    assert not any(ch.isspace() for ch in scheme)
    assert bundle.authorization.count(" ") == 1


def test_deeply_nested_error_body_is_typed() -> None:
    with pytest.raises(RefreshRejectedError):
        interpret(400, "[" * 100_000)


def test_deeply_nested_success_body_is_transient() -> None:
    with pytest.raises(RefreshTransientError):
        interpret(200, "[" * 100_000)


# ----------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 418, 422, 451])
@pytest.mark.parametrize("as_form", [False, True])
def test_invalid_grant_on_any_4xx_means_log_in_again(status: int, as_form: bool) -> None:
    text = (
        "error=invalid_grant&error_description=Refresh+token+reused"
        if as_form
        else body(error="invalid_grant", error_description="Refresh token reused")
    )
    with pytest.raises(RefreshExpiredError) as info:
        interpret(status, text, previous=PREVIOUS)
    exc = info.value
    assert exc.code == "AUTH_REFRESH_EXPIRED"
    assert exc.login_required
    assert "Refresh token reused" in str(exc)
    clean = secret_free(exc, PREVIOUS.access_token, PREVIOUS.refresh_token or "")
    assert clean


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, "invalid_client"),
        (401, "invalid_client"),
        (400, "unauthorized_client"),
        (400, "invalid_scope"),
        (400, "invalid_request"),
        (400, "unsupported_grant_type"),
        (403, "access_denied"),
        (400, "vendor_specific_error"),
    ],
)
def test_other_oauth_errors_are_rejected(status: int, error: str) -> None:
    with pytest.raises(RefreshRejectedError) as info:
        interpret(status, body(error=error, error_description="Client authentication failed"))
    exc = info.value
    assert exc.code == "AUTH_REFRESH_REJECTED"
    assert not exc.login_required
    assert exc.error == error
    assert exc.error_description == "Client authentication failed"
    assert exc.status_code == status
    assert error in str(exc)


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, ""),
        (401, "Unauthorized"),
        (403, "<html>Forbidden</html>"),
        (404, body(detail="Not Found")),
        (405, "[]"),
        (400, "null"),
    ],
)
def test_bare_4xx_is_rejected(status: int, text: str) -> None:
    with pytest.raises(RefreshRejectedError) as info:
        interpret(status, text)
    assert info.value.error is None
    assert info.value.error_description is None
    assert info.value.status_code == status
    assert str(status) in str(info.value)


@pytest.mark.parametrize("status", [300, 301, 302, 303, 307, 308])
def test_redirect_is_rejected(status: int) -> None:
    with pytest.raises(RefreshRejectedError) as info:
        interpret(status, "", retry_after_header="5")
    assert info.value.status_code == status
    assert info.value.error is None


def test_error_description_is_cleaned_and_bounded() -> None:
    description = "line one\r\nX-Injected: yes\x00\x1b[31m" + "x" * 1000
    with pytest.raises(RefreshRejectedError) as info:
        interpret(400, body(error="invalid_client", error_description=description))
    exc = info.value
    assert exc.error_description is not None
    assert exc.error_description.isprintable()
    assert len(exc.error_description) <= 301
    assert str(exc).isprintable()


# ----------------------------------------------------------------------------- transient


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599, 408, 429])
@pytest.mark.parametrize(
    "text", ["", "<html>Bad Gateway</html>", body(error="invalid_grant"), body(access_token="at-1")]
)
def test_server_trouble_is_transient(status: int, text: str) -> None:
    with pytest.raises(RefreshTransientError) as info:
        interpret(status, text, previous=PREVIOUS)
    assert info.value.status_code == status
    assert info.value.code == "AUTH_REFRESH_TRANSIENT"
    assert not info.value.login_required
    clean = secret_free(info.value, "at-1", PREVIOUS.access_token)
    assert clean


@pytest.mark.parametrize("status", [200, 400, 401, 503])
@pytest.mark.parametrize("error", ["temporarily_unavailable", "server_error"])
def test_transient_oauth_error_codes(status: int, error: str) -> None:
    with pytest.raises(RefreshTransientError) as info:
        interpret(status, body(error=error), retry_after_header="30")
    assert info.value.retry_after == 30
    assert info.value.status_code == status


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        ("  7 ", 7.0),
        ("0", 0.0),
        ("-5", 0.0),
        ("1.5", 1.5),
        ("999999", 3600.0),
        (email.utils.formatdate(NOW + 90, usegmt=True), 90.0),
        (email.utils.formatdate(NOW - 90, usegmt=True), 0.0),
        (email.utils.formatdate(NOW + 10**6, usegmt=True), 3600.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("Wed, 99 Foo 2015 07:28:00 GMT", None),
    ],
)
def test_retry_after(header: Optional[str], expected: Optional[float]) -> None:
    for status in (429, 503):
        with pytest.raises(RefreshTransientError) as info:
            interpret(status, "", retry_after_header=header)
        assert info.value.retry_after == expected
    assert parse_retry_after(header, NOW) == expected


@given(st.text(max_size=60), st.floats(min_value=0, max_value=4e9))
def test_parse_retry_after_never_raises(header: str, now: float) -> None:
    value = parse_retry_after(header, now)
    assert value is None or 0.0 <= value <= 3600.0


# ---------------------------------------------------------------------------- 200 with an error


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            body(
                error="bad_verification_code",
                error_description="The code passed is incorrect or expired.",
                error_uri="https://docs.github.com/apps/oauth",
            ),
            RefreshRejectedError,
        ),
        (body(error="invalid_grant"), RefreshExpiredError),
        (body(error="invalid_client"), RefreshRejectedError),
        ("error=invalid_grant&error_description=expired", RefreshExpiredError),
        (body(error="temporarily_unavailable"), RefreshTransientError),
    ],
)
def test_200_carrying_an_error_is_classified_like_4xx(text: str, expected: type[AuthError]) -> None:
    with pytest.raises(expected):
        interpret(200, text, previous=PREVIOUS)
    with pytest.raises(expected):
        interpret(400, text, previous=PREVIOUS)


def test_200_carrying_an_error_keeps_error_fields() -> None:
    with pytest.raises(RefreshRejectedError) as info:
        interpret(200, body(error="bad_verification_code", error_description="expired code"))
    assert info.value.error == "bad_verification_code"
    assert info.value.error_description == "expired code"
    assert info.value.status_code == 200


# ----------------------------------------------------------------------------- exchange grant


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, body(error="invalid_grant", error_description="code already used")),
        (400, body(error="invalid_client")),
        (401, ""),
        (403, "<html></html>"),
        (200, body(error="bad_verification_code")),
        (200, body(error="access_denied")),
    ],
)
def test_exchange_refusals_raise_token_exchange_error(status: int, text: str) -> None:
    with pytest.raises(TokenExchangeError) as info:
        interpret(status, text, grant="exchange")
    assert info.value.code == "AUTH_TOKEN_EXCHANGE_FAILED"


@pytest.mark.parametrize("status", [302, 307])
def test_exchange_redirect_raises_token_exchange_error(status: int) -> None:
    with pytest.raises(TokenExchangeError):
        interpret(status, "", grant="exchange")


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (503, ""),
        (429, ""),
        (400, body(error="temporarily_unavailable")),
        (400, body(error="slow_down")),
        (200, "not json"),
        (200, "{}"),
    ],
)
def test_exchange_transient(status: int, text: str) -> None:
    with pytest.raises(RefreshTransientError):
        interpret(status, text, grant="exchange")


def test_exchange_success() -> None:
    bundle = interpret(
        200,
        body(access_token="at-x", refresh_token="rt-x", expires_in=5, scope="a"),
        grant="exchange",
        requested_scope=["a", "b"],
    )
    ok = bundle.refresh_token == "rt-x"
    assert ok
    assert bundle.expires_at == NOW + 5


def test_error_tree() -> None:
    for cls in (
        RefreshExpiredError,
        RefreshRejectedError,
        RefreshTransientError,
        TokenExchangeError,
    ):
        assert issubclass(cls, AuthError)
        assert issubclass(cls, RequestException)


# ----------------------------------------------------------------------------- fuzz


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    lines: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Capture(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


_SAFE = string.ascii_letters + string.digits + "-._~+/="
fuzz_access_tokens = st.builds(
    lambda core, odd: "at-" + core + odd,
    st.text(_SAFE, min_size=12, max_size=40),
    # Unicode whitespace is left out: pinned by test_unicode_whitespace_in_access_token_...
    st.sampled_from(["", "", "", " ", "\t", "\n", "\r", "\x00", "\x7f", "\u00e9"]),
)
fuzz_refresh_tokens = st.text(_SAFE, min_size=12, max_size=40).map(lambda s: "rt-" + s)

# Scalars include infinities and integers too large for a float (OverflowError once).
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**300, max_value=10**400)
    | st.floats()
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)
_FIELDS = [
    "token_type",
    "expires_in",
    "refresh_token",
    "refresh_expires_in",
    "error",
    "error_description",
    "error_uri",
    "expires_at",
    "id_token",
]
_ERRORS = [
    "invalid_grant",
    "invalid_client",
    "invalid_request",
    "unauthorized_client",
    "temporarily_unavailable",
    "server_error",
    "slow_down",
    "authorization_pending",
    "missing_token",
    "",
]


@st.composite
def token_bodies(draw: Any, access_token: str, refresh_token: str) -> str:
    kind = draw(st.sampled_from(["fields", "fields", "fields", "json", "text", "form"]))
    if kind == "json":
        return json.dumps(draw(json_values))
    if kind == "text":
        return draw(st.text(max_size=80))
    doc: dict[str, Any] = draw(st.dictionaries(st.sampled_from(_FIELDS), json_values, max_size=5))
    if draw(st.integers(0, 3)):  # usually present: the success path is the risky one
        doc["access_token"] = access_token
    if draw(st.booleans()):
        doc["refresh_token"] = refresh_token
    if draw(st.booleans()):
        doc["error"] = draw(st.sampled_from(_ERRORS))
    if draw(st.booleans()):
        doc["scope"] = draw(st.text(max_size=20) | json_values)
    if draw(st.booleans()):
        doc["expires_in"] = draw(
            st.integers(min_value=-10, max_value=10**7)
            | st.integers(min_value=10**300, max_value=10**400)
            | st.text(max_size=6)
            | st.floats()
        )
    if kind == "form":
        return urlencode({k: v for k, v in doc.items() if isinstance(v, str)})
    return json.dumps(doc)


@st.composite
def exchanges(draw: Any) -> dict[str, Any]:
    access_token = draw(fuzz_access_tokens)
    refresh_token = draw(fuzz_refresh_tokens)
    return {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "status": draw(
            st.just(200)
            | st.sampled_from([201, 204, 301, 400, 401, 403, 408, 429, 500, 503])
            | st.integers(min_value=0, max_value=1000)
        ),
        "body": draw(token_bodies(access_token, refresh_token)),
        "previous": draw(
            st.none()
            | st.builds(
                lambda at, rt, rea: TokenBundle(at, rt, refresh_expires_at=rea),
                fuzz_access_tokens.filter(lambda s: s.isprintable() and " " not in s),
                st.none() | fuzz_refresh_tokens,
                st.none() | st.floats(min_value=0, max_value=4e9),
            )
        ),
        "requested_scope": draw(st.none() | st.lists(st.text(max_size=6), max_size=3)),
        "retry_after": draw(
            st.none()
            | st.text(max_size=30)
            | st.integers(-100, 10**9).map(str)
            | st.floats(0, 4e9).map(lambda t: email.utils.formatdate(t, usegmt=True))
        ),
        "grant": draw(st.sampled_from(["refresh", "exchange"])),
        "now": draw(st.floats(min_value=0, max_value=4e9)),
    }


@settings(max_examples=examples(200))
@given(exchanges())
def test_fuzz_only_typed_errors_and_no_token_leaks(case: dict[str, Any]) -> None:
    previous: Optional[TokenBundle] = case["previous"]
    secrets = [case["access_token"], case["refresh_token"]]
    if previous is not None:
        secrets.append(previous.access_token)
        if previous.refresh_token is not None:
            secrets.append(previous.refresh_token)
    bundle: Optional[TokenBundle] = None
    error: Optional[AuthError] = None
    with captured_logs() as logs:
        try:
            bundle = interpret_token_response(
                case["status"],
                case["body"],
                now=case["now"],
                previous=previous,
                requested_scope=case["requested_scope"],
                retry_after_header=case["retry_after"],
                grant=case["grant"],
            )
        except AuthError as exc:  # anything else fails the test
            error = exc
    if error is not None:
        clean = secret_free(error, *secrets)
        assert clean
        assert error.code.isupper()
        if isinstance(error, RefreshTransientError) and error.retry_after is not None:
            assert 0 <= error.retry_after <= 3600
    leaked_in_logs = any(secret in line for secret in secrets for line in logs)
    assert not leaked_in_logs
    if bundle is None:
        return
    assert 200 <= case["status"] < 300
    assert bundle.issued_at == case["now"]
    header_safe = bundle.access_token.isprintable() and " " not in bundle.access_token
    assert header_safe
    if bundle.refresh_token is not None:
        rt_safe = bundle.refresh_token.isprintable() and " " not in bundle.refresh_token
        assert rt_safe
    if previous is not None and bundle.refresh_token is None:
        assert previous.refresh_token is None


@given(st.integers(min_value=-1000, max_value=2000), st.text(max_size=100))
def test_fuzz_status_and_text(status: int, text: str) -> None:
    try:
        result = interpret(status, text)
    except AuthError:
        return
    assert isinstance(result, TokenBundle)
    assert 200 <= status < 300
