"""Where the door's decisions go: one sink per output, each told every decision in order.

The runner hands each decision to its sinks in turn: the audit log, the JSON line
(the door's listener: headless events, the kiosk screen), then the door-unlock hook. A sink that
raises stops the decision there, so a grant the audit log cannot record is never shown
as granted and never reaches the hook, and a log unwritable for too long stops the
door (fail closed). A new output (a relay
board, an MQTT topic) is one more class with ``deliver``, added to the list.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from accessctl.config import AuditSettings
from accessctl.door.access import Decision, EventKind
from accessctl.door.events import Listener, Problem, ProblemKind
from accessctl.errors import AccessctlError
from accessctl.storage.audit import AuditError, AuditLog, Event

AUDIT_BACKLOG = 1000  # events held in memory while the audit log cannot be written


class Sink(Protocol):
    def deliver(self, decision: Decision) -> None:
        """Pass one decision on."""


class ListenerSink:
    """Each decision to the door's listener: the JSON lines headless mode prints, the
    kiosk's screen, the integrations."""

    def __init__(self, emit: Listener) -> None:
        self.emit = emit

    def deliver(self, decision: Decision) -> None:
        self.emit(decision)


def audit_event(decision: Decision) -> Event:
    """A decision as its audit row."""
    d = decision
    return Event(d.event, d.reason, d.person_id, d.name, d.distance, d.liveness, d.t, d.frame, d.detail() or None)


class AuditSink:
    """The audit log, written in order. What cannot be written is held and retried with
    the next event; held longer than ``[audit] backlog_s`` (or more than
    :data:`AUDIT_BACKLOG` events), the door stops: nothing is granted unlogged.
    ``notify`` hears when writing fails and when it works again."""

    def __init__(self, audit: AuditLog, settings: AuditSettings, notify: Callable[[Problem], None]) -> None:
        self.audit, self.settings, self.notify = audit, settings, notify
        self._backlog: deque[tuple[float, Event]] = deque()  # (when it failed, event), oldest first
        self._lock = threading.Lock()  # the hook thread logs too
        self._error: str | None = None

    def deliver(self, decision: Decision) -> None:
        self.log(audit_event(decision))
        if self.settings.fail_closed and decision.event == EventKind.GRANTED:
            with self._lock:
                held = len(self._backlog)
            if held:  # the grant itself, or an event before it, is not on disk: nothing opens
                raise AccessctlError(
                    f"the audit log cannot be written ({self._error}); a grant cannot be recorded, "
                    f"so nothing is granted ({held} event(s) held)"
                )
        self.check()  # a refusal may wait a while for the log; not for ever

    @property
    def held(self) -> int:
        """Events waiting for the audit log (0 while it is written)."""
        return len(self._backlog)

    def log(self, event: Event) -> None:
        """Write ``event`` after any held back; what cannot be written is held."""
        with self._lock:
            self._backlog.append((time.monotonic(), event))
            try:
                while self._backlog:
                    self.audit.append(self._backlog[0][1])
                    self._backlog.popleft()
            except AuditError as exc:
                if self._error is None:
                    self.notify(Problem(ProblemKind.AUDIT, str(exc)))
                self._error = str(exc)
                while len(self._backlog) > AUDIT_BACKLOG and not self.settings.fail_closed:
                    self._backlog.popleft()  # fail open was chosen: the oldest are lost, memory is bounded
                return
            if self._error is not None:
                self._error = None
                self.notify(Problem(ProblemKind.AUDIT, "the audit log is written again"))

    def check(self) -> None:
        """Fail closed: events unwritten for too long (or too many) stop the door."""
        if not self.settings.fail_closed:
            return
        with self._lock:
            if not self._backlog:
                return
            age = time.monotonic() - self._backlog[0][0]
            if age > self.settings.backlog_s or len(self._backlog) >= AUDIT_BACKLOG:
                raise AccessctlError(
                    f"the audit log cannot be written ({self._error}); {len(self._backlog)} "
                    f"event(s) held for {age:.0f} s, and nothing is granted unlogged"
                )
