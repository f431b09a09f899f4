"""The auth verbs, declared once: names, help, options and the :class:`AuthCommands` method
each runs. The argparse and click front-ends (:mod:`._cli_argparse`, :mod:`._cli_click`)
are generated from :data:`AUTH`, so a verb or option added here appears in both, and
there is no second place to add one.

Help is written once, the argparse way ("sign in"); click shows it as a sentence.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional, Union

from ._cli_options import claims_json, port_number, positive_seconds

__all__ = [
    "AUTH",
    "JSON",
    "USER",
    "USER_BEFORE",
    "Argument",
    "Option",
    "Verb",
    "VerbGroup",
    "exclusion",
    "flag",
    "sentence",
    "verb_arguments",
]

#: Where ``--user`` given before the verb (``mycli auth --user bob status``) is kept.
USER_BEFORE = "refreshauth_user_before_verb"


class Option(NamedTuple):
    """One option. Its value reaches the verb's method as ``param``."""

    flags: tuple[str, ...]
    help: str
    #: Where argparse keeps the value (default: from the first long flag, as argparse does).
    dest: Optional[str] = None
    #: The verb method's keyword (default: ``dest``).
    kwarg: Optional[str] = None
    #: An on/off switch (no value): ``default`` when absent, ``True`` when given.
    switch: bool = False
    #: Checks and converts a value (an argparse ``type``: raises ArgumentTypeError).
    check: Optional[Callable[[str], Any]] = None
    default: Any = None
    metavar: Optional[str] = None
    choices: Optional[tuple[str, ...]] = None
    #: Accepted but not listed in ``--help``.
    hidden: bool = False

    @property
    def name(self) -> str:
        long = [text for text in self.flags if text.startswith("--")]
        return self.dest or (long or list(self.flags))[0].lstrip("-").replace("-", "_")

    @property
    def param(self) -> str:
        return self.kwarg or self.name


def flag(flags: tuple[str, ...], help: str, **more: Any) -> Option:
    """An on/off switch, off (``False``) unless given: ``default=None`` tells "not given"."""
    more.setdefault("default", False)
    return Option(flags, help, switch=True, **more)


class Argument(NamedTuple):
    """A positional argument, passed to the verb's method as ``name``."""

    name: str
    metavar: str


class Verb(NamedTuple):
    """A verb: ``method`` is the :class:`AuthCommands` method that runs it."""

    name: str
    help: str
    method: str
    options: tuple[Option, ...] = ()
    arguments: tuple[Argument, ...] = ()
    #: Sets of option names (``Option.name``) of which at most one may be given.
    exclusive: tuple[tuple[str, ...], ...] = ()


class VerbGroup(NamedTuple):
    """Verbs under one name (``auth``, ``auth accounts``); ``options`` come before the verb."""

    name: str
    help: str
    verbs: tuple[Union[Verb, VerbGroup], ...]
    options: tuple[Option, ...] = ()
    metavar: str = "COMMAND"


def sentence(help: str) -> str:
    """A help text as click shows a command's: "sign in" -> "Sign in."."""
    return help[:1].upper() + help[1:] + "."


def verb_arguments(
    verb: Verb, values: dict[str, Any], before: Optional[str]
) -> Optional[dict[str, Any]]:
    """The method's keyword arguments from the parsed ``values`` (by ``param``), with a
    ``--user`` given before the verb (``before``) filled in: the one after the verb wins.
    ``None`` (a usage error) when the verb takes no ``--user`` but one came before it:
    silently ignoring it would sign in, or list, as someone the user did not mean."""
    if any(option.param == "user" for option in verb.options):
        if values.get("user") is None:
            return {**values, "user": before}
    elif before is not None:
        return None
    return values


def exclusion(verb: Verb, values: dict[str, Any]) -> Optional[tuple[str, str]]:
    """Two options given together that exclude each other (their flags), else ``None``."""
    for names in verb.exclusive:
        given = [
            option.flags[0]
            for option in verb.options
            if option.name in names and values.get(option.param) not in (None, False)
        ]
        if len(given) > 1:
            return given[0], given[1]
    return None


JSON = flag(("--json",), "print JSON on stdout", kwarg="as_json")
USER = Option(("--user",), "account id or label", metavar="REF")
REF = Argument("ref", "REF")

AUTH = VerbGroup(
    "auth",
    "sign in, sign out and inspect accounts",
    options=(
        Option(("--user",), "account id or label (for any verb)", dest=USER_BEFORE, metavar="REF"),
    ),
    verbs=(
        Verb(
            "login",
            "sign in (browser, or --device)",
            "login",
            options=(
                JSON,
                flag(("--device",), "sign in with a code on another device"),
                flag(("--no-browser",), "only print the sign-in URL"),
                flag(("--default",), "make this the default account", default=None),
                Option(
                    ("--port",),
                    "listen for the redirect on this exact port (for a registered redirect URI)",
                    check=port_number,
                    metavar="PORT",
                ),
                Option(
                    ("--timeout",),
                    "seconds to wait for the browser sign-in (default: 180)",
                    check=positive_seconds,
                    default=180.0,
                    metavar="SECONDS",
                ),
                Option(
                    ("--claims",),
                    "ask for these claims (a JSON object, e.g. the server's claims challenge)",
                    check=claims_json,
                    metavar="JSON",
                ),
            ),
        ),
        Verb("logout", "sign out and revoke the tokens", "logout", options=(JSON, USER)),
        Verb("status", "show the account and its token's expiry", "status", options=(JSON, USER)),
        Verb(
            "token",
            "print a valid access token (refreshing it)",
            "token",
            options=(
                JSON,
                USER,
                flag(
                    ("--retry-refresh",),
                    "after the server ended the session, try its refresh token once more "
                    "(or log in)",
                ),
            ),
        ),
        VerbGroup(
            "accounts",
            "list, choose or remove accounts",
            metavar="ACTION",
            verbs=(
                Verb("list", "list stored accounts", "accounts_list", options=(JSON,)),
                Verb(
                    "use",
                    "make an account the default",
                    "accounts_use",
                    options=(JSON,),
                    arguments=(REF,),
                ),
                Verb(
                    "remove",
                    "log out of an account",
                    "accounts_remove",
                    options=(JSON,),
                    arguments=(REF,),
                ),
            ),
        ),
    ),
)
