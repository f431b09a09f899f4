"""Server-controlled text: secrets scrubbed in every encoding, terminals protected, and
every failure of the CLI typed (issue 8, items 9, 12 and 15)."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qs, quote, quote_plus, urlencode, urlsplit

import pytest
import requests
from fakes import bundle
from localhttp import LocalServer, Recorded, Reply, ServerFactory, client_session

from requests_refreshauth import (
    Account,
    AuthError,
    MemoryTokenStore,
    OAuthFlowError,
    PkceProvider,
    RefreshRejectedError,
    RetryPolicy,
    TokenBundle,
)
from requests_refreshauth.cli import EXIT_CODES, AuthCommands
from requests_refreshauth.login import device_login, login
from requests_refreshauth.token_response import interpret_token_response

#: A refresh token and a client secret with the characters form encoding changes.
REFRESH = "rt/abc+def=ghi~jkl.mno_pqr-stu/vwx+yz0123456789ABCDEFG"  # 51 characters
SECRET = 's3cr3t/with spaces&and=signs+plus%percent"quote\\back'
ESC = "\x1b]0;pwned\x07\x1b[2J"
#: Characters a terminal acts on instead of showing.
CONTROLS = [chr(c) for c in range(0x20) if c not in (0x0A,)] + ["\x7f", "\x9b", "\x85"]
BIDI = ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"]


def _formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def everything_shown(exc: BaseException) -> str:
    """Every text an exception exposes: str, repr, args, attributes, a traceback."""
    return "\n".join([str(exc), repr(exc), repr(exc.args), repr(vars(exc)), _formatted(exc)])


def leaks(text: str, secret: str, *, window: int = 8) -> list[str]:
    """Pieces of ``secret`` (any ``window`` characters, in any encoding used) in ``text``."""
    found = []
    for form in {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1]}:
        for start in range(0, max(1, len(form) - window + 1)):
            piece = form[start : start + window]
            if piece in text:
                found.append(piece)
    return found


def echo_body(status: int = 400, error: str = "invalid_grant") -> Any:
    """A token endpoint echoing the request body (and headers) in its error description."""

    def handler(request: Recorded) -> Reply:
        description = request.body.decode("utf-8")
        if request.authorization:
            description += f" auth={request.authorization}"
        return Reply.json({"error": error, "error_description": description}, status)

    return handler


def provider_for(server: LocalServer, **kwargs: Any) -> PkceProvider:
    options: dict[str, Any] = {
        "client_id": "cli-app",
        "token_endpoint": server.url_for("/token"),
        "session": client_session(),
        "timeout": 3,
        "retry": RetryPolicy(attempts=1),
    }
    options.update(kwargs)
    return PkceProvider(**options)


def current(refresh: str = REFRESH) -> TokenBundle:
    return TokenBundle(access_token="at-previous-0123456789", refresh_token=refresh, expires_at=1.0)


# =========================================================================== item 9


@pytest.mark.parametrize("error", ["invalid_grant", "invalid_client", "invalid_request"])
@pytest.mark.parametrize("client_auth", ["post", "basic"])
def test_a_server_echoing_the_form_body_leaks_no_secret(
    servers: ServerFactory, error: str, client_auth: str
) -> None:
    idp = servers()
    idp.route("/token", echo_body(error=error))
    provider = provider_for(idp, client_secret=SECRET, client_auth=client_auth)
    with pytest.raises(AuthError) as caught:
        provider.renew(current())
    (sent,) = idp.requests
    assert quote_plus(REFRESH) in sent.body.decode()  # the body really was form-encoded
    shown = everything_shown(caught.value)
    basic = base64.b64encode(f"cli-app:{quote_plus(SECRET)}".encode()).decode()
    assert leaks(shown, REFRESH) == []
    assert leaks(shown, SECRET) == []
    assert basic[8:20] not in shown
    assert "grant_type=refresh_token" in shown  # the rest of the echo is kept


def test_descriptions_are_scrubbed_before_they_are_truncated(servers: ServerFactory) -> None:
    idp = servers()
    for pad in (250, 270, 280, 290):
        idp.route(
            "/token",
            Reply.json({"error": "invalid_client", "error_description": "x" * pad + REFRESH}, 400),
        )
        with pytest.raises(RefreshRejectedError) as caught:
            provider_for(idp).renew(current())
        assert leaks(everything_shown(caught.value), REFRESH) == [], pad


def test_the_error_code_itself_is_scrubbed(servers: ServerFactory) -> None:
    idp = servers()
    idp.route("/token", Reply.json({"error": f"bad_{REFRESH}", "error_description": "no"}, 400))
    with pytest.raises(RefreshRejectedError) as caught:
        provider_for(idp).renew(current())
    assert caught.value.error is not None
    assert REFRESH not in caught.value.error
    assert leaks(everything_shown(caught.value), REFRESH) == []


def test_the_previous_access_token_is_scrubbed(servers: ServerFactory) -> None:
    idp = servers()
    previous = current()
    idp.route(
        "/token",
        Reply.json({"error": "invalid_grant", "error_description": previous.access_token}, 400),
    )
    with pytest.raises(AuthError) as caught:
        provider_for(idp).renew(previous)
    assert previous.access_token not in everything_shown(caught.value)


def test_a_one_character_secret_does_not_mangle_the_message(servers: ServerFactory) -> None:
    idp = servers()
    idp.route(
        "/token",
        Reply.json(
            {"error": "invalid_request", "error_description": "refresh_token=r&reason=rejected"},
            400,
        ),
    )
    with pytest.raises(RefreshRejectedError) as caught:
        provider_for(idp).renew(current("r"))
    text = str(caught.value)
    assert "server rejected the refresh" in text  # our words survive
    assert "reason=rejected" in text  # so do the server's
    assert "refresh_token=***" in text  # and the short secret standing alone is hidden
    assert caught.value.error == "invalid_request"


def test_the_exchanged_code_and_verifier_are_scrubbed(servers: ServerFactory) -> None:
    idp = servers()
    idp.route("/token", echo_body(error="invalid_grant"))
    provider = provider_for(idp, authorization_endpoint=idp.url_for("/authorize"))
    request = provider.authorization_request("http://127.0.0.1:5555/callback")
    code = "code/with+odd=chars-0123456789abcdef"
    with pytest.raises(AuthError) as caught:
        provider.exchange_code(code, request)
    shown = everything_shown(caught.value)
    assert leaks(shown, code) == []
    assert leaks(shown, request.code_verifier) == []


def _device_server(servers: ServerFactory, device: Any, token: Any) -> LocalServer:
    idp = servers()
    idp.route("/device", device)
    idp.route("/token", token)
    return idp


def test_the_device_authorization_error_leaks_no_client_secret(servers: ServerFactory) -> None:
    idp = _device_server(servers, echo_body(error="invalid_client"), Reply(500))
    provider = provider_for(
        idp,
        client_secret=SECRET,
        client_auth="post",
        device_authorization_endpoint=idp.url_for("/device"),
    )
    with pytest.raises(OAuthFlowError) as caught:
        device_login(MemoryTokenStore(), provider, say=lambda _m: None, sleep=lambda _s: None)
    assert "client_id=cli-app" in str(caught.value)
    assert leaks(everything_shown(caught.value), SECRET) == []


def test_the_device_poll_error_leaks_no_device_code(servers: ServerFactory) -> None:
    device_code = "dc/very+secret=device-code-0123456789"
    answer = {
        "device_code": device_code,
        "user_code": "ABCD-EFGH",
        "verification_uri": "https://example.com/device",
        "expires_in": 60,
        "interval": 1,
    }
    idp = _device_server(servers, Reply.json(answer), echo_body(error="invalid_client"))
    provider = provider_for(idp, device_authorization_endpoint=idp.url_for("/device"))
    with pytest.raises(AuthError) as caught:
        device_login(MemoryTokenStore(), provider, say=lambda _m: None, sleep=lambda _s: None)
    assert "device_code" in str(caught.value)
    assert leaks(everything_shown(caught.value), device_code) == []


def _callback_opener(**params: str) -> Any:
    """A "browser" that answers the loopback callback with ``params`` (+ the state)."""

    def open_url(url: str) -> bool:
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        values = {k: v.replace("{state}", query["state"]) for k, v in params.items()}
        values["state"] = query["state"]
        session = client_session()
        session.get(f"{query['redirect_uri']}?{urlencode(values)}", timeout=5)
        return True

    return open_url


def test_the_callback_error_description_is_scrubbed_and_neutralised(
    servers: ServerFactory,
) -> None:
    idp = servers()
    provider = provider_for(idp, authorization_endpoint=idp.url_for("/authorize"))
    opener = _callback_opener(error=f"denied{ESC}", error_description=f"state {{state}} {ESC}")
    with pytest.raises(OAuthFlowError) as caught:
        login(MemoryTokenStore(), provider, open_browser=opener, timeout=10, say=lambda _m: None)
    text = str(caught.value)
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b" in text  # visibly neutralised, not silently dropped
    assert "state ***" in text


# =========================================================================== scrub unit


def test_scrub_covers_every_encoding_and_keeps_short_secrets_whole_token_only() -> None:
    from requests_refreshauth._scrub import scrub

    secrets = [REFRESH, SECRET]
    for form in (
        REFRESH,
        quote_plus(REFRESH),
        quote(REFRESH, safe=""),
        quote(REFRESH),
        re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote_plus(REFRESH)),  # %2f
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET)[1:-1].replace("/", "\\/"),  # PHP escapes slashes
        quote_plus(SECRET),
    ):
        assert scrub(f"<{form}>", secrets) == "<***>", form
    assert scrub("error r here; referrer", ["r"]) == "error *** here; referrer"
    assert scrub("no secrets", []) == "no secrets"


# =========================================================================== item 12


def test_terminal_safe_makes_controls_visible_and_keeps_text() -> None:
    from requests_refreshauth._scrub import terminal_safe

    for char in CONTROLS + BIDI + ["\u200b", "\u2028", "\ufeff"]:
        shown = terminal_safe(f"a{char}b")
        assert shown.isprintable() and shown != "ab", repr(char)
        assert shown.startswith("a\\") and shown.endswith("b"), repr(shown)
    assert terminal_safe("\x1b") == "\\x1b"
    assert terminal_safe("\u202e") == "\\u202e"
    assert terminal_safe("café 名前 Ünïcode ok") == "café 名前 Ünïcode ok"
    assert terminal_safe("two\nlines\tok", multiline=True) == "two\nlines\tok"
    assert terminal_safe("two\nlines") == "two\\nlines"


def test_a_hostile_error_code_reaches_errors_neutralised() -> None:
    with pytest.raises(RefreshRejectedError) as caught:
        interpret_token_response(
            400,
            json.dumps({"error": f"x{ESC}\u202e", "error_description": f"d{ESC}"}),
            now=0.0,
        )
    exc = caught.value
    for text in (str(exc), exc.error or "", exc.error_description or ""):
        assert text.isprintable(), repr(text)
    assert "\\x1b" in str(exc)


def test_a_hostile_error_code_in_a_5xx_is_neutralised() -> None:
    with pytest.raises(AuthError) as caught:
        interpret_token_response(503, json.dumps({"error": f"busy{ESC}"}), now=0.0)
    assert str(caught.value).isprintable(), str(caught.value)


class _Streams:
    def __init__(self) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()

    def commands(self, store: Any, provider: Any = None) -> AuthCommands:
        return AuthCommands(store, provider, prog="mycli auth", stdout=self.out, stderr=self.err)

    def assert_terminal_safe(self) -> None:
        for name, text in (("stdout", self.out.getvalue()), ("stderr", self.err.getvalue())):
            for line in text.split("\n"):
                assert line.isprintable(), f"{name}: {line!r}"


HOSTILE_LABEL = f"Alice{ESC}\u202egnp.exe\u200b"


@pytest.mark.parametrize(
    "verb", ["status", "accounts_list", "accounts_use", "logout", "status_json"]
)
def test_account_labels_and_ids_are_neutralised_in_cli_output(verb: str) -> None:
    store = MemoryTokenStore()
    store.save(
        Account(f"id{ESC}", HOSTILE_LABEL),
        bundle(300, scope=f"api{ESC} x"),
        make_default=True,
    )
    streams = _Streams()
    commands = streams.commands(store)
    if verb == "accounts_use":
        status = commands.run(commands.accounts_use, ref=f"id{ESC}")
    elif verb == "status_json":
        status = commands.run(commands.status, as_json=True)
        assert json.loads(streams.out.getvalue())["account"]["label"] == HOSTILE_LABEL
        assert "\\u001b" in streams.out.getvalue()  # json.dumps escapes, ensure_ascii kept
    else:
        status = commands.run(getattr(commands, verb))
    assert status == 0, streams.err.getvalue()
    streams.assert_terminal_safe()
    if verb != "status_json":
        assert "\\x1b" in streams.out.getvalue() + streams.err.getvalue()


def test_device_prompt_is_neutralised(servers: ServerFactory) -> None:
    answer = {
        "device_code": "dc-0123456789abcdef",
        "user_code": f"AB{ESC}CD",
        "verification_uri": f"https://example.com/\u202edevice{ESC}",
        "verification_uri_complete": f"https://example.com/?c={ESC}",
        "expires_in": 60,
        "interval": 1,
    }
    idp = _device_server(servers, Reply.json(answer), Reply.json({"error": "access_denied"}, 400))
    provider = provider_for(idp, device_authorization_endpoint=idp.url_for("/device"))
    said: list[str] = []
    with pytest.raises(OAuthFlowError):
        device_login(MemoryTokenStore(), provider, say=said.append, sleep=lambda _s: None)
    assert any("AB\\x1b" in line for line in said), said
    for line in said:
        for part in line.split("\n"):
            assert part.isprintable(), repr(part)


def test_cli_error_output_is_neutralised() -> None:
    class Hostile:
        def active(self, user: Optional[str] = None) -> Any:
            raise AuthError(f"server said {ESC}\u202e")

        status = active  # `token` reads the records first (an ended session, issue 9)

    streams = _Streams()
    commands = streams.commands(Hostile())
    assert commands.run(commands.token) == 1
    streams.assert_terminal_safe()
    assert "\\x1b" in streams.err.getvalue()


# =========================================================================== item 15

TIMEOUT = 60


def run_module(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("REFRESHAUTH_")}
    environ.update(
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        REFRESHAUTH_CACHE_DIR=str(tmp_path / "cache"),
        NO_PROXY="*",
        no_proxy="*",
        PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
    )
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "requests_refreshauth", *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def http_discovery(servers: ServerFactory) -> LocalServer:
    """An issuer on loopback (http allowed) whose metadata names a non-loopback http
    token endpoint."""
    idp = servers()
    metadata = {
        "issuer": idp.url,
        "token_endpoint": "http://auth.example.invalid/token",
        "authorization_endpoint": idp.url_for("/authorize"),
    }
    idp.route("/.well-known/oauth-authorization-server", Reply.json(metadata))
    idp.route("/.well-known/openid-configuration", Reply.json(metadata))
    return idp


def _module_args(tmp_path: Path, issuer: str) -> list[str]:
    records = str(tmp_path / "records.json")
    return ["--issuer", issuer, "--client-id", "cli", "--store", "file", "--records", records]


@pytest.mark.parametrize("verb", [["token"], ["login", "--no-browser"]])
def test_an_http_endpoint_from_discovery_is_a_typed_error(
    tmp_path: Path, http_discovery: LocalServer, verb: list[str]
) -> None:
    proc = run_module(tmp_path, *_module_args(tmp_path, http_discovery.url), *verb)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == EXIT_CODES["AUTH_CONFIGURATION_INVALID"], proc
    assert proc.stderr.startswith("error: "), proc.stderr
    assert "token_endpoint" in proc.stderr and "https" in proc.stderr
    assert proc.stdout == ""


def test_an_http_endpoint_from_discovery_under_json(
    tmp_path: Path, http_discovery: LocalServer
) -> None:
    proc = run_module(tmp_path, *_module_args(tmp_path, http_discovery.url), "token", "--json")
    assert "Traceback" not in proc.stderr, proc.stderr
    document = json.loads(proc.stdout)  # exactly one JSON document
    assert document["error"]["code"] == "AUTH_CONFIGURATION_INVALID"
    assert "token_endpoint" in document["error"]["message"]
    assert proc.returncode == EXIT_CODES["AUTH_CONFIGURATION_INVALID"]


def test_an_http_issuer_is_a_typed_error(tmp_path: Path) -> None:
    proc = run_module(tmp_path, *_module_args(tmp_path, "http://auth.example.invalid"), "token")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == EXIT_CODES["AUTH_CONFIGURATION_INVALID"], proc


def test_an_unusable_records_path_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    args = ["--issuer", "http://127.0.0.1:9", "--client-id", "cli", "--store", "file"]
    proc = run_module(tmp_path, *args, "--records", str(blocker / "records.json"), "status")
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 6, proc
    assert str(blocker) in proc.stderr


def _failing(exc: BaseException) -> Any:
    def factory() -> Any:
        raise exc

    return factory


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (ValueError("token_endpoint must use https"), "AUTH_CONFIGURATION_INVALID"),
        (requests.exceptions.ConnectionError("down"), "AUTH_REFRESH_TRANSIENT"),
        (requests.exceptions.Timeout("slow"), "AUTH_REFRESH_TRANSIENT"),
        (requests.exceptions.InvalidURL("bad"), "AUTH_CONFIGURATION_INVALID"),
        (PermissionError(13, "Permission denied", "/x/records.json"), "AUTH_STORE_READ_FAILED"),
        (RuntimeError("a bug"), "AUTH_INTERNAL_ERROR"),
    ],
)
@pytest.mark.parametrize("as_json", [False, True])
def test_every_failure_maps_to_a_typed_error(exc: BaseException, code: str, as_json: bool) -> None:
    streams = _Streams()
    commands = streams.commands(_failing(exc))
    status = commands.run(commands.status, as_json=as_json)
    assert status == EXIT_CODES.get(code, 1)
    err = streams.err.getvalue()
    assert "Traceback" not in err
    if as_json:
        document = json.loads(streams.out.getvalue())
        assert document["error"]["code"] == code
        assert document["error"]["message"]
    else:
        assert err.startswith("error: "), err
        assert streams.out.getvalue() == ""


def test_oauthlib_errors_are_typed() -> None:
    from oauthlib.oauth2.rfc6749.errors import InsecureTransportError

    streams = _Streams()
    store = MemoryTokenStore()
    store.save(Account("alice"), bundle(-5), make_default=True)
    commands = streams.commands(store, _failing(InsecureTransportError()))
    assert commands.run(commands.token, as_json=True) == EXIT_CODES["AUTH_OAUTH_FAILED"]
    assert json.loads(streams.out.getvalue())["error"]["code"] == "AUTH_OAUTH_FAILED"


def test_an_internal_error_hides_its_details_unless_debugging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    streams = _Streams()
    commands = streams.commands(_failing(RuntimeError("detail-with-maybe-a-token")))
    monkeypatch.delenv("REFRESHAUTH_DEBUG", raising=False)
    assert commands.run(commands.status) == 1
    err = streams.err.getvalue()
    assert "internal error" in err and "RuntimeError" in err and "REFRESHAUTH_DEBUG" in err
    assert "detail-with-maybe-a-token" not in err and "Traceback" not in err
    monkeypatch.setenv("REFRESHAUTH_DEBUG", "1")
    streams = _Streams()
    commands = streams.commands(_failing(RuntimeError("detail-with-maybe-a-token")))
    assert commands.run(commands.status) == 1
    assert "Traceback" in streams.err.getvalue()


def test_ctrl_c_under_json_is_one_json_document() -> None:
    streams = _Streams()
    commands = streams.commands(_failing(KeyboardInterrupt()))
    assert commands.run(commands.status, as_json=True) == 130
    assert json.loads(streams.out.getvalue())["error"]["code"] == "CANCELLED"


def test_logout_works_when_the_provider_configuration_is_invalid() -> None:
    store = MemoryTokenStore()
    store.save(Account("alice"), bundle(300), make_default=True)
    streams = _Streams()
    commands = streams.commands(store, _failing(ValueError("token_endpoint must use https")))
    assert commands.run(commands.logout) == 0, streams.err.getvalue()
    assert store.active() is None
    said = " ".join(streams.out.getvalue().split())  # one message, on stdout (issue 9)
    assert "on this machine. The tokens could not be revoked at the server" in said
    assert "token_endpoint must use https" in said
    assert "stays valid there until it expires" in said


def test_no_chained_exception_keeps_the_raw_echo(servers: ServerFactory) -> None:
    idp = servers()
    idp.route("/token", echo_body(status=200, error="invalid_client"))  # GitHub-style 200
    with pytest.raises(AuthError) as caught:
        provider_for(idp, client_secret=SECRET, client_auth="post").renew(current())
    chain: list[BaseException] = []
    link: Optional[BaseException] = caught.value
    while link is not None:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for exc in chain:
        shown = everything_shown(exc) + repr(getattr(exc, "description", ""))
        assert leaks(shown, REFRESH) == [], type(exc)
        assert leaks(shown, SECRET) == [], type(exc)
