"""`labeler serve` as a user runs it: start, log in, Ctrl-C, nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from labeler.demo.reviewers import ReviewerSession
from tests.conftest import Project, free_port

pytestmark = pytest.mark.slow


def children_of(pid: int) -> list[int]:
    out = subprocess.run(
        ["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True
    ).stdout
    return [int(x) for x in out.split()]


def test_serve_starts_secures_and_stops_cleanly(project: Project) -> None:
    port = free_port()
    project.set(review={"port": port})
    proc = subprocess.Popen(
        [sys.executable, "-m", "labeler", "--config", str(project.config), "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"{url}/api/v1/version", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.3)
        secrets_path = project.root / ".labeler" / "argilla" / "secrets.json"
        assert secrets_path.stat().st_mode & 0o777 == 0o600
        secrets = json.loads(secrets_path.read_text())
        # the owner logs in with the generated password; the default argilla/1234 does not
        ReviewerSession(url, secrets["owner_username"], secrets["owner_password"])
        with pytest.raises(urllib.error.HTTPError):
            ReviewerSession(url, "argilla", "12345678")
        kids = children_of(proc.pid)
        assert len(kids) == 3  # redis, the web server, the rq worker
        # a second Argilla on the same project (another port) is refused: one removed the
        # first one's Redis socket when it stopped
        second = project.run("serve", "--port", str(free_port()))
        assert second.exit_code == 1 and "this project's Argilla already runs" in second.stderr
        assert (project.root / ".labeler" / "argilla" / "redis.sock").exists()
        urllib.request.urlopen(f"{url}/api/v1/version", timeout=2).close()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert url in out and str(secrets_path) in out
    assert secrets["owner_password"] not in out + err
    assert secrets["owner_api_key"] not in out + err
    for pid in kids:
        assert (
            not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
        )
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"{url}/api/v1/version", timeout=2)
    assert not (project.root / ".labeler" / "argilla" / "tmp").exists()


def test_serve_refuses_a_port_in_use(project: Project) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        project.set(review={"port": s.getsockname()[1]})
        result = project.run("serve")
    assert result.exit_code == 1 and "is in use" in result.stderr


def test_serve_says_a_host_that_is_no_address_here(project: Project) -> None:
    """A user trial: `labeler serve --host 999.1.1.1` said the port was in use."""
    # no address at all; one of no interface here; a NUL (was a traceback); IPv6
    for host in ("999.1.1.1", "192.0.2.1", "a\u0000b", "::1"):
        result = project.run("serve", "--host", host, "--port", str(free_port()))
        assert result.exit_code == 2, result.output
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("error: review.host (--host) = ") and "is not an address" in line
        assert "use 127.0.0.1" in line and "in use" not in line
        assert ("IPv6 addresses are not supported" in line) == (host == "::1")
    assert not (project.root / ".labeler" / "argilla" / "secrets.json").exists()  # no start


def test_another_argilla_that_took_the_port_is_not_taken_for_ours(tmp_path: Path) -> None:
    """A CI run: two demos started at once both found 6900 free; the one whose server
    lost the race waited for "an answer at the port", got the other's, and failed later
    with "refused the API key (401)". Start-up now checks the answer is its own."""
    import http.server
    import threading

    from labeler.errors import ReviewError
    from labeler.server.manager import EmbeddedArgilla, ensure_secrets

    class Other(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # an Argilla: its version for all, its data for its keys
            ok = self.path == "/api/v1/version"
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"version": "2.8.0"}' if ok else b'{"detail": "401"}')

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Other)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        ours = EmbeddedArgilla(tmp_path, port=httpd.server_port)
        ensure_secrets(ours.secrets_path, "labeler")
        with pytest.raises(ReviewError, match="answered by another Argilla"):
            ours.wait_ready(timeout=10)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_open_secrets_file_is_refused(project: Project) -> None:
    from labeler.errors import StateError
    from labeler.server.manager import ensure_secrets, read_secrets

    path = project.root / "s.json"
    ensure_secrets(path, "w")
    path.chmod(0o644)
    with pytest.raises(StateError, match="let others read the secrets"):
        read_secrets(path)


def private(home: Path) -> list[str]:
    """Paths under ``home`` that a group or other user could read, write or enter. Not
    looked into: ``tmp/``, where the server copies its static web assets with their
    package permissions (no secrets; unreachable anyway behind the 0700 folders)."""
    bad = [] if home.stat().st_mode & 0o077 == 0 else [str(home)]
    for path in home.rglob("*"):
        inside_tmp = path.parent != home and (home / "tmp") in path.parents
        if not inside_tmp and not path.is_symlink() and path.stat().st_mode & 0o077:
            bad.append(f"{path} {oct(path.stat().st_mode & 0o777)}")
    return bad


def test_argillas_folder_is_private_to_the_user(argilla: Any, tmp_path: Path) -> None:
    """Issue 10: other local users could read the owner's API key in Argilla's database."""
    from labeler.server.manager import make_private

    files = {p.name for p in argilla.home.rglob("*")}
    assert {"secrets.json", "server.log", "redis.sock"} <= files
    assert any(name.endswith((".db", ".sqlite")) for name in files), files
    assert private(argilla.home) == []
    # a folder left open by an older version is closed again at the next start
    old = tmp_path / "argilla"
    (old / "sub").mkdir(parents=True)
    (old / "argilla.db").write_text("x")
    for path, mode in ((old, 0o755), (old / "sub", 0o777), (old / "argilla.db", 0o644)):
        path.chmod(mode)
    make_private(old)
    assert private(old) == []
