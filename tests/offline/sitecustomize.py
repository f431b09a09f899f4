"""Loaded (through ``PYTHONPATH``) by the CLI subprocesses of ``test_cli.py``'s offline
runs: the network is down, every connection is refused.

A dead proxy no longer simulates that for a loopback server: loopback endpoints are
never proxied (a plain-http token POST would reach the proxy in clear).
"""

from __future__ import annotations

import errno
import socket
from typing import Any


def _refused(self: socket.socket, address: Any) -> None:
    raise ConnectionRefusedError(errno.ECONNREFUSED, "network down (test)")


def _refused_ex(self: socket.socket, address: Any) -> int:
    return errno.ECONNREFUSED


socket.socket.connect = _refused  # type: ignore[method-assign,assignment]
socket.socket.connect_ex = _refused_ex  # type: ignore[method-assign,assignment]
