"""The stream loop: frames -> pipeline -> decisions -> audit log, hook and listeners.

Headless mode prints one JSON object per line for each decision, each change of a
face's liveness state and each hook result. A video or frame folder is processed
frame by frame with nothing dropped, so a run is reproducible; a camera that stops
delivering frames is reopened with back-off, and the runner says so, but never dies
of it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .access import AccessController, Decision
from .audit import AuditError, AuditLog, Event
from .config import Settings
from .errors import VideoError
from .gallery import Gallery
from .hook import HookResult, HookRunner
from .liveness import load_liveness
from .pipeline import FrameResult, Pipeline
from .sources import FrameSource, open_source

RECONNECT_DELAYS_S = (0.5, 1, 2, 5, 10)


@dataclass
class RunStats:
    frames: int = 0
    decisions: int = 0
    seconds: float = 0.0


class Runner:
    def __init__(self, gallery: Gallery, settings: Settings, audit: AuditLog,
                 emit: Callable[[dict], None], on_frame: Callable[[FrameResult, list[Decision]], None] | None = None) -> None:
        self.settings = settings
        self.audit = audit
        self._emit_lock = threading.Lock()
        self._emit = emit
        self.on_frame = on_frame
        self.pipeline = Pipeline(gallery, settings, load_liveness())
        self.controller = AccessController(settings.access)
        self.hooks = (HookRunner(settings.hook.path, self._hook_done, kiosk=settings.kiosk.name,
                                 timeout_s=settings.hook.timeout_s, on_deny=settings.hook.on_deny)
                      if settings.hook.path else None)
        self._states: dict[int, str] = {}
        self.stopped = threading.Event()

    def emit(self, obj: dict) -> None:
        with self._emit_lock:
            self._emit(obj)

    def _log(self, event: Event) -> None:
        try:
            self.audit.append(event)
        except AuditError as exc:  # the door keeps working; the operator is told
            self.emit({"event": "error", "reason": "audit", "detail": str(exc)})

    def _hook_done(self, r: HookResult) -> None:
        d = r.decision
        detail = {"returncode": r.returncode, "timed_out": r.timed_out, "error": r.error, "output": r.output}
        self._log(Event("hook", d.event, d.person_id, d.name, stream_t=d.t, frame=d.frame, detail=detail))
        self.emit({"event": "hook", "for": d.event, "person_id": d.person_id, "t": d.t, "frame": d.frame, **detail})

    def step(self, frame) -> tuple[FrameResult, list[Decision]]:
        result = self.pipeline.process(frame)
        for face in result.faces:
            if self._states.get(face.track_id) != face.liveness.state:
                self._states[face.track_id] = face.liveness.state
                self.emit({"event": "state", "track": face.track_id, "state": face.liveness.state,
                           "liveness": None if face.liveness.p_live is None else round(face.liveness.p_live, 4),
                           "t": round(frame.t, 3), "frame": frame.index})
        for tid in result.ended_tracks:
            self._states.pop(tid, None)
        decisions = self.controller.decide(result)
        for d in decisions:
            self.emit(d.to_json())
            self._log(Event(d.event, d.reason, d.person_id, d.name, d.distance, d.liveness, d.t, d.frame))
            if self.hooks is not None:
                self.hooks.submit(d)
        if self.on_frame is not None:
            self.on_frame(result, decisions)
        return result, decisions

    def run(self, spec: str) -> RunStats:
        """Process a source to its end (files) or until stopped (cameras)."""
        stats = RunStats()
        t0 = time.perf_counter()
        attempt = 0
        try:
            while not self.stopped.is_set():
                try:
                    source: FrameSource = open_source(spec)
                except VideoError as exc:
                    if not str(spec).isdigit():
                        raise
                    self._camera_problem(str(exc), attempt)
                    attempt += 1
                    continue
                with source:
                    got = 0
                    for frame in source:
                        got += 1
                        stats.frames += 1
                        stats.decisions += len(self.step(frame)[1])
                        if self.stopped.is_set():
                            break
                if not source.live:
                    break
                attempt = attempt if got == 0 else 0  # it worked for a while: back-off starts over
                self._camera_problem(f"{source.name} stopped delivering frames", attempt)
                attempt += 1
        finally:
            if self.hooks is not None:
                self.hooks.close()
            stats.seconds = time.perf_counter() - t0
        return stats

    def _camera_problem(self, why: str, attempt: int) -> None:
        delay = RECONNECT_DELAYS_S[min(attempt, len(RECONNECT_DELAYS_S) - 1)]
        self.emit({"event": "camera", "reason": why, "retry_in_s": delay})
        self._log(Event("camera", why, detail={"retry_in_s": delay}))
        self.stopped.wait(delay)


def print_json(obj: dict) -> None:
    print(json.dumps(obj), flush=True)
