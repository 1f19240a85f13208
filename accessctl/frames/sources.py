"""Where frames come from: a camera, a video file or a folder of frames, one interface.

Everything downstream (the kiosk, ``liveness eval``, the benchmark) reads frames through
:func:`open_source`, so a recorded video exercises exactly the code path of the camera.
Frames are RGB uint8 with a timestamp in seconds since the start of the stream: the
container's clock for files (so runs are reproducible), the wall clock for cameras.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from accessctl.errors import ImageError, VideoError
from accessctl.frames.images import IMAGE_SUFFIXES, load_image, to_rgb8

VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
FOLDER_FPS = 30.0  # a frame folder carries no clock; NUAA's webcam ran at about this


@dataclass(frozen=True)
class Frame:
    image: np.ndarray = field(repr=False)  # (H, W, 3) RGB uint8
    index: int  # 0-based position in the stream
    t: float  # seconds since the start of the stream
    # Which continuous piece of the stream this frame belongs to: it changes when a
    # camera is reopened or a playlist moves to its next file, and faces seen before
    # a change are not the faces seen after it.
    segment: int = 0
    captured: float = 0.0  # time.monotonic() when the frame was read: latency is measured from here


class FrameSource:
    """An iterable of frames that knows what it is reading from; close it when done."""

    name: str
    live: bool = False  # a camera: frames may be dropped to stay current

    def __iter__(self) -> Iterator[Frame]:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> "FrameSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_number(path: Path) -> tuple[int, str]:
    numbers = re.findall(r"\d+", path.stem)
    return (int(numbers[-1]) if numbers else -1, path.name)


class FolderSource(FrameSource):
    """Images in a folder, ordered by the (last) number in their file names."""

    def __init__(self, folder: Path, fps: float = FOLDER_FPS) -> None:
        self.name = str(folder)
        self.fps = fps
        self.files = sorted(
            (f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES), key=_frame_number
        )
        if not self.files:
            raise VideoError(f"{folder}: no image frames in this folder")

    def __iter__(self) -> Iterator[Frame]:
        for i, f in enumerate(self.files):
            try:
                image = load_image(f)
            except ImageError as exc:
                raise VideoError(f"{self.name}: frame {f.name} is unreadable ({exc})") from None
            yield Frame(image, i, i / self.fps)


INDEXED_CONTAINERS = (".mp4", ".m4v", ".mov", ".avi")
TRUNCATION_SLACK = 5  # an index may count a few frames the decoder drops (no_face.mp4: 98 listed, 95 decoded)


class VideoSource(FrameSource):
    """A video file through OpenCV's decoder, every frame, timed by the container."""

    def __init__(self, path: Path) -> None:
        self.name = str(path)
        self.cap = cv2.VideoCapture(str(path))
        if not self.cap.isOpened():
            raise VideoError(f"{path}: cannot open this video (unsupported or damaged file)")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = fps if 1.0 <= fps <= 240.0 else 30.0
        # Containers with a frame index say how many frames they hold; WebM and Matroska
        # only estimate it from the duration (a shared WebM says 350 and holds 214).
        count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
        indexed = path.suffix.lower() in INDEXED_CONTAINERS and 0 < count < 1e9
        self.expected = int(count) if indexed else None

    def __iter__(self) -> Iterator[Frame]:
        i = 0
        while True:
            ok, bgr = self.cap.read()
            if not ok or bgr is None:
                break
            ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            t = ms / 1000.0 if ms > 0 or i == 0 else i / self.fps
            yield Frame(to_rgb8(bgr, channel_order="BGR"), i, t)
            i += 1
        if i == 0:
            raise VideoError(f"{self.name}: no frame could be decoded (empty or damaged video)")
        if self.expected is not None and i < self.expected - TRUNCATION_SLACK:
            raise VideoError(f"{self.name}: ended after {i} of its {self.expected} frames (truncated or damaged)")

    def close(self) -> None:
        self.cap.release()


class CameraSource(FrameSource):
    """A camera by index. Read timeouts and disconnects end the iteration; the runner
    reopens with back-off."""

    live = True

    def __init__(self, index: int) -> None:
        self.name = f"camera {index}"
        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            raise VideoError(f"camera {index}: cannot open it (not connected, or in use by another program)")

    def __iter__(self) -> Iterator[Frame]:
        start = time.monotonic()
        i = 0
        while True:
            ok, bgr = self.cap.read()
            if not ok or bgr is None:
                return
            yield Frame(np.ascontiguousarray(bgr[:, :, ::-1]), i, time.monotonic() - start)
            i += 1

    def close(self) -> None:
        self.cap.release()


def open_source(spec: str | int | Path) -> FrameSource:
    """A camera index ("0"), a video file or a folder of frames."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isascii() and spec.isdigit()):
        return CameraSource(int(spec))
    if isinstance(spec, str) and not spec.strip():  # Path("") is the current folder: never meant
        raise VideoError("an empty source: give a camera index, a video file or a folder of frames")
    path = Path(spec)
    if path.is_dir():
        return FolderSource(path)
    if not path.exists():
        raise VideoError(f"{path}: no such file or folder")
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise VideoError(f"{path}: a single image is not a video; give a video file or a folder of frames")
    return VideoSource(path)
