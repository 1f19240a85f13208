"""Background workers that are stopped and joined before the interpreter exits.

A daemon thread still inside a MediaPipe, OpenCV or torch call while C++ statics are
destroyed aborts the whole process ("terminate called without an active exception"),
and an abort at exit is a failed run to whoever started it (CI, a service manager).
Pipeline threads are therefore started here: each with a function that asks it to stop.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable
from typing import Any

EXIT_WAIT_S = 60.0  # a worker may be building its pipeline (measured up to 14 s on 2 busy cores) when asked to stop

_lock = threading.Lock()
_workers: list[tuple[threading.Thread, Callable[[], None]]] = []


def start_worker(target: Callable[..., Any], args: tuple, name: str, stop: Callable[[], None]) -> threading.Thread:
    """Start ``target(*args)`` on a daemon thread; ``stop()`` must make it return soon."""
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    with _lock:
        _workers[:] = [(t, s) for t, s in _workers if t.is_alive()]
        _workers.append((thread, stop))
    thread.start()
    return thread


@atexit.register
def _stop_all() -> None:
    with _lock:
        workers = list(_workers)
    for _, stop in workers:
        try:
            stop()
        except Exception:  # noqa: BLE001 - at exit, one worker's trouble must not keep the others running
            pass
    deadline = time.monotonic() + EXIT_WAIT_S
    for thread, _ in workers:
        if thread.is_alive():
            thread.join(max(0.0, deadline - time.monotonic()))
