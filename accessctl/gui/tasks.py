"""Blocking work off the GUI thread, with the answer delivered back on it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PyQt6.QtCore import QObject, pyqtSignal

log = logging.getLogger(__name__)


class Tasks(QObject):
    """One worker thread for SQLite writes, reading photos and other slow calls.

    One thread, so that the admin's actions happen in the order they were asked.
    ``fn`` runs there (it opens its own gallery or audit connection: SQLite
    connections stay in the thread that made them); ``on_done(result)`` or
    ``on_error(exception)`` then run on the GUI thread.
    """

    _finished = pyqtSignal(object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="accessctl-task")
        self._finished.connect(self._deliver)
        self.pending = 0

    def run(
        self,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.pending += 1

        def job() -> None:
            outcome: tuple[Callable[[Any], None] | None, Any, Exception | None]
            try:
                outcome = (on_done, fn(), None)
            except Exception as exc:  # delivered to on_error; never lost in the pool
                log.debug("background task failed", exc_info=True)
                outcome = (on_error, None, exc)
            self._finished.emit(outcome)

        self._pool.submit(job)

    def _deliver(self, outcome: tuple) -> None:
        self.pending -= 1
        callback, result, error = outcome
        if error is not None:
            if callback is None:
                log.error("background task failed: %s", error)
                return
            callback(error)
        elif callback is not None:
            callback(result)

    def shutdown(self) -> None:
        """No new work; what was asked still finishes (a save is never dropped)."""
        self._pool.shutdown(wait=False)
