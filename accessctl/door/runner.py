"""The stream loop: frames -> pipeline -> decisions -> audit log, hook and listeners.

Headless mode prints one JSON object per line for each decision, each change of a
face's liveness state, each hook result and each camera problem. Frames come from a
:class:`~accessctl.frames.capture.FrameFeed`, the same capture thread the kiosk window uses:
a video or frame folder is processed frame by frame with nothing dropped, so a run is
reproducible; a camera hands over its newest frame, and one that stops delivering is
reopened with back-off, which the runner reports but never dies of.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from accessctl.config import sha256_file
from accessctl.door.access import AccessController, Decision, EventKind
from accessctl.door.events import (
    CameraNews,
    ChallengeNews,
    ChallengeStage,
    DoorEvent,
    HookDone,
    Listener,
    LivenessChange,
    Problem,
    ProblemKind,
)
from accessctl.door.hook import HookResult, HookRunner
from accessctl.door.outputs import AuditSink, ListenerSink, Sink
from accessctl.door.pipeline import FrameResult, Pipeline
from accessctl.door.report import Reporter
from accessctl.errors import AccessctlError
from accessctl.frames.capture import FeedState, FeedStatus, FrameFeed
from accessctl.frames.sources import Frame
from accessctl.liveness.challenge import ChallengeState, ChallengeStatus
from accessctl.liveness.features import slowest_fps
from accessctl.liveness.saved import META_FILE
from accessctl.storage.audit import (
    AuditLog,
    Event,
    prune_snapshots,
    save_snapshot,
)


@dataclass
class RunStats:
    frames: int = 0
    decisions: int = 0
    seconds: float = 0.0


class PaceWatch:
    """Notices when frames are processed too far apart for a liveness window to form.

    A window takes frames ``step_s`` apart and refuses a gap (a face lost, frames
    dropped); below :func:`~accessctl.liveness.features.slowest_fps` none forms, no face is ever
    judged, and the kiosk, failing closed, lets nobody in and says nothing. A realtime
    kiosk on a starved CPU, or a low-frame-rate camera or video, gets there: the
    operator must hear it, once when it starts and once when it ends.
    """

    SPAN_S = 3.0  # the rate is judged over this much of the stream

    def __init__(self, step_s: float) -> None:
        self.min_fps = slowest_fps(step_s)
        self._t: deque[float] = deque()
        self._segment = 0
        self.slow = False
        self.fps: float | None = None  # the rate over the last SPAN_S of this stream (None before one)

    def add(self, frame: Frame) -> float | None:
        """The frame rate when the pace has just crossed ``min_fps`` (either way), else None."""
        if frame.segment != self._segment or (self._t and frame.t < self._t[-1]):
            self._t.clear()  # a reopened camera or the next file: a new stream, not a gap
            self._segment = frame.segment
            self.fps = None
        self._t.append(frame.t)
        while len(self._t) > 2 and frame.t - self._t[1] >= self.SPAN_S:
            self._t.popleft()
        span = frame.t - self._t[0]
        if span < self.SPAN_S:
            return None
        fps = self.fps = (len(self._t) - 1) / span
        if (fps < self.min_fps) != self.slow:
            self.slow = not self.slow
            return fps
        return None


class Runner:
    """Everything that happens to one frame after it is read, and the loop over a feed.

    ``on_frame(frame, result, decisions)`` is called on the runner's thread after each
    frame; the kiosk window's model uses it, and must return quickly. ``reporter``
    (MQTT, metrics, the health file) hears every event and every frame.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        audit: AuditLog,
        emit: Listener,
        on_frame: Callable[[Frame, FrameResult, list[Decision]], None] | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        audit.check_writable()  # a door that cannot log does not start
        self.settings = settings = pipeline.settings
        self.audit = audit
        self._emit_lock = threading.Lock()
        self._emit = emit
        self.on_frame = on_frame
        self.reporter = reporter
        self.pipeline = pipeline
        self.pipeline.warm_up()
        liveness = pipeline.monitor.model
        if reporter is not None:
            reporter.models(self.pipeline.encoder.encoder_id, sha256_file(liveness.source / META_FILE))
        self.pace = PaceWatch(liveness.step_s)
        self.controller = AccessController(settings.access)
        self.hooks = (
            HookRunner(
                settings.hook.path,
                self._hook_done,
                kiosk=settings.kiosk.name,
                timeout_s=settings.hook.timeout_s,
                on_deny=settings.hook.on_deny,
            )
            if settings.hook.path
            else None
        )
        self._states: dict[int, str] = {}
        # per track: its challenge's state and step, as last told
        self._challenges: dict[int, tuple[ChallengeState, int]] = {}
        self._last_error: str | None = None
        self._camera_lost = False
        self._feed: FrameFeed | None = None
        self.stopped = threading.Event()
        self.audit_out = AuditSink(audit, settings.audit, self.emit)
        # Every decision goes to each of these in turn: logged first, the hook last.
        self.sinks: list[Sink] = [self.audit_out, ListenerSink(self.emit)]
        if self.hooks is not None:
            self.sinks.append(self.hooks)
        if settings.audit.snapshots:
            prune_snapshots(settings.audit.snapshot_days)

    def emit(self, event: DoorEvent) -> None:
        with self._emit_lock:
            self._emit(event)
            if self.reporter is not None:
                self.reporter.tell(event)

    def _hook_done(self, r: HookResult) -> None:
        d = r.decision
        done = HookDone(d.event, d.person_id, d.t, d.frame, r.returncode, r.timed_out, r.error, r.output, r.seconds)
        self.audit_out.log(
            Event("hook", d.event, d.person_id, d.name, stream_t=d.t, frame=d.frame, detail=done.detail())
        )
        self.emit(done)

    def feed_status(self, status: FeedStatus) -> None:
        """Camera trouble, and its end, are news for the operator and the audit log."""
        if self.reporter is not None:
            self.reporter.alive()  # the loop waits for a camera being reopened: not stuck
        if status.state == FeedState.CAMERA_LOST:
            self._camera_lost = True
            self.emit(CameraNews(status.detail, status.retry_in_s))
            self.audit_out.log(Event("camera", status.detail, detail={"retry_in_s": status.retry_in_s}))
        elif status.state == FeedState.RUNNING and self._camera_lost:
            self._camera_lost = False
            why = f"{status.source} is delivering frames again"
            self.emit(CameraNews(why, None))
            self.audit_out.log(Event("camera", why))

    def _snapshot(self, frame: Frame, result: FrameResult, d: Decision) -> Decision:
        """A denial with its face saved (``[audit] snapshots``): the file's name, or why not."""
        if d.event != EventKind.DENIED or not self.settings.audit.snapshots:
            return d
        face = next((f for f in result.faces if f.track_id == d.track_id), None)
        if face is None:
            return d
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        try:
            path = save_snapshot(frame.image, face.box, f"{stamp}-{d.reason}-f{frame.index}-t{d.track_id}.jpg")
        except (OSError, AccessctlError) as exc:
            return dataclasses.replace(d, snapshot_error=str(exc))
        return dataclasses.replace(d, snapshot=path.name)

    def step(self, frame: Frame) -> tuple[FrameResult, list[Decision]]:
        if self.hooks is not None and not self.hooks.alive:  # fail closed: a grant would open nothing
            raise AccessctlError("the door hook's worker has stopped, so no door can open")
        self.audit_out.check()
        result = self.pipeline.process(frame)
        self._check_pace(frame)
        for face in result.faces:
            if self._states.get(face.track_id) != face.liveness.state:
                self._states[face.track_id] = face.liveness.state
                v = face.liveness
                self.emit(LivenessChange(face.track_id, v.state, v.p_live, v.p_motion, frame.t, frame.index))
            self._tell_challenge(face.track_id, face.challenge, frame)
        for tid, status in result.abandoned:
            self._tell_challenge(tid, status, frame)
        for tid in result.ended_tracks:
            self._states.pop(tid, None)
            self._challenges.pop(tid, None)
        for error in result.errors:
            if error != self._last_error:  # once per new problem, not once per frame
                self._last_error = error
                self._report(ProblemKind.IDENTITY, error, frame)
        decisions = [self._snapshot(frame, result, d) for d in self.controller.decide(result)]
        for d in decisions:
            for sink in self.sinks:
                sink.deliver(d)
        if self.reporter is not None:
            self.reporter.frame(
                result.timings_ms,
                dropped=self._feed.stats.dropped if self._feed else 0,
                audit_backlog=self.audit_out.held,
                fps=self.pace.fps,
                min_fps=self.pace.min_fps,
            )
        if self.on_frame is not None:
            self.on_frame(frame, result, decisions)
        return result, decisions

    def _tell_challenge(self, track: int, status: ChallengeStatus | None, frame: Frame) -> None:
        """A challenge asked, each further step, and how it ended: to the listeners and the audit log."""
        if status is None or self._challenges.get(track) == (status.state, status.step):
            return
        first = track not in self._challenges
        self._challenges[track] = (status.state, status.step)
        if status.state == ChallengeState.ACTIVE:
            stage = ChallengeStage.ISSUED if first else ChallengeStage.STEP
        else:
            stage = ChallengeStage(str(status.state))
        news = ChallengeNews(
            stage,
            track,
            str(status.turn),
            status.step,
            status.steps,
            status.deadline_t - status.issued_t,
            None if status.failure is None else str(status.failure),
            frame.t,
            frame.index,
        )
        self.emit(news)
        self.audit_out.log(Event("challenge", stage, stream_t=frame.t, frame=frame.index, detail=news.detail()))

    def _check_pace(self, frame: Frame) -> None:
        fps = self.pace.add(frame)
        if fps is None:
            return
        if self.pace.slow:
            why = (
                f"frames are processed {fps:.1f} per second, fewer than the {self.pace.min_fps:.1f} the liveness "
                "check needs: no face can be judged, so no door opens"
            )
        else:
            why = f"frames are processed {fps:.1f} per second again, enough for the liveness check"
        self._report(ProblemKind.TOO_SLOW, why, frame)

    def _report(self, reason: ProblemKind, why: str, frame: Frame) -> None:
        """A problem that does not stop the kiosk: to the listeners and the audit log."""
        self.emit(Problem(reason, why, frame.t))
        self.audit_out.log(Event("error", reason, stream_t=frame.t, frame=frame.index, detail={"error": why}))

    def run(self, feed: FrameFeed) -> RunStats:
        """Process the feed to its end (files) or until :meth:`stop` (cameras)."""
        stats = RunStats()
        t0 = time.perf_counter()
        self._feed = feed
        if self.reporter is not None:
            self.reporter.ready()
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
