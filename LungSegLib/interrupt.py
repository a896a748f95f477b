"""Ctrl-C, SIGTERM and SIGHUP end a batch the same way: the case being written is dropped whole (its temporary
folder removed), finished cases and the summaries stay, the lock is released, and one line says how to
finish (``--resume``)."""

from __future__ import annotations

import contextlib
import signal
import threading

INTERRUPTED = ("interrupted; finished cases are kept, the unfinished one left no output; run the same command "
               "with --resume to finish")


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def terminate_as_interrupt():
    """Within the block, SIGTERM (and SIGHUP: the terminal closed) raise KeyboardInterrupt like Ctrl-C (main
    thread only; a signal the caller ignores, e.g. under nohup, stays ignored)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            previous[sig] = signal.signal(sig, _raise_interrupt)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
