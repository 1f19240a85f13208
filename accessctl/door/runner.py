"""The stream loop: frames -> pipeline -> decisions -> audit log, hook and listeners.

Headless mode prints one JSON object per line for each decision, each change of a
face's liveness state, each hook result and each camera problem. Frames come from a
:class:`~accessctl.frames.capture.FrameFeed`, the same capture thread the kiosk window uses:
a video or frame folder is processed frame by frame with nothing dropped, so a run is
reproducible; a camera hands over its newest frame, and one that stops delivering is
reopened with back-off, which the runner reports but never dies of.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from accessctl.config import Settings
from accessctl.door.access import AccessController, Decision, EventKind
from accessctl.door.hook import HookResult, HookRunner
from accessctl.door.pipeline import FrameResult, Pipeline
from accessctl.errors import AccessctlError
from accessctl.frames.capture import FeedState, FeedStatus, FrameFeed
from accessctl.frames.sources import Frame
from accessctl.liveness import load_liveness
from accessctl.storage.audit import (
    AuditError,
    AuditLog,
    Event,
    prune_snapshots,
    save_snapshot,
)
from accessctl.storage.gallery import Gallery

AUDIT_BACKLOG = 1000  # events held in memory while the audit log cannot be written


@dataclass
class RunStats:
    frames: int = 0
    decisions: int = 0
    seconds: float = 0.0


class Runner:
    """Everything that happens to one frame after it is read, and the loop over a feed.

    ``on_frame(frame, result, decisions)`` is called on the runner's thread after each
    frame; the kiosk window's model uses it, and must return quickly.
    """

    def __init__(self, gallery: Gallery, settings: Settings, audit: AuditLog, emit: Callable[[dict], None],
                 on_frame: Callable[[Frame, FrameResult, list[Decision]], None] | None = None) -> None:
        self.settings = settings
        self.audit = audit
        self._emit_lock = threading.Lock()
        self._emit = emit
        self.on_frame = on_frame
        self.pipeline = Pipeline(gallery, settings, load_liveness())
        self.pipeline.warm_up()
        self.controller = AccessController(settings.access)
        self.hooks = (HookRunner(settings.hook.path, self._hook_done, kiosk=settings.kiosk.name,
                                 timeout_s=settings.hook.timeout_s, on_deny=settings.hook.on_deny)
                      if settings.hook.path else None)
        self._states: dict[int, str] = {}
        self._last_error: str | None = None
        self._camera_lost = False
        self._feed: FrameFeed | None = None
        self.stopped = threading.Event()
        self._backlog: deque[tuple[float, Event]] = deque()  # (when it failed, event), oldest first
        self._backlog_lock = threading.Lock()  # the hook thread logs too
        self._audit_error: str | None = None
        if settings.audit.snapshots:
            prune_snapshots(settings.audit.snapshot_days)

    def emit(self, obj: dict) -> None:
        with self._emit_lock:
            self._emit(obj)

    def _log(self, event: Event) -> None:
        """Write ``event`` after any held back; what cannot be written is held and retried."""
        with self._backlog_lock:
            self._backlog.append((time.monotonic(), event))
            try:
                while self._backlog:
                    self.audit.append(self._backlog[0][1])
                    self._backlog.popleft()
            except AuditError as exc:
                if self._audit_error is None:
                    self.emit({"event": "error", "reason": "audit", "detail": str(exc)})
                self._audit_error = str(exc)
                while len(self._backlog) > AUDIT_BACKLOG and not self.settings.audit.fail_closed:
                    self._backlog.popleft()  # fail open was chosen: the oldest are lost, memory is bounded
                return
            if self._audit_error is not None:
                self._audit_error = None
                self.emit({"event": "error", "reason": "audit", "detail": "the audit log is written again"})

    def _check_audit(self) -> None:
        """Fail closed: events unwritten for too long (or too many) stop the door."""
        if not self.settings.audit.fail_closed:
            return
        with self._backlog_lock:
            if not self._backlog:
                return
            age = time.monotonic() - self._backlog[0][0]
            if age > self.settings.audit.backlog_s or len(self._backlog) >= AUDIT_BACKLOG:
                raise AccessctlError(f"the audit log cannot be written ({self._audit_error}); {len(self._backlog)} "
                                     f"event(s) held for {age:.0f} s, and nothing is granted unlogged")

    def _hook_done(self, r: HookResult) -> None:
        d = r.decision
        detail = {"returncode": r.returncode, "timed_out": r.timed_out, "error": r.error, "output": r.output}
        self._log(Event("hook", d.event, d.person_id, d.name, stream_t=d.t, frame=d.frame, detail=detail))
        self.emit({"event": "hook", "for": d.event, "person_id": d.person_id, "t": d.t, "frame": d.frame, **detail})

    def feed_status(self, status: FeedStatus) -> None:
        """Camera trouble, and its end, are news for the operator and the audit log."""
        if status.state == FeedState.CAMERA_LOST:
            self._camera_lost = True
            self.emit({"event": "camera", "reason": status.detail, "retry_in_s": status.retry_in_s})
            self._log(Event("camera", status.detail, detail={"retry_in_s": status.retry_in_s}))
        elif status.state == FeedState.RUNNING and self._camera_lost:
            self._camera_lost = False
            why = f"{status.source} is delivering frames again"
            self.emit({"event": "camera", "reason": why, "retry_in_s": None})
            self._log(Event("camera", why))

    def _snapshot(self, frame: Frame, result: FrameResult, d: Decision) -> dict | None:
        if d.event != EventKind.DENIED or not self.settings.audit.snapshots:
            return None
        face = next((f for f in result.faces if f.track_id == d.track_id), None)
        if face is None:
            return None
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        try:
            path = save_snapshot(frame.image, face.box, f"{stamp}-{d.reason}-f{frame.index}-t{d.track_id}.jpg")
        except (OSError, AccessctlError) as exc:
            return {"snapshot_error": str(exc)}
        return {"snapshot": path.name}

    def step(self, frame: Frame) -> tuple[FrameResult, list[Decision]]:
        if self.hooks is not None and not self.hooks.alive:  # fail closed: a grant would open nothing
            raise AccessctlError("the door hook's worker has stopped, so no door can open")
        self._check_audit()
        result = self.pipeline.process(frame)
        for face in result.faces:
            if self._states.get(face.track_id) != face.liveness.state:
                self._states[face.track_id] = face.liveness.state
                self.emit({"event": "state", "track": face.track_id, "state": face.liveness.state,
                           "liveness": None if face.liveness.p_live is None else round(face.liveness.p_live, 4),
                           "t": round(frame.t, 3), "frame": frame.index})
        for tid in result.ended_tracks:
            self._states.pop(tid, None)
        for error in result.errors:
            if error != self._last_error:  # once per new problem, not once per frame
                self._last_error = error
                self.emit({"event": "error", "reason": "identity", "detail": error, "t": round(frame.t, 3)})
                self._log(Event("error", "identity", stream_t=frame.t, frame=frame.index, detail={"error": error}))
        decisions = self.controller.decide(result)
        for d in decisions:
            detail = self._snapshot(frame, result, d)
            self.emit(d.to_json() | (detail or {}))
            self._log(Event(d.event, d.reason, d.person_id, d.name, d.distance, d.liveness, d.t, d.frame, detail))
            self._check_audit()  # before the door opens: a grant that cannot be logged in time opens nothing
            if self.hooks is not None:
                self.hooks.submit(d)
        if self.on_frame is not None:
            self.on_frame(frame, result, decisions)
        return result, decisions

    def run(self, feed: FrameFeed) -> RunStats:
        """Process the feed to its end (files) or until :meth:`stop` (cameras)."""
        stats = RunStats()
        t0 = time.perf_counter()
        self._feed = feed
        try:
            with feed:
                for frame in feed.frames():
                    stats.frames += 1
                    stats.decisions += len(self.step(frame)[1])
                    if self.stopped.is_set():
                        break
        finally:
            if self.hooks is not None:
                self.hooks.close()
            stats.seconds = time.perf_counter() - t0
        return stats

    def stop(self) -> None:
        self.stopped.set()
        if self._feed is not None:
            self._feed.stop(wait_s=0)


def print_json(obj: dict) -> None:
    print(json.dumps(obj), flush=True)
