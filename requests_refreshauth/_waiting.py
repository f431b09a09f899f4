"""What a browser login tells the user while it waits (pure, except :func:`wait_for`).

A login that waits silently for three minutes and then fails looks broken. So the wait
is announced with its length, reminded of once a minute (spaced out for long waits: at
most six lines) and in the last 30 seconds (few lines: the terminal stays readable),
and where a browser sign-in cannot work — no browser here, an SSH session, the time
ran out — the device-code sign-in is named, as the command the user types, when the
provider offers it.
"""

from __future__ import annotations

import math
import time
from typing import Any, Callable, Optional, TypeVar

__all__ = [
    "device_command_for",
    "no_browser_text",
    "reminders",
    "span",
    "timeout_text",
    "wait_for",
]

R = TypeVar("R")

#: No reminder sooner than this many seconds after the announcement.
_QUIET_START = 15.0


def span(seconds: float) -> str:
    """``"3 minutes"``, ``"90 seconds"``, ``"2 minutes 30 seconds"``, ``"1 second"``."""
    total = max(0, math.ceil(seconds - 0.001))  # 0.5 s is "1 second", never "0 seconds"
    minutes, rest = divmod(total, 60)
    if minutes == 0 or (rest and minutes < 2):
        return "1 second" if total == 1 else f"{total} seconds"
    text = "1 minute" if minutes == 1 else f"{minutes} minutes"
    return text + (f" {rest} seconds" if rest else "")


#: At most this many reminders, besides the one 30 seconds before the end: a two-hour
#: wait reminded of each minute would be 120 lines.
_MAX_REMINDERS = 6

#: Spacings between reminders (seconds), the shortest that keeps to _MAX_REMINDERS wins.
_STEPS = (60, 120, 300, 600, 900, 1800, 3600)


def reminders(timeout: float) -> list[float]:
    """Seconds left at which to remind the user, latest last: each whole minute for a
    short wait; for a long one, evenly spaced round marks plus one minute left — at most
    :data:`_MAX_REMINDERS` — and always 30 seconds left."""
    last = timeout - _QUIET_START  # nothing right after the announcement

    def marks_for(step: int) -> list[float]:
        marks = [float(step * k) for k in range(int(last // step), 0, -1)]
        if step > 60 and last >= 60:
            marks.append(60.0)
        return marks

    step = _STEPS[0]
    for step in _STEPS:
        if len(marks_for(step)) <= _MAX_REMINDERS:
            break
    while len(marks_for(step)) > _MAX_REMINDERS:  # days: whole hours, doubled
        step *= 2
    marks = marks_for(step)
    if timeout - 30.0 >= _QUIET_START:
        marks.append(30.0)
    return marks


def reminder_text(left: float) -> str:
    return f"Still waiting for the sign-in ({span(left)} left; Ctrl-C cancels)…"


def wait_for(
    wait: Callable[[float], Optional[R]],
    timeout: float,
    say: Callable[[str], None],
    clock: Callable[[], float] = time.monotonic,
) -> Optional[R]:
    """``wait(seconds)`` until it returns something or ``timeout`` passes, reminding
    the user at :func:`reminders`."""
    deadline = clock() + timeout
    for left in reminders(timeout):
        result = wait(max(0.0, deadline - left - clock()))
        if result is not None:
            return result
        say(reminder_text(left))
    return wait(max(0.0, deadline - clock()))


def device_command_for(provider: Any, command: Optional[str]) -> Optional[str]:
    """``command`` (the CLI's device sign-in) if the provider can do a device sign-in."""
    if not command or not getattr(provider, "device_authorization_endpoint", None):
        return None
    return command


def no_browser_text(redirect_uri: str, device_command: Optional[str]) -> str:
    """Why the URL must be opened on this machine, and the way out when it cannot be."""
    text = f"The browser must be on this machine: the sign-in returns to {redirect_uri}."
    if device_command:
        text += f" Over SSH, or with no browser here, sign in with a code: `{device_command}`."
    return text


def timeout_text(timeout: float, device_command: Optional[str]) -> str:
    text = f"No sign-in response arrived within {span(timeout)}. Run the login again"
    if device_command:
        text += f", or sign in with a code on another device: `{device_command}`"
    return text + "."
