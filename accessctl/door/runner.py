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
from collections.abc import Callable
from dataclasses import dataclass

from accessctl.config import Settings
from accessctl.door.access import AccessController, Decision, EventKind
from accessctl.door.hook import HookResult, HookRunner
from accessctl.door.outputs import AuditSink, JsonSink, Sink
from accessctl.door.pipeline import FrameResult, Pipeline
from accessctl.errors import AccessctlError
from accessctl.frames.capture import FeedState, FeedStatus, FrameFeed
from accessctl.frames.sources import Frame
from accessctl.liveness import load_liveness
from accessctl.storage.audit import (
    AuditLog,
    Event,
    prune_snapshots,
    save_snapshot,
)
from accessctl.storage.gallery import Gallery


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
        self.audit_out = AuditSink(audit, settings.audit, self.emit)
        # Every decision goes to each of these in turn; the hook last, once it is logged.
        self.sinks: list[Sink] = [JsonSink(self.emit), self.audit_out]
        if self.hooks is not None:
            self.sinks.append(self.hooks)
        if settings.audit.snapshots:
            prune_snapshots(settings.audit.snapshot_days)

    def emit(self, obj: dict) -> None:
        with self._emit_lock:
            self._emit(obj)

    def _hook_done(self, r: HookResult) -> None:
        d = r.decision
        detail = {"returncode": r.returncode, "timed_out": r.timed_out, "error": r.error, "output": r.output}
        self.audit_out.log(Event("hook", d.event, d.person_id, d.name, stream_t=d.t, frame=d.frame, detail=detail))
        self.emit({"event": "hook", "for": d.event, "person_id": d.person_id, "t": d.t, "frame": d.frame, **detail})

    def feed_status(self, status: FeedStatus) -> None:
        """Camera trouble, and its end, are news for the operator and the audit log."""
        if status.state == FeedState.CAMERA_LOST:
            self._camera_lost = True
            self.emit({"event": "camera", "reason": status.detail, "retry_in_s": status.retry_in_s})
            self.audit_out.log(Event("camera", status.detail, detail={"retry_in_s": status.retry_in_s}))
        elif status.state == FeedState.RUNNING and self._camera_lost:
            self._camera_lost = False
            why = f"{status.source} is delivering frames again"
            self.emit({"event": "camera", "reason": why, "retry_in_s": None})
            self.audit_out.log(Event("camera", why))

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
        self.audit_out.check()
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
                self.audit_out.log(Event("error", "identity", stream_t=frame.t, frame=frame.index, detail={"error": error}))
        decisions = self.controller.decide(result)
        for d in decisions:
            detail = self._snapshot(frame, result, d) or {}
            for sink in self.sinks:
                sink.deliver(d, detail)
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


_PRINT = threading.Lock()


def print_json(obj: dict) -> None:
    """One JSON object per line, whole, whichever thread prints it (the runner, the hook
    worker, the store link)."""
    line = json.dumps(obj)
    with _PRINT:
        print(line, flush=True)
