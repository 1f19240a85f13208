"""The kiosk as a model: what the screen at the door shows, kept apart from Qt.

:class:`KioskSession` runs the access pipeline on a worker thread (the
:class:`~accessctl.door.runner.Runner` over a :class:`~accessctl.frames.capture.FrameFeed`, the
same code as headless mode) and keeps the latest of everything a screen needs: the
newest frame for the preview, the newest processed faces, the decision banner, the
state of the camera and the rates. :meth:`KioskSession.view` returns it as one frozen
record, so the window (``gui/``) only draws and never waits for inference.

Fail closed: when the pipeline cannot run (the gallery locked or switched to another
encoder, the liveness model missing, the video unreadable) the session says "out of
service", nobody is let in, and it tries again every few seconds.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from accessctl.config import Settings
from accessctl.door.access import Decision, EventKind, Reason
from accessctl.door.assembly import Door, open_door
from accessctl.door.events import DoorEvent, HookDone, Listener, Problem, ProblemKind, StoreNews
from accessctl.door.pipeline import FaceState, FrameResult
from accessctl.door.report import Reporter
from accessctl.errors import AccessctlError
from accessctl.frames.capture import FeedStats, FeedStatus, FrameFeed
from accessctl.frames.sources import Frame
from accessctl.liveness.challenge import ChallengeState, ChallengeStatus, Turn
from accessctl.liveness.verdict import LivenessState
from accessctl.textenum import Label
from accessctl.workers import start_worker

log = logging.getLogger(__name__)

RETRY_S = 5.0  # out of service: how long before the pipeline is started again
RATE_WINDOW_S = 2.0  # frames and results per second are averaged over this long
WARNING_S = 60.0  # how long a passing problem (a failed hook, a locked audit log) stays on the status line


class KioskState(Label):
    """What the screen at the door is in: the feed's own states, and the kiosk's."""

    STARTING = "starting"
    OPENING = "opening"
    RUNNING = "running"
    CAMERA_LOST = "camera_lost"
    ENDED = "ended"
    FAILED = "failed"
    OUT_OF_SERVICE = "out_of_service"
    STOPPED = "stopped"


@dataclass(frozen=True)
class Banner:
    """A decision, as the person at the door reads it."""

    event: EventKind
    headline: str  # ACCESS GRANTED / ACCESS DENIED / PAUSED
    detail: str  # the name, or why not
    shown_at: float  # time.monotonic()
    track_id: int  # the face it is about: the banner stays while that face is in view


def banner_for(d: Decision, now: float) -> Banner:
    if d.event == EventKind.GRANTED:
        return Banner(d.event, "ACCESS GRANTED", f"Welcome, {d.name}", now, d.track_id)
    if d.event == EventKind.ALERT:
        return Banner(d.event, "PAUSED", "Too many refused attempts: please wait a moment", now, d.track_id)
    why = {
        Reason.SPOOF: "Photo or screen detected",
        Reason.UNKNOWN: "Not recognised",
        Reason.UNSURE: "Could not confirm a live person: step away and try again",
        Reason.CHALLENGE: "Head turn not seen: step away and try again",
    }.get(d.reason, str(d.reason))
    return Banner(d.event, "ACCESS DENIED", why, now, d.track_id)


@dataclass(frozen=True)
class KioskView:
    state: KioskState
    message: str  # what the state means, for the screen; "" when all is well
    frame: Frame | None = field(default=None, repr=False)  # newest frame read: the preview
    result: FrameResult | None = field(default=None, repr=False)  # newest frame processed: boxes and states
    banner: Banner | None = None  # the current decision, until it expires
    idle: bool = True  # nobody in front of the camera for a while
    paused: bool = False  # lockout: nobody is let in for now
    warning: str = ""  # the latest problem that does not stop the kiosk (audit log, hook, identity)
    store: str = ""  # a many-door site: "" while the central store is reachable, else why not
    capture_fps: float = 0.0
    inference_fps: float = 0.0
    latency_ms: float | None = None  # from a frame's capture to its result


KEEP_FRAMES = 20_000  # per-frame measurements kept (about 11 minutes at 30 fps)
KEEP_DECISIONS = 1_000


@dataclass
class Measurements:
    """What the benchmark reports about a running kiosk (all wall-clock). Bounded: a
    kiosk runs for months."""

    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP_FRAMES))  # capture -> processed
    inference_ms: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP_FRAMES))  # pipeline time per frame
    # a track's first frame -> its decision
    face_to_decision_s: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP_DECISIONS))
    decisions: deque[Decision] = field(default_factory=lambda: deque(maxlen=KEEP_DECISIONS))


@dataclass
class _Run:
    """One start of the pipeline. A restart makes a new one while the old one winds
    down on its own thread; whatever the old one still reports is ignored."""

    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    door: Door | None = None  # while it runs
    feed: FrameFeed | None = None  # its feed, kept after it ends: the last frame and the feed's counts


class KioskSession:
    def __init__(
        self,
        sources: str | Sequence[str],
        settings: Settings,
        *,
        realtime: bool = True,
        loop: bool = False,
        gallery_path: Path | None = None,
        audit_path: Path | None = None,
        emit: Listener | None = None,
        reporter: Reporter | None = None,
    ) -> None:
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.settings = settings
        self.realtime, self.loop = realtime, loop
        self.gallery_path, self.audit_path = gallery_path, audit_path
        self._emit_to = emit
        self.reporter = reporter  # MQTT, metrics, the health file: made by the caller, outlives restarts
        self.measurements = Measurements()
        self._lock = threading.Lock()
        self._run: _Run | None = None
        self._store = ""  # the store link's news: it outlives pipeline restarts, so not in _reset_view
        self._reset_view()

    def _reset_view(self) -> None:
        self._state, self._message = KioskState.STARTING, "Starting…"
        self._warning, self._warned_at = "", float("-inf")
        self._result: FrameResult | None = None
        self._banner: Banner | None = None
        self._last_face = float("-inf")
        self._paused_until_t = float("-inf")
        self._captures: deque[tuple[float, int]] = deque()  # (when, frames captured by then)
        self._results: deque[float] = deque()
        self._latency: float | None = None
        self._first_seen: dict[int, float] = {}

    # -- control ----------------------------------------------------------------------
    def start(self) -> None:
        if self.running:
            return
        run = _Run()
        with self._lock:
            self._reset_view()
            self._run = run
        run.thread = start_worker(self._work, (run,), "accessctl-kiosk", lambda: self._stop_run(run))

    def stop(self, wait_s: float = 0.0) -> None:
        """Stop the pipeline and let go of the camera (the enrollment wizard needs it).

        Returns at once unless asked to wait: the window never waits for the worker
        (which may be loading models, or finishing a hook). Whoever opens the camera
        next waits for it in its own capture thread (see :mod:`accessctl.frames.capture`)."""
        run = self._run
        if run is None:
            return
        self._stop_run(run)
        if wait_s > 0 and run.thread is not None:
            run.thread.join(wait_s)
        with self._lock:
            if self._run is run:
                self._state, self._message = KioskState.STOPPED, "Stopped"

    @staticmethod
    def _stop_run(run: "_Run") -> None:
        run.stop.set()
        if run.door is not None:
            run.door.stop()

    def restart(self, settings: Settings | None = None) -> None:
        """Start over, with new settings if given (they are read when the pipeline starts)."""
        self.stop()
        if settings is not None:
            self.settings = settings
        self.start()

    def reset_measurements(self) -> None:
        """Frame timings count from now on (decisions already made are kept)."""
        with self._lock:
            decisions = self.measurements.decisions
            self.measurements = Measurements()
            self.measurements.decisions.extend(decisions)

    @property
    def feed_stats(self) -> FeedStats | None:
        """Frames captured, handed over and dropped by the current feed."""
        run = self._run
        return run.feed.stats if run is not None and run.feed is not None else None

    @property
    def running(self) -> bool:
        run = self._run
        return run is not None and not run.stop.is_set() and run.thread is not None and run.thread.is_alive()

    def _current(self, run: "_Run") -> bool:
        return self._run is run and not run.stop.is_set()

    # -- the worker thread -----------------------------------------------------------
    def _work(self, run: "_Run") -> None:
        settings = self.settings
        while not run.stop.is_set():
            try:
                with open_door(
                    settings,
                    self.sources,
                    functools.partial(self._emit, run),
                    reporter=self.reporter,
                    realtime=self.realtime,
                    loop=self.loop,
                    gallery_path=self.gallery_path,
                    audit_path=self.audit_path,
                    on_frame=functools.partial(self._on_frame, run),
                    on_status=functools.partial(self._on_status, run),
                ) as door:
                    if self.reporter is not None:
                        self.reporter.out_of_service("")
                    run.door, run.feed = door, door.feed
                    if run.stop.is_set():
                        return
                    door.run()
                    return  # the files ended, or stop() was called
            except AccessctlError as exc:
                self._out_of_service(run, str(exc))
            except Exception as exc:  # never let the kiosk die silently; fail closed and retry
                log.exception("kiosk pipeline failed")
                self._out_of_service(run, f"internal error: {exc!r}")
            finally:
                run.door = None
            run.stop.wait(RETRY_S)

    def _out_of_service(self, run: "_Run", why: str) -> None:
        if not self._current(run):
            return
        with self._lock:
            self._state, self._message = KioskState.OUT_OF_SERVICE, f"Out of service: {why}"
            self._result, self._banner = None, None
        event = Problem(ProblemKind.OUT_OF_SERVICE, why)
        self._emit(run, event)
        if self.reporter is not None:
            self.reporter.out_of_service(why)
            self.reporter.tell(event)

    def store_changed(self, news: StoreNews) -> None:
        """The central store came or went (``StoreLink``'s notices, from its thread)."""
        with self._lock:
            self._store = "" if news.online else (news.detail or "replica only")
        if self._emit_to is not None:
            self._emit_to(news)

    def problem(self, problem: Problem) -> None:
        """A problem from beside the pipeline (the MQTT broker away, and back): on the
        status line for a while, as the pipeline's own are."""
        self._warn(problem.detail)

    def _warn(self, text: str) -> None:
        with self._lock:
            self._warning, self._warned_at = text, time.monotonic()

    def _emit(self, run: "_Run", event: DoorEvent) -> None:
        if self._emit_to is not None:
            self._emit_to(event)
        if not self._current(run):
            return
        match event:
            case Problem(detail=detail):
                self._warn(detail)
            case HookDone() if event.failed:
                self._warn(f"door hook failed: {event.error or f'exit status {event.returncode}'}")

    def _on_status(self, run: "_Run", status: FeedStatus) -> None:
        if not self._current(run):
            return
        with self._lock:
            self._state = KioskState(status.state)
            if status.state == KioskState.RUNNING:
                self._message = ""
            elif status.state == KioskState.CAMERA_LOST:
                self._message = f"Camera unavailable ({status.detail}); retrying in {status.retry_in_s:g} s"
            elif status.state == KioskState.ENDED:
                self._message = "The video has ended"
            else:
                self._message = status.detail

    def _on_frame(self, run: "_Run", frame: Frame, result: FrameResult, decisions: list[Decision]) -> None:
        if not self._current(run):
            return
        now = time.monotonic()
        with self._lock:
            m = self.measurements
            self._result = result
            self._latency = (now - frame.captured) * 1000.0
            m.latencies_ms.append(self._latency)
            m.inference_ms.append(result.timings_ms.get("total", 0.0))
            self._results.append(now)
            if result.faces:
                self._last_face = now
            for face in result.faces:
                self._first_seen.setdefault(face.track_id, frame.captured)
            for d in decisions:
                self._banner = banner_for(d, now)
                if d.until is not None:  # a lockout: nobody is let in for a while
                    self._paused_until_t = d.until
                m.decisions.append(d)
                if d.track_id in self._first_seen:
                    m.face_to_decision_s.append(now - self._first_seen[d.track_id])
            for tid in result.ended_tracks:
                self._first_seen.pop(tid, None)

    # -- the view ---------------------------------------------------------------------
    def view(self) -> KioskView:
        now = time.monotonic()
        run = self._run
        feed = run.feed if run is not None else None
        frame = feed.latest if feed is not None and self._state != KioskState.OUT_OF_SERVICE else None
        with self._lock:
            if feed is not None:
                self._captures.append((now, feed.stats.captured))
            while self._captures and now - self._captures[0][0] > RATE_WINDOW_S:
                self._captures.popleft()
            while self._results and now - self._results[0] > RATE_WINDOW_S:
                self._results.popleft()
            banner, result = self._banner, self._result
            in_view = (
                result is not None and any(f.track_id == banner.track_id for f in result.faces) if banner else False
            )
            if banner is not None and now - banner.shown_at > self.settings.kiosk.banner_s and not in_view:
                banner = self._banner = None
            return KioskView(
                state=self._state,
                message=self._message,
                frame=frame,
                result=result,
                banner=banner,
                idle=now - self._last_face > self.settings.kiosk.idle_after_s,
                paused=result is not None and result.t < self._paused_until_t,
                warning=self._warning if now - self._warned_at < WARNING_S else "",
                store=self._store,
                capture_fps=_count_rate(self._captures),
                inference_fps=_rate(self._results),
                latency_ms=self._latency,
            )


class Tone(Label):
    """The banner's colour (granted, denied, warning, neutral), and a face box's (checking, live, spoof, unknown)."""

    GRANTED = "granted"
    DENIED = "denied"
    WARNING = "warning"
    NEUTRAL = "neutral"
    CHECKING = "checking"
    LIVE = "live"
    SPOOF = "spoof"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ScreenText:
    tone: Tone
    headline: str
    detail: str


def screen_text(view: KioskView) -> ScreenText:
    """What the banner under the preview says; the window only paints it.

    A door that does not work (out of service, the video over) says so first; then a
    fresh decision; then trouble that may pass (no camera, a lockout); then the
    everyday prompts."""
    if view.state == KioskState.OUT_OF_SERVICE:
        return ScreenText(Tone.DENIED, "OUT OF SERVICE", view.message.removeprefix("Out of service: "))
    if view.state in (KioskState.ENDED, KioskState.STOPPED):
        return ScreenText(Tone.NEUTRAL, view.message, "")
    if view.banner is not None:
        tone = {EventKind.GRANTED: Tone.GRANTED, EventKind.DENIED: Tone.DENIED}.get(view.banner.event, Tone.WARNING)
        return ScreenText(tone, view.banner.headline, view.banner.detail)
    if view.state == KioskState.CAMERA_LOST:
        return ScreenText(Tone.WARNING, "CAMERA UNAVAILABLE", view.message)
    if view.state == KioskState.STARTING:
        return ScreenText(Tone.NEUTRAL, view.message, "")
    if view.paused:
        return ScreenText(Tone.WARNING, "PAUSED", "Too many refused attempts: please wait a moment")
    faces = view.result.faces if view.result is not None else []
    asked = next(
        (f.challenge for f in faces if f.challenge is not None and f.challenge.state == ChallengeState.ACTIVE), None
    )
    if asked is not None:
        return ScreenText(Tone.WARNING, challenge_prompt(asked), f"{asked.time_left:.1f} s left")
    if view.idle or not faces:
        return ScreenText(Tone.NEUTRAL, "Please look at the camera", "")
    return ScreenText(Tone.NEUTRAL, "Checking…", "Look at the camera")


def challenge_prompt(status: ChallengeStatus) -> str:
    """The instruction, with an arrow the way the person should turn: their left is
    the screen's left as they face it, mirrored preview or not."""
    arrow = "\u2190" if status.turn == Turn.LEFT else "\u2192"
    step = f" ({status.step} of {status.steps})" if status.steps > 1 else ""
    return f"{arrow}  TURN YOUR HEAD TO YOUR {str(status.turn).upper()}{step}"


def face_caption(face: FaceState) -> tuple[str, Tone]:
    """The label over a face box and its colour key (checking | live | spoof | unknown)."""
    state = face.liveness.state
    if state == LivenessState.SPOOF:
        return "Photo or screen", Tone.SPOOF
    ch = face.challenge
    if ch is not None and ch.state == ChallengeState.FAILED:
        return "Not confirmed", Tone.SPOOF
    if ch is not None and ch.state == ChallengeState.ACTIVE:
        return f"Turn {ch.turn}", Tone.CHECKING
    if state == LivenessState.UNSURE and ch is None:
        return "Not confirmed", Tone.SPOOF
    if not face.live:
        return "Checking…", Tone.CHECKING
    if face.match is None:
        return "Live", Tone.LIVE
    if face.match.person is None:
        return "Not recognised", Tone.UNKNOWN
    return face.match.person.name, Tone.LIVE


def _rate(stamps: deque[float]) -> float:
    if len(stamps) < 2 or stamps[-1] <= stamps[0]:
        return 0.0
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def _count_rate(samples: deque[tuple[float, int]]) -> float:
    if len(samples) < 2 or samples[-1][0] <= samples[0][0]:
        return 0.0
    return (samples[-1][1] - samples[0][1]) / (samples[-1][0] - samples[0][0])
