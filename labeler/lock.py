"""One writer per project: an advisory lock on ``<state_dir>/lock``.

``labeler round``, ``sync``, ``calibrate``, ``export`` and ``serve``'s setup take it before
they touch the state, so two of them started together (a cron job and someone at the
terminal) never both pay for one reply or both rewrite the dataset. The second one stops
with a one-line error naming the first (``--wait`` waits for it instead).

The lock is ``flock(2)`` on an open file: the kernel releases it when its process ends, so a
``kill -9`` leaves no stale lock — the next command takes it at once. The file keeps the
holder's command and pid only to name it in the error. Nested takes in one process (a sync
that recalibrates) are counted, not re-locked.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from labeler.errors import ProjectBusy, StateError, write_failed

_held: dict[tuple[Path, int], int] = {}  # (lock path, thread) -> nesting depth
_guard = threading.Lock()
# state folders whose last writer did not release the lock cleanly (killed, crashed): the
# lock file still named it when this process took the lock
_unclean: set[Path] = set()


def stopped_uncleanly(state_dir: Path) -> bool:
    """Did the command before the one holding the lock now stop without releasing it (a
    kill -9, a crash, a power cut), and its state not been checked since? Its writes may
    have been cut short."""
    return state_dir.resolve() in _unclean


def checked(state_dir: Path) -> None:
    """The state was checked after an unclean stop: later opens need not check again."""
    _unclean.discard(state_dir.resolve())


def holder(path: Path) -> str:
    """'labeler round (pid 123)' from the lock file, or 'labeler command' (unknown)."""
    try:
        info = json.loads(path.read_text(encoding="utf-8") or "{}")
        return f"labeler {info['command']} (pid {int(info['pid'])})"
    except (OSError, ValueError, KeyError, TypeError):
        return "labeler command"


@contextmanager
def project_lock(
    state_dir: Path,
    command: str,
    *,
    wait: bool = False,
    on_wait: Callable[[str], None] | None = None,
    poll_s: float = 0.2,
) -> Iterator[None]:
    """Hold the project's lock for ``command``; ProjectBusy (or wait) if another has it."""
    path = (state_dir / "lock").resolve()
    me = (path, threading.get_ident())  # another thread of this process is another writer
    with _guard:
        nested = me in _held
        if nested:
            _held[me] += 1
    if nested:
        try:
            yield
        finally:
            with _guard:
                _held[me] -= 1
        return
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        if state_dir.exists() and not state_dir.is_dir():
            raise StateError(
                f"{state_dir}: project.state_dir is a file, not a folder; point it at a folder"
            ) from None
        raise StateError(write_failed(path, exc, "create the project lock")) from None
    try:
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                other = holder(path)
                if not wait:
                    raise ProjectBusy(
                        f"another {other} is running on this project ({state_dir}); "
                        "run this again when it ends, or pass --wait"
                    ) from None
                if on_wait is not None and not told:
                    on_wait(f"waiting for {other} to finish ...")
                    told = True
                time.sleep(poll_s)
        try:
            if os.fstat(fd).st_size:  # a clean release empties the file: this one did not
                _unclean.add(state_dir.resolve())
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps({"command": command, "pid": os.getpid()}).encode(), 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only its holder goes unnamed
        with _guard:
            _held[me] = 1
        try:
            yield
        finally:
            with _guard:
                del _held[me]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # released cleanly (see stopped_uncleanly)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
