"""Simulated hosts for the Redis fleet tests: process groups that share nothing but Redis.

Each host has its own HOME, XDG directories and TMPDIR, so whatever a store keeps on
the host (lock files, rescues, caches) is the host's own; the Redis server and the
authorization server are the only things the hosts have in common.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from _rel_harness import Worker

if TYPE_CHECKING:
    from _oidc_server import OidcServer


__all__ = ["host_env", "oidc_config", "start_hosts"]


def host_env(root: Path, host: int) -> dict[str, str]:
    """The environment of simulated host ``host``: every per-user directory its own."""
    home = root / f"host-{host}"
    env = {"HOME": str(home)}
    for name, sub in (
        ("XDG_RUNTIME_DIR", "run"),
        ("XDG_CACHE_HOME", ".cache"),
        ("XDG_DATA_HOME", ".local/share"),
        ("XDG_CONFIG_HOME", ".config"),
        ("XDG_STATE_HOME", ".local/state"),
        ("TMPDIR", "tmp"),
    ):
        path = home / sub
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        env[name] = str(path)
    return env


def oidc_config(oidc: OidcServer, **store: Any) -> dict[str, Any]:
    """A worker config for the oidc-provider server, with ``store`` (see _rel_worker)."""
    return {
        "client_id": oidc.client_id,
        "token_endpoint": oidc.token_endpoint,
        "url": oidc.resource_url,
        **store,
    }


def start_hosts(
    root: Path, hosts: int, per_host: int, mode: str, config_of: Any
) -> list[list[Worker]]:
    """``hosts`` groups of ``per_host`` workers, each group in its own host environment;
    ``config_of(host)`` gives a group's config. Returns once every worker is ready."""
    groups = [
        [Worker(mode, config_of(host), env=host_env(root, host)) for _ in range(per_host)]
        for host in range(hosts)
    ]
    for group in groups:
        for worker in group:
            worker.wait_ready(timeout=120)
    return groups
