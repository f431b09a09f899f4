"""``WWW-Authenticate`` parsing (RFC 7235 §4.1, RFC 6750 §3) and the refresh decision."""

from __future__ import annotations

import string
from typing import Any, Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st

from requests_refreshauth.challenge import parse_challenges, refresh_may_help

# ----------------------------------------------------------------------------- RFC examples


def test_rfc6750_realm_only() -> None:
    header = 'Bearer realm="example"'
    assert parse_challenges(header) == [("bearer", {"realm": "example"})]
    assert refresh_may_help(header)


def test_rfc6750_invalid_token_example() -> None:
    header = (
        'Bearer realm="example",\r\n                       error="invalid_token",\r\n'
        '                       error_description="The access token expired"'
    )
    assert parse_challenges(header) == [
        (
            "bearer",
            {
                "realm": "example",
                "error": "invalid_token",
                "error_description": "The access token expired",
            },
        )
    ]
    assert refresh_may_help(header)


def test_rfc6750_insufficient_scope() -> None:
    header = (
        'Bearer realm="example", error="insufficient_scope", '
        'error_description="The request requires higher privileges than provided by the '
        'access token.", scope="openid profile"'
    )
    [(scheme, params)] = parse_challenges(header)
    assert scheme == "bearer"
    assert params["error"] == "insufficient_scope"
    assert params["scope"] == "openid profile"
    assert not refresh_may_help(header)


def test_rfc7235_multiple_challenges_example() -> None:
    header = 'Newauth realm="apps", type=1, title="Login to \\"apps\\"", Basic realm="simple"'
    assert parse_challenges(header) == [
        ("newauth", {"realm": "apps", "type": "1", "title": 'Login to "apps"'}),
        ("basic", {"realm": "simple"}),
    ]
    assert refresh_may_help(header)


# ----------------------------------------------------------------------------- decision table


@pytest.mark.parametrize(
    ("header", "may_help"),
    [
        (None, True),
        ("", True),
        ("   ", True),
        ("Bearer", True),
        ('Bearer realm="api"', True),
        ('Bearer error="invalid_token"', True),
        ('Bearer error="invalid_request"', True),
        ('Bearer error="insufficient_scope"', False),
        ("Bearer error=insufficient_scope", False),  # token form, not quoted
        ('Bearer error = "insufficient_scope"', False),  # BWS around "="
        ('Bearer   error="insufficient_scope"', False),
        ('BEARER ERROR="INSUFFICIENT_SCOPE"', False),
        ("bearer Error=Insufficient_Scope", False),
        ('Basic realm="x", Bearer error="insufficient_scope"', False),
        ('Bearer error="insufficient_scope", Basic realm="x"', False),
        ('Bearer realm="x", scope="a b", error="insufficient_scope"', False),
        # The error belongs to the Basic challenge, not to Bearer.
        ('Bearer realm="y", Basic realm="x", error="insufficient_scope"', True),
        # Only Bearer challenges count.
        ('DPoP error="insufficient_scope"', True),
        ('Basic error="insufficient_scope"', True),
        ('Bearer error="insufficient_scope_not"', True),
        ('Bearer error_description="insufficient_scope"', True),
        ('Bearer realm="error=insufficient_scope"', True),
        # Two Bearer challenges: either one saying insufficient_scope is enough.
        ('Bearer error="invalid_token", Bearer error="insufficient_scope"', False),
    ],
)
def test_refresh_may_help(header: Optional[str], may_help: bool) -> None:
    assert refresh_may_help(header) is may_help


# ----------------------------------------------------------------------------- quoting


def test_commas_inside_quoted_strings() -> None:
    header = (
        'Bearer realm="a, b", error_description="x, y, and z", '
        'error="insufficient_scope", Basic realm="c,d"'
    )
    assert parse_challenges(header) == [
        (
            "bearer",
            {"realm": "a, b", "error_description": "x, y, and z", "error": "insufficient_scope"},
        ),
        ("basic", {"realm": "c,d"}),
    ]
    assert not refresh_may_help(header)


def test_escaped_quotes_and_backslashes() -> None:
    header = r'Bearer error_description="say \"hi, there\" \\ ok", error="insufficient_scope"'
    assert parse_challenges(header) == [
        ("bearer", {"error_description": 'say "hi, there" \\ ok', "error": "insufficient_scope"})
    ]
    assert not refresh_may_help(header)


def test_parameter_names_lowercased_values_kept() -> None:
    [(scheme, params)] = parse_challenges('BeArEr Realm="MiXeD", ERROR_URI="https://X/Y"')
    assert scheme == "bearer"
    assert params == {"realm": "MiXeD", "error_uri": "https://X/Y"}


def test_token68_challenge_then_bearer() -> None:
    header = (
        "Negotiate YIIB+gYGKwYBBQUCoIIB7jCCAeqgDTALBgkqhkiG9xIBAgI=, "
        'Bearer error="insufficient_scope"'
    )
    schemes = [scheme for scheme, _ in parse_challenges(header)]
    assert schemes == ["negotiate", "bearer"]
    assert not refresh_may_help(header)


def test_empty_list_elements_are_skipped() -> None:
    header = ', , Bearer realm="x",, error="insufficient_scope" ,'
    assert parse_challenges(header) == [("bearer", {"realm": "x", "error": "insufficient_scope"})]
    assert not refresh_may_help(header)


# ----------------------------------------------------------------------------- garbage


@pytest.mark.parametrize(
    "header",
    [
        '"',
        '""',
        ",,,",
        "=",
        "==,==",
        'error="insufficient_scope"',  # a parameter without a scheme
        'Bearer "',
        'Bearer error="insufficient_scope',  # unterminated quote
        'Bearer error="\\',
        "Bearer error=",
        "Bearer =insufficient_scope",
        "\x00\x01\x02",
        "Bearer\terror=insufficient_scope",
        "Bearer realm=\u00e9\u00e8, error=\u2028",
        "\\" * 50,
        '"' * 51,
        "Bearer " + "a=b, " * 2000,
    ],
)
def test_garbage_never_raises(header: str) -> None:
    challenges = parse_challenges(header)
    assert isinstance(challenges, list)
    assert isinstance(refresh_may_help(header), bool)


@given(st.text(max_size=200))
def test_fuzz_text_never_raises(header: str) -> None:
    challenges = parse_challenges(header)
    for scheme, params in challenges:
        assert isinstance(scheme, str)
        assert scheme == scheme.lower()
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items())
        assert all(k == k.lower() for k in params)
    assert isinstance(refresh_may_help(header), bool)


_ALPHABET = "Bearer error=\"insufficient_scope\", \\Basic realm='x'\t"


@given(st.text(_ALPHABET, max_size=120))
def test_fuzz_near_miss_text_never_raises(header: str) -> None:
    parse_challenges(header)
    assert isinstance(refresh_may_help(header), bool)


# ----------------------------------------------------------------------------- round trip

_TCHAR = string.ascii_letters + string.digits + "!#$%&'*+.^_`|~-"
tokens = st.text(_TCHAR, min_size=1, max_size=10)
# Quoted-string content: printable ASCII (qdtext and quoted-pair), no CR/LF.
qcontent = st.text(
    string.ascii_letters + string.digits + ' ,;=:/"\\-._~!#$%&()*+<>?@[]^`{|}', max_size=20
)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def challenge_lists(draw: Any) -> list[tuple[str, dict[str, str]]]:
    result = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        scheme = draw(tokens)
        names = draw(st.lists(tokens.map(str.lower), unique=True, max_size=4))
        params = {name: draw(qcontent) for name in names}
        result.append((scheme, params))
    return result


def _serialise(challenges: list[tuple[str, dict[str, str]]], quote_all: bool) -> str:
    parts = []
    for scheme, params in challenges:
        rendered = [
            f"{name}={_quote(value)}"
            if quote_all or not value or not set(value) <= set(_TCHAR)
            else f"{name}={value}"
            for name, value in params.items()
        ]
        parts.append(scheme + (" " + ", ".join(rendered) if rendered else ""))
    return ", ".join(parts)


@given(challenge_lists(), st.booleans())
def test_round_trip(challenges: list[tuple[str, dict[str, str]]], quote_all: bool) -> None:
    header = _serialise(challenges, quote_all)
    expected = [(scheme.lower(), params) for scheme, params in challenges]
    assert parse_challenges(header) == expected


@given(challenge_lists(), challenge_lists(), st.sampled_from(["Bearer", "bearer", "BEARER"]))
def test_insufficient_scope_found_among_other_challenges(
    before: list[tuple[str, dict[str, str]]],
    after: list[tuple[str, dict[str, str]]],
    bearer: str,
) -> None:
    target = (bearer, {"realm": "api", "error": "insufficient_scope"})
    header = _serialise([*before, target, *after], quote_all=False)
    assert not refresh_may_help(header)
