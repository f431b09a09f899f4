"""A private Secret Service (dbus-daemon + gnome-keyring-daemon) for the keyring tests.

Never the user's: the bus is a new ``dbus-daemon`` with its own minimal configuration (no
service directories, so nothing is auto-activated on it — in particular not a second,
locked gnome-keyring), and the keyring daemon gets a temporary ``HOME`` and XDG
directories (mode 0700), so its ``login`` keyring file lives in a temp directory and is
created unlocked with a throwaway password written to the daemon's stdin.

    reason = unavailable_reason()          # None, or why this cannot run here
    service = start_secret_service()
    os.environ.update(service.env)         # subprocesses inherit the private bus
    ...
    service.stop()                         # kills both daemons, removes the temp dirs

Only the processes started here are ever signalled, by their pid.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Optional, cast

__all__ = ["SecretService", "start_secret_service", "unavailable_reason"]

BINARIES = ("dbus-daemon", "gnome-keyring-daemon")
#: Variables the test process (and its subprocesses) take from :attr:`SecretService.env`.
#: HOME is deliberately not among them: other tests find their caches through it.
_EXPORTED = ("DBUS_SESSION_BUS_ADDRESS", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR")

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={socket_dir}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretServiceError(RuntimeError):
    """The private Secret Service could not be started."""


def unavailable_reason() -> Optional[str]:
    """Why a private Secret Service cannot run here, or ``None`` if it can."""
    if os.name != "posix":
        return "a private Secret Service needs a POSIX system (D-Bus, gnome-keyring)"
    missing = [name for name in BINARIES if shutil.which(name) is None]
    if missing:
        return (
            f"{' and '.join(missing)} not found; install the Debian packages "
            "gnome-keyring, dbus and dbus-x11 to run the Secret Service tests"
        )
    try:
        import secretstorage  # noqa: F401
    except ImportError:
        return "the Python package secretstorage (keyring's Secret Service backend) is missing"
    return None


class SecretService:
    """A running private bus + keyring daemon. ``env``: what to put into ``os.environ``."""

    def __init__(self, root: Path, password: str = "refreshauth-test-password") -> None:
        self.root = root
        self.password = password
        self.address = ""
        self.env: dict[str, str] = {}
        self._procs: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def __repr__(self) -> str:
        return f"SecretService({self.address or 'not started'})"

    @property
    def keyring_daemon_pid(self) -> int:
        """The gnome-keyring-daemon started here (to pause it with SIGSTOP in a test)."""
        if len(self._procs) < 2 or self._procs[1].poll() is not None:
            raise SecretServiceError("the keyring daemon is not running")
        return self._procs[1].pid

    # ------------------------------------------------------------------ start

    def _dirs(self) -> dict[str, Path]:
        dirs = {
            "HOME": self.root / "home",
            "XDG_DATA_HOME": self.root / "data",
            "XDG_CONFIG_HOME": self.root / "config",
            "XDG_RUNTIME_DIR": self.root / "run",
            "XDG_CACHE_HOME": self.root / "cache",
        }
        for path in dirs.values():
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.chmod(0o700)
        return dirs

    def _log(self, name: str) -> IO[bytes]:
        handle = open(self.root / f"{name}.log", "wb")  # noqa: SIM115 - closed in stop()
        self._logs.append(handle)
        return handle

    def log_tail(self, limit: int = 1500) -> str:
        parts = []
        for name in ("dbus-daemon", "gnome-keyring-daemon"):
            path = self.root / f"{name}.log"
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").strip()
                if text:
                    parts.append(f"{name}: {text[-limit:]}")
        return "; ".join(parts) or "(no daemon output)"

    def start(self, timeout: float = 20.0) -> SecretService:
        deadline = time.monotonic() + timeout
        dirs = self._dirs()
        base = {
            key: value
            for key, value in os.environ.items()
            if key not in ("DBUS_SESSION_BUS_ADDRESS", "DISPLAY", "WAYLAND_DISPLAY")
            and not key.startswith(("GNOME_KEYRING", "SSH_AUTH_SOCK"))
        }
        base.update({key: str(path) for key, path in dirs.items()})

        config = self.root / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket_dir=dirs["XDG_RUNTIME_DIR"]))
        bus = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log("dbus-daemon"),
            env=base,
            start_new_session=True,
        )
        self._procs.append(bus)
        self.address = self._read_address(bus, deadline)

        env = dict(base, DBUS_SESSION_BUS_ADDRESS=self.address)
        daemon = subprocess.Popen(
            ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
            stdin=subprocess.PIPE,
            stdout=self._log("gnome-keyring-daemon"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        self._procs.append(daemon)
        assert daemon.stdin is not None
        daemon.stdin.write(self.password.encode("utf-8"))
        daemon.stdin.close()  # EOF ends the password

        self.env = {key: env[key] for key in _EXPORTED}
        self._wait_until_ready(deadline)
        return self

    def _read_address(self, bus: subprocess.Popen[bytes], deadline: float) -> str:
        assert bus.stdout is not None
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([bus.stdout], [], [], max(0.0, remaining))
        line = bus.stdout.readline().decode("utf-8", "replace").strip() if ready else ""
        if not line.startswith("unix:"):
            self.stop()
            raise SecretServiceError(
                f"dbus-daemon printed no bus address ({line!r}); {self.log_tail()}"
            )
        return line

    def _wait_until_ready(self, deadline: float) -> None:
        """Until ``org.freedesktop.secrets`` answers and its default collection is unlocked."""
        import secretstorage
        from jeepney.io.blocking import open_dbus_connection

        last = "not asked yet"
        while time.monotonic() < deadline:
            for proc in self._procs:
                if proc.poll() is not None:
                    self.stop()
                    raise SecretServiceError(
                        f"{cast('list[str]', proc.args)[0]} exited with {proc.returncode}; "
                        f"{self.log_tail()}"
                    )
            try:
                with contextlib.closing(open_dbus_connection(self.address)) as connection:
                    if secretstorage.check_service_availability(connection):
                        collection = secretstorage.get_default_collection(connection)
                        if not collection.is_locked():
                            return
                        last = "the default collection is locked"
                    else:
                        last = "org.freedesktop.secrets is not on the bus yet"
            except Exception as exc:  # any failure means "not yet"
                last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        self.stop()
        raise SecretServiceError(f"the Secret Service did not come up ({last}); {self.log_tail()}")

    # ------------------------------------------------------------------ stop

    def stop(self) -> None:
        """Kill both daemons (by pid) and remove the temporary directories."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=3)
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()
        for handle in self._logs:
            handle.close()
        self._logs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> SecretService:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def environment_of(service: SecretService) -> Iterator[None]:
    """``os.environ`` pointed at ``service`` (child processes inherit it), restored on
    exit. ``PYTHON_KEYRING_BACKEND`` is unset so that keyring detects the daemon."""
    names = (*service.env, "PYTHON_KEYRING_BACKEND")
    saved = {name: os.environ.get(name) for name in names}
    try:
        os.environ.update(service.env)
        os.environ.pop("PYTHON_KEYRING_BACKEND", None)
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def start_secret_service(timeout: float = 20.0) -> SecretService:
    """Start a private Secret Service; raises :class:`SecretServiceError` if it fails."""
    root = Path(tempfile.mkdtemp(prefix="refreshauth-ss-"))
    os.chmod(root, 0o700)
    return SecretService(root).start(timeout)


def require_secret_service() -> SecretService:
    """For a fixture: a started private Secret Service. Where none can run, the test
    fails under CI=true (integration tests must not skip there) and skips elsewhere."""
    import pytest
    from support import IN_CI

    reason = unavailable_reason()
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true but the Secret Service tests cannot run: {reason}")
        pytest.skip(reason)
    return start_secret_service()
