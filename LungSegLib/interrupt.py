"""Ctrl-C and SIGTERM end a batch the same way: the case being written is dropped whole (its temporary
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
    """Within the block, SIGTERM raises KeyboardInterrupt like Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
