"""What to tell a person whose keyring cannot be used, or who got plaintext instead.

Pure text, no I/O: one message per failure that says what happened, what was kept, and
the ways forward (unlock the keyring, or keep the tokens in a file), in terms an end
user of a CLI can act on. The library-level details (policy names) are left to logs
and docstrings, except where they explain a surprise.
"""

from __future__ import annotations

import sys
from typing import Optional

__all__ = [
    "PREFLIGHT_OUTCOME",
    "compose",
    "plaintext_log",
    "plaintext_warning",
    "reach_advice",
    "rollback_outcome",
    "sign_in_outcome",
    "unlock_advice",
]

#: The outcome of a preflight that failed: the user has not done anything yet.
PREFLIGHT_OUTCOME = "The sign-in was not started; nothing was changed."


def unlock_advice(platform: str = sys.platform) -> str:
    """How to unlock this platform's keyring, briefly."""
    if platform == "darwin":
        return (
            "unlock the login keychain in Keychain Access, or run "
            "`security unlock-keychain` in this terminal"
        )
    if platform == "win32":
        return "sign in to Windows as this user, so Credential Manager is available"
    return (
        "log in to the desktop session, or over SSH run `gnome-keyring-daemon --unlock`, "
        "type your login password and press Ctrl-D"
    )


def compose(
    problem: str,
    outcome: str,
    policy: str,
    sign_in: Optional[str],
    file_hint: Optional[str],
    *,
    out_of_reach: bool = False,
) -> str:
    """The one message of a :class:`~requests_refreshauth.errors.KeyringUnavailableError`;
    ``out_of_reach``: no keyring can be reached now, yet the tokens must go to one (they
    are already in it, or the policy forbids plaintext)."""
    if out_of_reach:
        way = f"make the keyring reachable and try again ({reach_advice()})"
        return _message(problem, outcome, sign_in, file_hint, way)
    note = (
        "(With the default keyring setting, tokens are saved in plaintext only when this "
        "machine has no keyring at all; a locked or failing keyring stops the save "
        "instead of moving your tokens to plaintext.)"
        if policy == "fallback"
        else None
    )
    way = f"unlock the keyring and try again ({unlock_advice()})"
    return _message(problem, outcome, sign_in, file_hint, way, note)


def _message(
    problem: str,
    outcome: str,
    sign_in: Optional[str],
    file_hint: Optional[str],
    way: str,
    note: Optional[str] = None,
) -> str:
    """What happened, what was kept, the sign-in's fate, then the two ways forward."""
    parts = [problem.rstrip(".") + ".", outcome]
    if sign_in:
        parts.append(sign_in)
    file_way = (
        f"keep the tokens in a file instead: {file_hint}"
        if file_hint
        else "keep the tokens in a file instead, if this program has an option for that"
    )
    parts.append(f"To go on, {way}, or {file_way}.")
    if note:
        parts.append(note)
    return " ".join(parts)


def reach_advice(platform: str = sys.platform) -> str:
    """How to make this platform's keyring reachable from here, briefly."""
    if platform == "darwin" or platform == "win32":
        return unlock_advice(platform)
    return (
        "run this in your desktop session; over SSH there is usually no D-Bus session to "
        "reach the keyring: start one with `dbus-run-session -- $SHELL`, then run "
        "`gnome-keyring-daemon --unlock`, type your login password and press Ctrl-D"
    )


def rollback_outcome(written: int, unrestored: list[str], new_account: bool) -> str:
    """What a failed keyring save left behind, honestly: ``written`` slots were written
    before the failure, ``unrestored`` (shown names) could not be put back."""
    if not unrestored:
        if written == 0:
            return "Nothing was written; the stored login is unchanged."
        return "What was written has been rolled back; the stored login is unchanged."
    names = ", ".join(unrestored)
    entries = "entry" if len(unrestored) == 1 else "entries"
    if new_account:
        return (
            f"The keyring {entries} {names} written before the failure could not be removed "
            "again; no stored login uses them, and the next successful login replaces them."
        )
    return (
        f"The keyring {entries} {names} written before the failure could not be restored, "
        "so this account's stored login may no longer read back; log in again once the "
        "keyring works."
    )


def sign_in_outcome(
    revoked: Optional[bool], *, access_revoked: Optional[bool] = None, relogin: bool = False
) -> str:
    """What became of a completed sign-in whose tokens could not be saved.

    ``revoked``: the grant's result — ``True`` revoked at the server, ``False`` tried and
    failed, ``None`` the server offers no revocation. ``access_revoked``: the access
    token's own result (``False`` with ``revoked``: the refresh token ended the grant,
    the access token still works). ``relogin``: the account was already stored, so
    nothing was revoked: a server may give the new sign-in the same grant as the stored
    login, and revoking either of its tokens could end that one too.
    """
    if relogin:
        return (
            "You signed in, but the tokens could not be saved. The new sign-in was not "
            "revoked at the server, because revoking it could end the login already stored "
            "here (a server may give a new sign-in of the same account the same grant): it "
            "stays valid at the server until it expires."
        )
    if revoked and access_revoked is False:
        return (
            "You signed in, but the tokens could not be saved, so the sign-in was ended at "
            "the server; only its access token, which the server would not revoke, still "
            "works until it expires."
        )
    if revoked:
        return (
            "You signed in, but the tokens could not be saved, so they were revoked at the "
            "server: no live sign-in was left behind."
        )
    why = (
        "revoking them at the server failed"
        if revoked is False
        else "this server offers no way to revoke them"
    )
    return (
        f"You signed in, but the tokens could not be saved, and {why}: that sign-in "
        "stays live at the server until it expires."
    )


def plaintext_warning(path: str) -> str:
    """For the user, once per login: where the tokens are and how to get a keyring."""
    return (
        f"No OS keyring is available, so your tokens were saved in plaintext in {path} "
        "(readable only by you). To keep them in a keyring instead, install one (on Linux "
        "gnome-keyring or KWallet in a desktop session; macOS and Windows have one built "
        "in) and log in again."
    )


def plaintext_log(path: str) -> str:
    """For the developer's log: the same fact, with the setting that refuses it."""
    return (
        f"no OS keyring is available: tokens saved in plaintext in {path} (mode 600); "
        "use credential_store='system' to refuse plaintext"
    )
