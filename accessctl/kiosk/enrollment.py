"""Guided enrollment from a camera: one live person, good faces, a few head poses.

One template is enough to be recognised, but a template is kept for years, so the
capture asks for a face straight on and slightly turned either way, and takes each
only when it would make a good template: exactly one face in view, large and sharp
enough, turned the way asked, and judged live by the same liveness monitor as the
door (a photo held up cannot be enrolled). Every sample must come from the same
person: a face that appears in place of the first one, and does not match it,
starts the capture over.

This is the model the enrollment wizard shows; it knows nothing of Qt, and the
wizard feeds it frames from a :class:`~accessctl.frames.capture.FrameFeed`, as the kiosk.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accessctl.config import Settings
from accessctl.door.pipeline import FaceState, FrameResult, Pipeline
from accessctl.errors import AccessctlError
from accessctl.frames.capture import FeedState, FeedStatus, FrameFeed
from accessctl.frames.sources import Frame
from accessctl.identity.matching import EncodedFace, quality_problem, quality_score
from accessctl.liveness.saved import LivenessModel, load_liveness
from accessctl.liveness.verdict import LivenessState
from accessctl.storage.gallery import Gallery
from accessctl.thresholds import match_threshold
from accessctl.workers import start_worker

HOLD_FRAMES = 2  # consecutive good frames of a pose before the sharpest is taken


@dataclass(frozen=True)
class Pose:
    name: str
    prompt: str
    yaw: tuple[float, float]  # degrees; positive when the person turns to their left


POSES = (
    Pose("straight", "Look straight at the camera", (-8.0, 8.0)),
    Pose("left", "Turn your head slightly to your left", (8.0, 30.0)),
    Pose("right", "Turn your head slightly to your right", (-30.0, -8.0)),
)


@dataclass(frozen=True)
class CaptureState:
    """What the capture screen shows after a frame."""

    prompt: str  # what the person should do now
    problems: tuple[str, ...]  # why this frame was not taken, most important first
    captured: tuple[tuple[str, EncodedFace], ...]  # (source, face) per pose taken so far, pose order
    poses_done: tuple[str, ...]
    result: FrameResult | None  # the faces of this frame, for drawing
    notice: str = ""  # something that just happened ("started over: ...")

    @property
    def done(self) -> bool:
        return len(self.poses_done) == len(POSES)


class EnrollmentCapture:
    def __init__(self, gallery: Gallery, settings: Settings, liveness: LivenessModel) -> None:
        self.settings = settings
        self.pipeline = Pipeline(gallery, settings, liveness)
        self.reset()

    def reset(self) -> None:
        self._taken: dict[str, tuple[str, EncodedFace, float]] = {}  # pose -> (source, face, quality)
        self._track: int | None = None
        self._holding: list[tuple[str, EncodedFace, float]] = []
        self._holding_pose: str | None = None

    def _state(self, problems: list[str], result: FrameResult | None, notice: str = "") -> CaptureState:
        missing = [p for p in POSES if p.name not in self._taken]
        prompt = missing[0].prompt if missing else "Done: every pose is captured"
        captured = tuple((self._taken[p.name][0], self._taken[p.name][1]) for p in POSES if p.name in self._taken)
        done = tuple(p.name for p in POSES if p.name in self._taken)
        return CaptureState(prompt, tuple(problems), captured, done, result, notice)

    def _same_person(self, face: FaceState) -> bool:
        """Does a new track's face match what was captured so far?"""
        assert face.face is not None
        emb = self.pipeline.encoder.encode(face.face.chip[None])[0]
        first = next(iter(self._taken.values()))[1]
        return float(np.linalg.norm(emb - first.embedding)) <= match_threshold(
            self.settings, self.pipeline.encoder.encoder_id
        )

    def step(self, frame: Frame) -> CaptureState:
        result = self.pipeline.process(frame)
        if len(self._taken) == len(POSES):
            return self._state([], result)
        if not result.faces:
            self._holding = []
            return self._state(["No face in view: stand in front of the camera"], result)
        if len(result.faces) > 1:
            self._holding = []
            return self._state(
                [f"{len(result.faces)} faces in view: only the person enrolling may be in front of the camera"], result
            )
        face = result.faces[0]
        notice = ""
        if face.track_id != self._track:
            if self._taken and not self._same_person(face):
                self.reset()
                notice = "A different face appeared: starting over"
            self._track = face.track_id
            self._holding = []
        if face.liveness.state == LivenessState.SPOOF:
            self.reset()
            self._track = face.track_id
            return self._state(
                ["Photo or screen detected: enrollment needs the person themselves"],
                result,
                "Started over: a photo or screen was detected",
            )
        assert face.face is not None
        q = face.face.quality
        problems = []
        problem = quality_problem(q, self.settings)
        if problem:
            problems.append(problem[0].upper() + problem[1:])
        pose = next((p for p in POSES if p.name not in self._taken and p.yaw[0] <= q.yaw <= p.yaw[1]), None)
        if pose is None:
            wanted = next(p for p in POSES if p.name not in self._taken)
            lo, hi = wanted.yaw
            problems.append(f"{wanted.prompt} (head at {q.yaw:+.0f} degrees, wanted {lo:+.0f} to {hi:+.0f})")
        if face.liveness.state == LivenessState.CHECKING:
            problems.append("Checking that this is a live person: look at the camera")
        if problems or pose is None:
            self._holding = []
            return self._state(problems, result, notice)
        if pose.name != self._holding_pose:
            self._holding, self._holding_pose = [], pose.name
        sample = EncodedFace(face.face, self.pipeline.encoder.encode(face.face.chip[None])[0])
        self._holding.append((f"camera frame {frame.index} ({pose.name})", sample, quality_score(q)))
        if len(self._holding) >= HOLD_FRAMES:
            self._taken[pose.name] = max(self._holding, key=lambda s: s[2])
            self._holding = []
            notice = f"Captured: {pose.name}"
        return self._state([], result, notice)


@dataclass
class _Capture:
    """One start of a capture; a restart makes a new one, the old one winds down."""

    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    feed: FrameFeed | None = None
    state: CaptureState | None = None
    message: str = "Starting the camera…"
    finished: bool = False  # every pose taken, the video ended, or an error


class CaptureSession:
    """:class:`EnrollmentCapture` on its own thread, over its own feed of the kiosk's
    source (the camera is handed over by the feed's camera lock). The feed stops as soon
    as every pose is taken, so the camera goes back to the kiosk while the admin
    reviews. Neither starting nor stopping waits for the worker."""

    def __init__(
        self,
        sources: str | Sequence[str],
        settings: Settings,
        *,
        realtime: bool = True,
        gallery_path: Path | None = None,
    ) -> None:
        self.sources = [sources] if isinstance(sources, str) else list(sources)
        self.settings = settings
        self.realtime = realtime
        self.gallery_path = gallery_path
        self._run = _Capture()
        self._run.finished = True

    def start(self) -> None:
        self.stop()
        run = self._run = _Capture()
        start_worker(self._work, (run,), "accessctl-enroll", lambda: self._stop_capture(run))

    def stop(self) -> None:
        self._stop_capture(self._run)

    @staticmethod
    def _stop_capture(run: _Capture) -> None:
        run.stop.set()
        if run.feed is not None:
            run.feed.stop(wait_s=0)

    @property
    def finished(self) -> bool:
        return self._run.finished

    @property
    def feed(self) -> FrameFeed | None:
        return self._run.feed

    def latest(self) -> tuple[Frame | None, CaptureState | None, str]:
        """The newest frame (preview), the newest capture state, and a status line."""
        run = self._run
        with run.lock:
            return (run.feed.latest if run.feed is not None else None), run.state, run.message

    @staticmethod
    def _say(run: _Capture, message: str) -> None:
        with run.lock:
            run.message = message

    def _on_status(self, run: _Capture, status: FeedStatus) -> None:
        if status.state == FeedState.CAMERA_LOST:
            self._say(run, f"Camera unavailable ({status.detail}); retrying in {status.retry_in_s:g} s")
        elif status.state == FeedState.RUNNING:
            self._say(run, "")

    def _work(self, run: _Capture) -> None:
        try:
            with Gallery(self.gallery_path) as gallery:
                capture = EnrollmentCapture(gallery, self.settings, load_liveness())
                feed = run.feed = FrameFeed(
                    self.sources, realtime=self.realtime, on_status=lambda s: self._on_status(run, s)
                )
                if run.stop.is_set():
                    return
                with feed:
                    for frame in feed.frames():
                        state = capture.step(frame)
                        with run.lock:
                            run.state = state
                        if state.done:
                            self._say(run, "Every pose is captured")
                            return
                if not run.stop.is_set():
                    self._say(run, "The video ended before every pose was captured: start over, or use image files")
        except AccessctlError as exc:
            self._say(run, f"Cannot capture: {exc}")
        finally:
            run.finished = True
