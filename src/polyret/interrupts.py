"""Ctrl-C (SIGINT) and SIGTERM always stop a ``polyret`` command, with exit code 128 + the signal.

Python turns SIGINT into a ``KeyboardInterrupt`` raised wherever the main thread happens to be; when
that is a finalizer (``Dataset.__del__`` and the like) the exception is printed as "Exception ignored
in ..." and swallowed, and the run went on to exit 0. :func:`install` replaces the handlers of both
signals with one that records the signal and raises ``KeyboardInterrupt``, and until the command's
error path has taken the interrupt (:func:`acknowledge`) a watchdog thread raises it again every
:data:`REPEAT_S` seconds; the command also re-checks the flag when it returns (:func:`pending`). SIGTERM,
what schedulers send before they kill a job, gets the same clean stop (finished steps kept, temp
files removed, locks released) instead of an abrupt death.
"""

from __future__ import annotations

import signal
import threading

__all__ = ["REPEAT_S", "acknowledge", "acknowledged", "check", "install", "pending", "reset"]

REPEAT_S = 2.0  # seconds between re-raised interrupts while the first one has not reached the error path

_state: dict = {"signum": None, "acknowledged": False, "watchdog": None}


def _handler(signum, frame) -> None:
    if _state["signum"] is None:
        _state["signum"] = signum
        _start_watchdog(signum)
    raise KeyboardInterrupt


def _start_watchdog(signum: int) -> None:
    main = threading.main_thread().ident
    stop = threading.Event()

    def repeat() -> None:
        while not stop.wait(REPEAT_S):
            if _state["acknowledged"]:
                return
            try:
                signal.pthread_kill(main, signum)  # the handler raises KeyboardInterrupt in the main thread again
            except (OSError, ProcessLookupError):
                return

    thread = threading.Thread(target=repeat, name="polyret-interrupt", daemon=True)
    _state["watchdog"] = stop
    thread.start()


def install() -> None:
    """Route SIGINT and SIGTERM through :func:`_handler` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        return
    reset()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _handler)


def pending() -> int | None:
    """The signal number received (SIGINT or SIGTERM), or None."""
    return _state["signum"]


def acknowledge() -> int | None:
    """The error path has taken the interrupt: stop re-raising it. Returns the signal number."""
    _state["acknowledged"] = True
    stop = _state["watchdog"]
    if stop is not None:
        stop.set()
    return _state["signum"]


def acknowledged() -> bool:
    """Whether the error path has taken the interrupt already."""
    return bool(_state["acknowledged"])


def check() -> None:
    """Raise ``KeyboardInterrupt`` if a signal arrived and was swallowed on the way (a cheap step-boundary check)."""
    if _state["signum"] is not None and not _state["acknowledged"]:
        raise KeyboardInterrupt


def reset() -> None:
    """Forget a received signal (a new command in the same process starts clean)."""
    stop = _state["watchdog"]
    if stop is not None:
        stop.set()
    _state.update(signum=None, acknowledged=False, watchdog=None)
