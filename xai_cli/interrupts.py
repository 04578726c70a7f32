"""Ctrl-C that cannot be lost.

Python delivers SIGINT as a KeyboardInterrupt raised wherever the interpreter happens to be, and
when that is a ``__del__`` method or a weakref callback (matplotlib and pandas run many), Python
prints "Exception ignored" and carries on: the run would finish, replace the user's outputs and
exit 0 as if nothing had happened. So the signal is also remembered here, every atomic write checks
it before renaming a file into place, the entry point exits 130 if one was received, and Python's
"Exception ignored" traceback for it is not printed.
"""

from __future__ import annotations

import signal
import sys
import threading

_received = False


def install() -> None:
    """Remember SIGINT as well as raising KeyboardInterrupt (only possible from the main thread)."""
    global _received
    _received = False
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _on_sigint)
    if sys.unraisablehook is not _quiet_about_interrupts:
        _previous_hooks.append(sys.unraisablehook)
        sys.unraisablehook = _quiet_about_interrupts


_previous_hooks: list = []


def _quiet_about_interrupts(unraisable) -> None:
    """Python prints "Exception ignored in ... Traceback ... KeyboardInterrupt" when Ctrl-C lands in a
    ``__del__``; the interrupt is already remembered, so the user sees only "interrupted"."""
    if issubclass(unraisable.exc_type, KeyboardInterrupt):
        return
    _previous_hooks[-1](unraisable)


def _on_sigint(signum, frame) -> None:
    global _received
    _received = True
    raise KeyboardInterrupt


def received() -> bool:
    """Whether SIGINT arrived since :func:`install`, even if its KeyboardInterrupt was swallowed."""
    return _received


def check() -> None:
    """Raise KeyboardInterrupt if SIGINT arrived, so that no file is committed after Ctrl-C."""
    if _received:
        raise KeyboardInterrupt
