"""Behaviour of ``token_response.py`` that mutation testing found unpinned (``tox -e mutation``).

Each test states a behaviour a user relies on: which error a response becomes, what a
salvaged 2xx keeps, what the logs and messages tell a person. Messages are pinned by their
key phrases as whole words (:func:`says`), never by their exact wording. Token values never
reach an assertion message.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Optional
from urllib.parse import urlencode

import pytest
from support import jwt, says

from requests_refreshauth import (
    RefreshExpiredError,
    RefreshRejectedError,
    RefreshTransientError,
    TokenBundle,
    TokenExchangeError,
)
from requests_refreshauth.bundle import SKEWED_TOKEN_LIFETIME
from requests_refreshauth.token_response import (
    bundle_from_token_response,
    interpret_token_response,
)

NOW = 1_750_000_000.0
LOGGER = "requests_refreshauth.provider"
PREVIOUS = TokenBundle(
    "at-previous-9f8e7d",
    "rt-previous-6c5b4a",
    expires_at=NOW - 5,
    refresh_expires_at=NOW + 86_400,
    scope=("openid", "api"),
    issued_at=NOW - 3605,
    extra={"instance_url": "https://eu.example.test", "region": "eu"},
)
ROTATED = "rt-rotated-1a2b3c4d"


def ok(**fields: Any) -> TokenBundle:
    """A refresh answered 200 with ``fields`` as JSON."""
    return interpret_token_response(200, json.dumps(fields), now=NOW, previous=PREVIOUS)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    return caplog


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def infos_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]


def test_says_matches_whole_words_only() -> None:
    assert says("try again shortly.", "try again shortly")
    assert not says("XXtry again shortly.", "try again shortly")
    assert not says("check the token endpoint url", "URL")


# ------------------------------------------------ a 2xx with an error and no usable token


@pytest.mark.parametrize("malformed", [{"expires_in": "soon"}, {"expires_in": [1]}, {}])
def test_a_2xx_invalid_grant_is_a_dead_session_even_beside_a_malformed_field(
    malformed: dict[str, Any],
) -> None:
    """Judged by its error code: retrying a revoked grant would never succeed."""
    with pytest.raises(RefreshExpiredError) as caught:
        ok(error="invalid_grant", error_description="revoked", **malformed)
    assert caught.value.error == "invalid_grant"


@pytest.mark.parametrize("malformed", [{"expires_in": "soon"}, {}])
def test_a_2xx_other_error_is_a_rejection_even_beside_a_malformed_field(
    malformed: dict[str, Any],
) -> None:
    with pytest.raises(RefreshRejectedError) as caught:
        ok(error="invalid_client", **malformed)
    assert caught.value.error == "invalid_client"
    assert caught.value.status_code == 200


def test_a_2xx_transient_error_code_stays_transient_beside_a_malformed_field() -> None:
    with pytest.raises(RefreshTransientError):
        ok(error="temporarily_unavailable", expires_in="soon")


def test_a_2xx_error_with_an_unusable_token_and_a_malformed_field_is_judged_by_its_code() -> None:
    with pytest.raises(RefreshExpiredError):
        ok(error="invalid_grant", access_token="not usable", expires_in="soon")


def test_slack_dead_token_on_a_200_is_a_dead_session() -> None:
    """Slack's ``{"ok": false, "error": "token_revoked"}``: the body's fields decide."""
    with pytest.raises(RefreshExpiredError):
        ok(ok=False, error="token_revoked")
    with pytest.raises(RefreshRejectedError):  # the same name outside a Slack-shaped body
        ok(error="token_revoked")


def test_diagnostic_fields_of_a_200_error_reach_the_exception() -> None:
    with pytest.raises(RefreshExpiredError) as caught:
        ok(error="invalid_grant", trace_id="trace-7")
    assert caught.value.extra == {"trace_id": "trace-7"}


def test_diagnostic_fields_of_a_4xx_error_reach_the_exception() -> None:
    body = json.dumps({"error": "invalid_grant", "trace_id": "trace-8"})
    with pytest.raises(RefreshExpiredError) as caught:
        interpret_token_response(400, body, now=NOW, previous=PREVIOUS)
    assert caught.value.extra == {"trace_id": "trace-8"}


# ------------------------------------------------------------- "error": null / "" is none


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_error_is_no_error_and_is_not_reported(
    empty: Optional[str], logs: pytest.LogCaptureFixture
) -> None:
    bundle = ok(access_token="at-new-123456", refresh_token=ROTATED, expires_in=60, error=empty)
    rotated = bundle.refresh_token == ROTATED
    assert rotated and bundle.expires_at == NOW + 60
    assert warnings_of(logs) == []


@pytest.mark.parametrize("empty", [None, ""])
def test_an_empty_error_without_a_token_is_a_missing_token(empty: Optional[str]) -> None:
    """Not a rejection named after an empty error code: the token is what is missing."""
    with pytest.raises(RefreshTransientError) as caught:
        ok(error=empty, token_type="Bearer")
    assert caught.value.status_code == 200
    assert says(str(caught.value), "no access token", "try again shortly")


def test_an_empty_error_beside_malformed_fields_keeps_the_rotated_token(
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = ok(
        access_token="at-new-123456",
        refresh_token=ROTATED,
        error="",
        expires_in="soon",
        scope=["read", "write"],
        refresh_expires_in=600,
    )
    rotated = bundle.refresh_token == ROTATED
    assert rotated
    assert bundle.scope == ("read", "write")
    assert bundle.refresh_expires_at == NOW + 600
    assert bundle.expires_at is None
    assert len(warnings_of(logs)) == 1  # the malformed fields, not an error


# --------------------------------------------------------- a 2xx with a token and an error


def test_a_token_beside_a_real_error_is_a_success_and_says_so(
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = ok(
        access_token="at-new-123456",
        refresh_token=ROTATED,
        expires_in=90,
        scope=["read", "write"],
        error="invalid_grant",
    )
    rotated = bundle.refresh_token == ROTATED
    assert rotated and bundle.expires_at == NOW + 90
    assert bundle.scope == ("read", "write")
    (warning,) = warnings_of(logs)
    assert says(warning, "both a token and an error", "using the token")


def test_a_token_beside_a_real_error_and_a_malformed_field_is_a_success(
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = ok(
        access_token="at-new-123456",
        refresh_token=ROTATED,
        expires_in="soon",
        error="invalid_grant",
    )
    rotated = bundle.refresh_token == ROTATED
    assert rotated and bundle.expires_at is None
    assert len(warnings_of(logs)) == 2  # the error beside the token; the malformed field


def test_a_form_encoded_token_beside_an_error_is_a_success() -> None:
    body = urlencode(
        {"access_token": "at-new-123456", "refresh_token": ROTATED, "error": "bad_thing"}
    )
    bundle = interpret_token_response(200, body, now=NOW, previous=PREVIOUS)
    assert bundle.refresh_token == ROTATED


def test_an_unusable_token_beside_an_error_is_judged_by_the_error() -> None:
    with pytest.raises(RefreshExpiredError):
        ok(access_token="has a space", error="invalid_grant")


def test_a_plain_success_logs_nothing(logs: pytest.LogCaptureFixture) -> None:
    bundle = ok(access_token="at-new-123456", refresh_token=ROTATED, expires_in=30)
    assert bundle.expires_at == NOW + 30
    assert logs.records == []


# --------------------------------------------------------------------------- salvaging


@pytest.mark.parametrize("expires_in", ["soon", "2.5", [1], {"s": 1}])
def test_a_malformed_expires_in_is_dropped_and_reported(
    expires_in: Any, logs: pytest.LogCaptureFixture
) -> None:
    bundle = ok(access_token="at-new-123456", refresh_token=ROTATED, expires_in=expires_in)
    assert bundle.refresh_token == ROTATED
    (warning,) = warnings_of(logs)
    assert says(warning, "malformed optional fields", "ignored")


def test_a_valid_refresh_lifetime_beside_a_malformed_expires_in_is_kept() -> None:
    bundle = ok(
        access_token="at-new-123456",
        refresh_token=ROTATED,
        expires_in="soon",
        refresh_expires_in=1200,
    )
    assert bundle.refresh_expires_at == NOW + 1200


def test_a_valid_expires_in_beside_a_malformed_scope_is_kept() -> None:
    bundle = ok(access_token="at-new-123456", refresh_token=ROTATED, expires_in=45, scope={"a": 1})
    assert bundle.expires_at == NOW + 45
    assert bundle.scope == PREVIOUS.scope  # a scope we cannot read is no news


def test_a_fractional_expires_in_in_a_salvaged_body_is_kept_exactly() -> None:
    bundle = ok(access_token="at-new-123456", expires_in="2.5", scope={"a": 1})
    assert bundle.expires_at == NOW + 2.5


def test_a_form_encoded_body_that_oauthlib_cannot_read_is_transient() -> None:
    body = urlencode({"access_token": "at-new-123456", "expires_in": "soon"})
    with pytest.raises(RefreshTransientError) as caught:
        interpret_token_response(200, body, now=NOW, previous=PREVIOUS)
    assert caught.value.status_code == 200
    assert says(str(caught.value), "not JSON", "try again shortly")


# ----------------------------------------------------------------------- a changed scope


def test_a_changed_scope_is_accepted_and_logged_with_what_was_granted(
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = interpret_token_response(
        200,
        json.dumps({"access_token": "at-new-123456", "scope": "granted-only"}),
        now=NOW,
        previous=PREVIOUS,
        requested_scope=["openid", "api"],
    )
    assert bundle.scope == ("granted-only",)
    (info,) = infos_of(logs)
    assert says(info, "the server granted a different scope", "granted-only")


def test_a_changed_scope_in_a_salvaged_body_is_logged_too(
    logs: pytest.LogCaptureFixture,
) -> None:
    interpret_token_response(
        200,
        json.dumps({"access_token": "at-new-123456", "scope": "granted-only", "expires_in": "x"}),
        now=NOW,
        requested_scope=["openid"],
    )
    (info,) = infos_of(logs)
    assert says(info, "granted-only")


def test_the_same_scope_is_not_logged(logs: pytest.LogCaptureFixture) -> None:
    interpret_token_response(
        200,
        json.dumps({"access_token": "at-new-123456", "scope": "openid"}),
        now=NOW,
        requested_scope=["openid"],
    )
    assert infos_of(logs) == []


# ----------------------------------------------------------------- statuses and messages


@pytest.mark.parametrize("status", [408, 425, 429, 500, 503])
def test_transient_statuses(status: int) -> None:
    with pytest.raises(RefreshTransientError) as caught:
        interpret_token_response(status, "", now=NOW)
    assert caught.value.status_code == status
    assert says(str(caught.value), f"HTTP {status} to the refresh", "try again shortly")


@pytest.mark.parametrize("status", [400, 403, 409, 426])
def test_neighbours_of_the_transient_statuses_are_rejections(status: int) -> None:
    with pytest.raises(RefreshRejectedError):
        interpret_token_response(status, "", now=NOW)


def test_a_transient_status_names_the_request_and_the_servers_error_code() -> None:
    body = json.dumps({"error": "temporarily_unavailable"})
    with pytest.raises(RefreshTransientError) as caught:
        interpret_token_response(503, body, now=NOW, grant="client_credentials")
    assert says(str(caught.value), "HTTP 503 (temporarily_unavailable)", "client-credentials grant")


def test_a_long_error_code_is_bounded_in_the_message() -> None:
    code = "e" * 150
    with pytest.raises(RefreshTransientError) as caught:
        interpret_token_response(503, json.dumps({"error": code}), now=NOW)
    message = str(caught.value)
    assert code[:90] in message and code not in message


@pytest.mark.parametrize("status", [101, 302])
def test_a_redirect_or_informational_answer_points_at_the_url(status: int) -> None:
    with pytest.raises(RefreshRejectedError) as caught:
        interpret_token_response(status, "", now=NOW)
    assert caught.value.status_code == status
    assert says(str(caught.value), f"HTTP {status}", "check the token endpoint URL")
    with pytest.raises(TokenExchangeError) as exchange:
        interpret_token_response(status, "", now=NOW, grant="exchange")
    assert says(str(exchange.value), f"HTTP {status}", "check the token endpoint URL")


def test_a_missing_token_on_a_refresh_says_to_try_again() -> None:
    with pytest.raises(RefreshTransientError) as caught:
        ok(token_type="Bearer")
    message = str(caught.value)
    assert caught.value.status_code == 200
    assert says(message, "refresh response", "no access token", "try again shortly")
    assert not says(message, "nothing was stored")


def test_a_missing_token_on_a_login_says_what_to_check() -> None:
    with pytest.raises(RefreshTransientError) as caught:
        interpret_token_response(200, json.dumps({"ok": True}), now=NOW, grant="exchange")
    message = str(caught.value)
    assert caught.value.status_code == 200
    assert says(message, "token exchange response", "nothing was stored", "Check the scopes")
    assert says(message, "logging in again", "Slack, for one", "authed_user", "which is not read")
    assert not says(message, "try again shortly")


def test_a_missing_token_type_under_oauthlibs_strict_mode_is_a_missing_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OAUTHLIB_STRICT_TOKEN_TYPE", "1")
    with pytest.raises(RefreshTransientError) as caught:
        ok(access_token="at-new-123456")
    assert caught.value.status_code == 200


def test_a_body_that_is_not_json_says_so() -> None:
    with pytest.raises(RefreshTransientError) as caught:
        interpret_token_response(200, "[1, 2]", now=NOW)
    assert caught.value.status_code == 200
    assert says(str(caught.value), "(not JSON, or the wrong shape)", "try again shortly")


# ------------------------------------------------------------ bundle_from_token_response


def test_an_unusable_access_token_says_so() -> None:
    with pytest.raises(RefreshTransientError) as caught:
        bundle_from_token_response({"access_token": "two words"}, now=NOW)
    assert says(str(caught.value), "The authorization server", "no usable access token")
    assert says(str(caught.value), "try again shortly")


def test_a_missing_token_type_is_bearer_silently(logs: pytest.LogCaptureFixture) -> None:
    bundle = bundle_from_token_response({"access_token": "at-new-123456"}, now=NOW)
    assert bundle.token_type == "Bearer"
    assert logs.records == []


def test_a_malformed_token_type_is_bearer_and_reported(logs: pytest.LogCaptureFixture) -> None:
    bundle = bundle_from_token_response(
        {"access_token": "at-new-123456", "token_type": "no spaces allowed"}, now=NOW
    )
    assert bundle.token_type == "Bearer"
    (warning,) = warnings_of(logs)
    assert says(warning, "malformed token_type", "Bearer")


def test_an_expired_jwt_without_iat_is_used_briefly_and_the_clock_blamed(
    logs: pytest.LogCaptureFixture,
) -> None:
    token = jwt({"sub": "alice", "exp": int(NOW) - 3600})
    bundle = bundle_from_token_response({"access_token": token}, now=NOW)
    assert bundle.expires_at == NOW + SKEWED_TOKEN_LIFETIME
    (warning,) = warnings_of(logs)
    assert says(warning, "JWT exp", "has no iat", "check this machine's time")
    assert says(warning, f"{SKEWED_TOKEN_LIFETIME:.0f}s before refreshing")


def test_a_non_ascii_refresh_token_is_ignored_and_reported(
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = bundle_from_token_response(
        {"access_token": "at-new-123456", "refresh_token": "rt-ünïcode-123"},
        now=NOW,
        previous=PREVIOUS,
    )
    kept = bundle.refresh_token == PREVIOUS.refresh_token
    assert kept
    (warning,) = warnings_of(logs)
    assert says(warning, "not visible ASCII", "keeping the old one")


def test_an_empty_refresh_token_is_no_rotation_and_not_reported(
    logs: pytest.LogCaptureFixture,
) -> None:
    bundle = bundle_from_token_response(
        {"access_token": "at-new-123456", "refresh_token": ""}, now=NOW, previous=PREVIOUS
    )
    kept = bundle.refresh_token == PREVIOUS.refresh_token
    assert kept and logs.records == []


@pytest.mark.parametrize(
    ("fields", "lifetime"),
    [
        ({"refresh_expires_in": 0.5}, 0.5),
        ({"refresh_token_expires_in": 100}, 100),
        ({"refresh_expires_in": 0, "refresh_token_expires_in": 100}, 100),
        ({"refresh_expires_in": 300, "refresh_token_expires_in": 100}, 100),
        ({"refresh_expires_in": 0}, None),
    ],
)
def test_refresh_lifetime_from_either_spelling(
    fields: dict[str, Any], lifetime: Optional[float]
) -> None:
    bundle = bundle_from_token_response(
        {"access_token": "at-new-123456", "refresh_token": ROTATED, **fields}, now=NOW
    )
    assert bundle.refresh_expires_at == (None if lifetime is None else NOW + lifetime)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [("read write", ("read", "write")), ("   ", None), ("", None), (["a", " "], ("a",))],
)
def test_a_scope_given_directly(scope: Any, expected: Optional[tuple[str, ...]]) -> None:
    """``bundle_from_token_response`` is public: a string scope need not pass oauthlib."""
    bundle = bundle_from_token_response(
        {"access_token": "at-new-123456", "scope": scope}, now=NOW, previous=PREVIOUS
    )
    assert bundle.scope == expected


def test_extra_fields_are_kept_and_merged_over_the_previous_ones() -> None:
    bundle = bundle_from_token_response(
        {"access_token": "at-new-123456", "instance_url": "https://us.example.test"},
        now=NOW,
        previous=PREVIOUS,
    )
    assert dict(bundle.extra) == {"instance_url": "https://us.example.test", "region": "eu"}
    first = bundle_from_token_response(
        {"access_token": "at-new-123456", "instance_url": "https://us.example.test"}, now=NOW
    )
    assert dict(first.extra) == {"instance_url": "https://us.example.test"}


def test_a_field_echoing_the_previous_tokens_is_not_kept() -> None:
    bundle = bundle_from_token_response(
        {
            "access_token": "at-new-123456",
            "refresh_token": ROTATED,
            "old": PREVIOUS.refresh_token,
            "older": PREVIOUS.access_token,
            "fine": "kept",
        },
        now=NOW,
        previous=PREVIOUS,
    )
    assert set(bundle.extra) == {"fine", "instance_url", "region"}


def test_a_field_echoing_a_request_secret_is_not_kept() -> None:
    body = json.dumps(
        {"access_token": "at-new-123456", "echo": "client-secret-0042", "fine": "kept"}
    )
    bundle = interpret_token_response(200, body, now=NOW, secrets=("client-secret-0042",))
    assert set(bundle.extra) == {"fine"}
