"""Ctrl-C during work that pays per request (the judging, the fact-check): the first one
stops gently, the second abandons what is in flight."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from labeler.errors import Interrupted


@dataclass
class Halt:
    """Asked by the first Ctrl-C (``interruptible``): start no new request."""

    flying: int  # how many requests may be in flight (the concurrency), for the message
    asked: bool = False
    abandoned: bool = False  # the second Ctrl-C: what is in flight is given up (yet billed)
    dropped: int = 0  # requests it gave up in flight


def stopped(halt: Halt) -> Interrupted:
    """What stopping for Ctrl-C raises once the work is kept: saying how many requests the
    second Ctrl-C abandoned (billed, their replies lost: asked again by the resume)."""
    if not halt.dropped:
        return Interrupted("")
    return Interrupted(
        f"{halt.dropped} request{'s' if halt.dropped > 1 else ''} in flight "
        f"{'were' if halt.dropped > 1 else 'was'} abandoned by the second Ctrl-C: the "
        "ledger counts them at their worst cost, and the resume asks (and pays for) them again"
    )


@contextlib.contextmanager
def interruptible(halt: Halt) -> Iterator[None]:
    """Work in the running task that Ctrl-C stops gently (``_stop_on_interrupt``): the
    second Ctrl-C's cancellation ends it quietly, and Ctrl-C is as it was afterwards. The
    caller raises KeyboardInterrupt once its work is kept, when ``halt.asked``."""
    restore = _stop_on_interrupt(halt)
    try:
        yield
    except asyncio.CancelledError:
        if not halt.asked:
            raise
        task = asyncio.current_task()
        if task is not None:
            task.uncancel()
    finally:
        restore()


def _stop_on_interrupt(halt: Halt) -> Callable[[], None]:
    """The first Ctrl-C stops the work gently (``halt.asked``): nothing new is sent, and
    the requests in flight (a provider bills them) finish and are kept, not asked again
    by the resume; a second one abandons them (cancels the running task). Returns what
    puts the Ctrl-C handling back as it was. Only on the main thread, and not where
    Ctrl-C is ignored (a job started in the background by a shell: it must not stop on
    the terminal's Ctrl-C)."""
    import signal
    import sys

    loop, task = asyncio.get_running_loop(), asyncio.current_task()
    before = signal.getsignal(signal.SIGINT)
    if before in (signal.SIG_IGN, signal.SIG_DFL, None):
        return lambda: None

    def interrupted() -> None:
        if halt.asked and task is not None:
            halt.abandoned = True
            task.cancel()  # the second time: abandon what is in flight
            return
        halt.asked = True
        sys.stderr.write(
            f"\nstopping: up to {halt.flying} requests in flight finish and are kept "
            "(Ctrl-C again to abandon them)\n"
        )

    def release() -> None:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, before)  # (asyncio.run's own, or a host program's)

    try:
        loop.add_signal_handler(signal.SIGINT, interrupted)
    except (RuntimeError, ValueError, NotImplementedError):  # not the main thread
        return lambda: None
    return release
