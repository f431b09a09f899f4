"""Where a save puts an account's secrets: the keyring or plaintext, by policy and by
what the keyring is doing now.

Only a keyring *known absent* lets "fallback" use plaintext; a keyring that fails is not
absent, and secrets already in the keyring are never moved to plaintext silently. The
save and the preflight decide with the same functions, so the preflight refuses exactly
what the save would.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from ..errors import KeyringUnavailableError
from ._keyring_access import KeyringAccess, KeyringFailure
from ._keyring_advice import compose, plaintext_warning

__all__ = [
    "NOTHING_CHANGED",
    "KeyringOutOfReach",
    "Location",
    "keyring_usable",
    "unavailable",
    "where_to_write",
]

#: Where an account's secrets are.
Location = Literal["keyring", "plaintext"]
NOTHING_CHANGED = "Nothing was changed."


class KeyringOutOfReach(KeyringUnavailableError):
    """No keyring can be reached now, yet the tokens must go to one (they are in it, or
    the policy forbids plaintext): the ways forward are not a locked keyring's."""

    def _compose(self) -> str:
        return compose(
            self.problem,
            self.outcome,
            self.policy,
            self.sign_in,
            self.file_hint,
            out_of_reach=True,
        )


def unavailable(problem: str, outcome: str, policy: str) -> KeyringUnavailableError:
    """The typed error for a keyring that failed (``outcome``: what was kept)."""
    return KeyringUnavailableError(problem, outcome=outcome, policy=policy)


def keyring_usable(keyring: KeyringAccess, policy: str, outcome: str = NOTHING_CHANGED) -> bool:
    """Whether a keyring exists (detected once per store); a failure fails the save."""
    try:
        return keyring.usable()
    except KeyringFailure as exc:
        problem = f"Cannot save tokens: the OS keyring failed ({exc})"
        raise unavailable(problem, outcome, policy) from None


def where_to_write(
    keyring: KeyringAccess,
    policy: str,
    path: str,
    old: Optional[dict[str, Any]],
    outcome: str = NOTHING_CHANGED,
) -> tuple[Location, Optional[str]]:
    """("keyring" | "plaintext", warning) for a save, by policy and keyring state.

    ``old``: the account's current record (``None`` for a new account); ``path``: the
    records file the plaintext warning names.
    """
    if policy == "plaintext":
        return "plaintext", None
    if keyring_usable(keyring, policy):
        return "keyring", None
    if policy == "system":
        raise KeyringOutOfReach(
            "Cannot save tokens: no OS keyring can be reached, and this program keeps "
            "tokens only in the OS keyring, never in plaintext",
            outcome=outcome,
            policy=policy,
        )
    if old is not None and old.get("secrets") == "keyring":
        raise KeyringOutOfReach(
            "Cannot save tokens: this account's tokens are in the OS keyring, which cannot "
            "be reached now; they are not moved to plaintext silently",
            outcome=outcome,
            policy=policy,
        )
    return "plaintext", plaintext_warning(path)
