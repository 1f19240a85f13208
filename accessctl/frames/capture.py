"""Frames as they arrive: a capture thread between frame sources and the one consumer.

A camera delivers frames whether or not anyone is ready for them. A consumer slower
than the camera must be handed the newest frame, not a backlog, or the time from a
face to a decision would grow without bound; ``drop=True`` keeps one slot and
overwrites it. A recorded video is different: processing every frame makes a run
reproducible, so ``drop=False`` hands over every frame and makes the reader wait.
``realtime=True`` plays a file at its own clock, as a camera would deliver it. Both
kinds go through this one class, so a video exercises the camera's code path.

A camera that cannot be opened, or stops delivering, is reopened with back-off for as
long as the feed runs: the feed reports it through ``on_status`` and never dies of
it. A file that cannot be read ends the feed, and :meth:`FrameFeed.frames` raises its
:class:`~accessctl.errors.VideoError` once the frames before the fault are consumed.

Frames leave the feed re-stamped: ``index`` and ``t`` keep increasing across a
playlist, a loop or a camera reopened (a camera's ``t`` is wall-clock time since the
feed started), ``segment`` says which continuous piece a frame is from, and
``captured`` when it was read.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from accessctl.errors import VideoError
from accessctl.frames.sources import Frame, open_source
from accessctl.textenum import Label
from accessctl.workers import start_worker

RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0)
QUEUE_FRAMES = 2  # drop=False: frames read ahead of the consumer


# FeedStatus.state values
class FeedState(Label):
    OPENING = "opening"
    RUNNING = "running"
    CAMERA_LOST = "camera_lost"  # reconnecting, with backoff
    ENDED = "ended"  # the last video ended
    FAILED = "failed"  # a file could not be read


@dataclass(frozen=True)
class FeedStatus:
    state: FeedState
    source: str
    detail: str = ""
    retry_in_s: float | None = None


@dataclass
class FeedStats:
    captured: int = 0  # frames read from the sources
    delivered: int = 0  # frames handed to the consumer
    dropped: int = 0  # frames overwritten before the consumer took them (drop=True only)


def is_camera(spec: str | int) -> bool:
    return isinstance(spec, int) or str(spec).isdigit()


_camera_locks: dict[int, threading.Lock] = {}
_camera_locks_guard = threading.Lock()


def _camera_lock(spec: str | int) -> threading.Lock:
    """One feed at a time per camera in this process: the kiosk and the enrollment
    wizard hand the camera over through this lock, so neither has to wait for the other
    on the GUI thread."""
    with _camera_locks_guard:
        return _camera_locks.setdefault(int(spec), threading.Lock())


class FrameFeed:
    """Frames from one source, or several played one after another (a playlist).

    ``drop`` defaults to True for a camera or a realtime file, False otherwise, for
    each source of a playlist on its own (files before a camera are not dropped unless
    played in real time); ``realtime`` defaults to True for a camera (which is realtime
    anyway).
    """

    def __init__(
        self,
        specs: str | int | Sequence[str | int],
        *,
        drop: bool | None = None,
        realtime: bool | None = None,
        loop: bool = False,
        on_status: Callable[[FeedStatus], None] | None = None,
        reconnect_delays_s: Sequence[float] = RECONNECT_DELAYS_S,
    ) -> None:
        self.specs = [specs] if isinstance(specs, (str, int)) else list(specs)
        if not self.specs:
            raise VideoError("no frame source given")
        self.live = any(is_camera(s) for s in self.specs)
        self.realtime = self.live if realtime is None else realtime
        self.drop = (self.live or self.realtime) if drop is None else drop
        self._file_drop = self.realtime if drop is None else drop
        self.loop = loop
        self.on_status = on_status
        self.reconnect_delays_s = tuple(reconnect_delays_s)
        self.stats = FeedStats()
        self.status = FeedStatus(FeedState.OPENING, str(self.specs[0]))
        self._cond = threading.Condition()
        self._queue: deque[Frame] = deque()
        self._latest: Frame | None = None
        self._ended = False
        self._error: VideoError | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start = 0.0
        self._next_index = 0
        self._segment = -1
        self._t_offset = 0.0  # files: added to each file's own clock
        self._t_next = 0.0  # files: where the next file's clock starts

    # -- consumer side ----------------------------------------------------------------
    def start(self) -> "FrameFeed":
        if self._thread is None:
            self._start = time.monotonic()
            self._thread = start_worker(self._capture, (), "accessctl-capture", lambda: self.stop(wait_s=0))
        return self

    def stop(self, wait_s: float = 5.0) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(wait_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def __enter__(self) -> "FrameFeed":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def latest(self) -> Frame | None:
        """The newest frame read, taken or not: what a preview shows."""
        return self._latest

    def frames(self, poll_s: float = 0.1) -> Iterator[Frame]:
        """Frames for the consumer until the sources end or the feed is stopped.

        Raises the VideoError of a file that could not be read, after the frames
        before it."""
        self.start()
        while True:
            with self._cond:
                while not self._queue and not self._ended and not self._stop.is_set():
                    self._cond.wait(poll_s)
                if self._queue:
                    frame = self._queue.popleft()
                    self.stats.delivered += 1
                    self._cond.notify_all()
                elif self._error is not None and not self._stop.is_set():
                    raise self._error
                else:
                    return
            yield frame

    # -- capture thread -------------------------------------------------------------
    def _say(self, status: FeedStatus) -> None:
        self.status = status
        if self.on_status is not None:
            self.on_status(status)

    def _put(self, frame: Frame, drop: bool) -> bool:
        """Hand a frame over; False when the feed was stopped meanwhile."""
        with self._cond:
            if drop:
                if self._queue:
                    self._queue.clear()
                    self.stats.dropped += 1
            else:
                while len(self._queue) >= QUEUE_FRAMES and not self._stop.is_set():
                    self._cond.wait(0.1)
            if self._stop.is_set():
                return False
            self._queue.append(frame)
            self._latest = frame
            self.stats.captured += 1
            self._cond.notify_all()
        return True

    def _capture(self) -> None:
        spec: str | int = self.specs[0]
        try:
            while not self._stop.is_set():
                for spec in self.specs:
                    if self._stop.is_set():
                        break
                    if is_camera(spec):
                        self._camera(spec)
                    else:
                        self._file(spec)
                if not self.loop:
                    break
            if not self._stop.is_set():
                self._say(FeedStatus(FeedState.ENDED, str(spec), "the end of the video"))
        except VideoError as exc:
            self._error = exc
            self._say(FeedStatus(FeedState.FAILED, str(spec), str(exc)))
        finally:
            with self._cond:
                self._ended = True
                self._cond.notify_all()

    def _stamp(self, frame: Frame, t: float) -> Frame:
        out = dataclasses.replace(frame, index=self._next_index, t=t, segment=self._segment, captured=time.monotonic())
        self._next_index += 1
        return out

    def _file(self, spec: str | int) -> None:
        """Play one file (errors propagate: a file does not come back by waiting)."""
        source = open_source(spec)
        self._segment += 1
        self._t_offset = self._t_next
        self._say(FeedStatus(FeedState.RUNNING, source.name))
        wall0: float | None = None
        first_t = 0.0
        last_t, step = 0.0, 1.0 / 30.0
        with source:
            for frame in source:
                t = self._t_offset + frame.t
                if self.realtime:
                    if wall0 is None:
                        wall0, first_t = time.monotonic(), frame.t
                    wait = wall0 + (frame.t - first_t) - time.monotonic()
                    if wait > 0 and self._stop.wait(wait):
                        return
                if frame.t > last_t:
                    step = frame.t - last_t
                last_t = frame.t
                if not self._put(self._stamp(frame, t), self._file_drop):
                    return
        self._t_next = self._t_offset + last_t + step

    def _camera(self, spec: str | int) -> None:
        """Read a camera until the feed stops, reopening it with back-off when it fails."""
        lock = _camera_lock(spec)
        while not lock.acquire(timeout=0.1):  # another feed of this process still holds it
            if self._stop.is_set():
                return
        try:
            self._read_camera(spec)
        finally:
            lock.release()

    def _read_camera(self, spec: str | int) -> None:
        attempt = 0
        while not self._stop.is_set():
            got = 0
            try:
                source = open_source(spec)
            except VideoError as exc:
                why = str(exc)
            else:
                self._segment += 1
                self._say(FeedStatus(FeedState.RUNNING, source.name))
                with source:
                    try:
                        for frame in source:
                            got += 1
                            if not self._put(self._stamp(frame, time.monotonic() - self._start), self.drop):
                                return
                    except VideoError as exc:
                        why = str(exc)
                    else:
                        why = f"{source.name} stopped delivering frames"
            if self._stop.is_set():
                return
            attempt = 0 if got else attempt  # it worked for a while: back-off starts over
            delay = self.reconnect_delays_s[min(attempt, len(self.reconnect_delays_s) - 1)]
            self._say(FeedStatus(FeedState.CAMERA_LOST, f"camera {spec}", why, delay))
            attempt += 1
            if self._stop.wait(delay):
                return
