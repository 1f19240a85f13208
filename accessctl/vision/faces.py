"""Finding faces, their landmarks, and the aligned chip the encoder reads.

Detection runs MediaPipe's full-range BlazeFace on a copy of the image no larger than
``detect_max_side`` (it sees 192x192 internally anyway); every later step works on the
original pixels, so an 8K photo costs no more to detect and loses no detail in the chip.
Landmarks come from MediaPipe Face Mesh (478 points, refined eyes and lips) run on a
square crop around each detected box: running the mesh on the whole image would use its
own short-range detector, which misses small faces in large photos. Where BlazeFace
finds nothing, even on a grey-padded copy, YuNet is asked for the box (a face lit from
one side, a badge photo cut at the hairline); the mesh still gives the landmarks.

The chip reproduces dlib's ``get_face_chip_details(shape, 150, 0.25)``: a similarity
transform from five points (outer and inner corner of each eye, base of the nose) to
dlib's template, because the pretrained encoder was trained on exactly those chips.
"""

from __future__ import annotations

import functools
import math
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import cv2
import numpy as np

from accessctl import config

CHIP_SIZE = 150
CHIP_PADDING = 0.25

# dlib's 5-point template on the unit square (dlib/image_transforms/interpolation.h),
# in dlib's part order: subject's left eye outer, left eye inner, right eye outer,
# right eye inner, base of the nose.
DLIB_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)
# The Face Mesh points at the same anatomical places, same order.
MESH_ALIGN_POINTS = (263, 362, 33, 133, 2)
_CHIP_POINTS = (CHIP_PADDING + DLIB_TEMPLATE) / (2 * CHIP_PADDING + 1) * CHIP_SIZE

# Mesh points used for head pose: outer eye corners (x axis), forehead and chin (y axis).
_LEFT_EYE_OUTER, _RIGHT_EYE_OUTER, _FOREHEAD, _CHIN = 263, 33, 10, 152

_MESH_INPUT = 192  # side of the crop handed to Face Mesh: its own input size, so no second resize


@dataclass(frozen=True)
class Detection:
    """One detector hit, in pixels of the original image."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float

    @property
    def size(self) -> float:
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


@dataclass(frozen=True)
class Quality:
    """What decides whether a face is good enough to enroll, in units a person can read."""

    size_px: float  # shorter side of the detector box, original pixels
    eye_distance_px: float  # between the outer eye corners
    sharpness: float  # fine detail relative to coarse structure, 0-100+ (see sharpness())
    yaw: float  # degrees; positive when the person turns to their left
    pitch: float  # degrees; positive when the person looks down
    roll: float  # degrees; positive when the head tilts clockwise in the image
    brightness: float = 128.0  # mean grey level of the face, 0-255


@dataclass(frozen=True)
class Face:
    """A detected face with everything later stages need from the image."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: np.ndarray = field(repr=False)  # (478, 3): x, y in pixels; z at x's scale
    chip: np.ndarray = field(repr=False)  # (150, 150, 3) RGB uint8, dlib-aligned
    quality: Quality


def chip_batch(chips: np.ndarray) -> np.ndarray:
    """One chip or a batch of them as (N, CHIP_SIZE, CHIP_SIZE, 3) uint8: what every
    encoder takes; anything else is a programming error, said plainly."""
    chips = np.asarray(chips)
    if chips.ndim == 3:
        chips = chips[None]
    if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3) or chips.dtype != np.uint8:
        raise ValueError(f"expected (N, {CHIP_SIZE}, {CHIP_SIZE}, 3) uint8 chips, got {chips.shape} {chips.dtype}")
    return chips


def _umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform (2x3) mapping ``src`` points onto ``dst``."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[1] = -1
    rot = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - m[:, :2] @ src_mean
    return m


def align(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The 150x150 dlib chip of the face whose mesh landmarks are given.

    When the face is much larger than the chip, the region is first shrunk with area
    averaging (dlib samples from an image pyramid for the same reason): plain bilinear
    sampling of a 1000-pixel face into 150 pixels aliases and moves the descriptor.
    """
    src = landmarks[list(MESH_ALIGN_POINTS), :2].astype(np.float64)
    m = _umeyama(src, _CHIP_POINTS)  # image -> chip
    scale = math.sqrt(abs(np.linalg.det(m[:, :2])))  # chip pixels per image pixel
    if scale < 0.5:
        image, m = _shrink_for_chip(image, m, scale)
    return cv2.warpAffine(
        image, m, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )


def _shrink_for_chip(image: np.ndarray, m: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Cut the region the chip covers and area-shrink it by ``scale``; returns it and the
    image->chip transform rewritten for the shrunk region."""
    inv = cv2.invertAffineTransform(m)
    corners = np.array([[0, 0, 1], [CHIP_SIZE, 0, 1], [0, CHIP_SIZE, 1], [CHIP_SIZE, CHIP_SIZE, 1]], float)
    pts = corners @ inv.T
    h, w = image.shape[:2]
    x0 = max(int(math.floor(pts[:, 0].min())) - 2, 0)
    y0 = max(int(math.floor(pts[:, 1].min())) - 2, 0)
    x1 = min(int(math.ceil(pts[:, 0].max())) + 3, w)
    y1 = min(int(math.ceil(pts[:, 1].max())) + 3, h)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return image, m
    new_w = max(1, round((x1 - x0) * scale))
    new_h = max(1, round((y1 - y0) * scale))
    small = cv2.resize(image[y0:y1, x0:x1], (new_w, new_h), interpolation=cv2.INTER_AREA)
    fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
    # image -> small (pixel centres): x_s = (x - x0 + 0.5) * fx - 0.5
    to_small = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5], [0, 0, 1]])
    m_small = np.vstack([m, [0, 0, 1]]) @ np.linalg.inv(to_small)
    return small, m_small[:2]


_FACE_REGION = slice(20, 130)  # of the 150x150 chip: the face, not the background
# Variance of the Laplacian of the face below which no focus is left to measure: heavy
# blurs score 2-4, the dimmest live webcam face here 14.
_NO_DETAIL = 5.0


def sharpness(chip: np.ndarray) -> float:
    """Focus, as 100 x the fine detail of the face over its coarse structure.

    Fine detail is what a 1.5 px blur removes, coarse structure what a further 3 px blur
    removes; their ratio does not depend on exposure or contrast, and the chip fixes the
    face's size, so a dim but focused webcam face scores like a bright one. (The
    variance of the Laplacian used before scored dim webcam faces 18-26, below blurred
    photos.) Measured on ../shared/data: live webcam faces 53 and up (1st percentile),
    photos 56 and up; the same frames blurred by 4 px score 47 at most (95th percentile).
    """
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY).astype(np.float32)[_FACE_REGION, _FACE_REGION]
    if cv2.Laplacian(grey, cv2.CV_32F).var() < _NO_DETAIL:
        return 0.0  # so blurred that what is left of the fine band is noise: the ratio would mislead
    once = cv2.GaussianBlur(grey, (0, 0), 1.5)
    twice = cv2.GaussianBlur(once, (0, 0), 3.0)
    return float(100.0 * np.abs(grey - once).mean() / (np.abs(once - twice).mean() + 1e-6))


def brightness(chip: np.ndarray) -> float:
    grey = cv2.cvtColor(chip, cv2.COLOR_RGB2GRAY)[_FACE_REGION, _FACE_REGION]
    return float(grey.mean())


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """Yaw, pitch, roll in degrees from the mesh's 3D points (z shares x's scale).

    The head's x axis runs through the outer eye corners and its y axis from forehead to
    chin; both are read straight from the 3D mesh, so no camera model is needed.
    """
    x_axis = landmarks[_LEFT_EYE_OUTER] - landmarks[_RIGHT_EYE_OUTER]
    y_axis = landmarks[_CHIN] - landmarks[_FOREHEAD]
    x_axis = x_axis / (np.linalg.norm(x_axis) + 1e-9)
    y_axis = y_axis - x_axis * float(y_axis @ x_axis)
    y_axis = y_axis / (np.linalg.norm(y_axis) + 1e-9)
    roll = math.degrees(math.atan2(x_axis[1], x_axis[0]))
    yaw = math.degrees(math.asin(float(np.clip(x_axis[2], -1, 1))))
    pitch = math.degrees(math.asin(float(np.clip(-y_axis[2], -1, 1))))
    return yaw, pitch, roll


def quality_of(box: tuple[float, float, float, float], landmarks: np.ndarray, chip: np.ndarray) -> Quality:
    yaw, pitch, roll = head_pose(landmarks)
    eyes = float(np.linalg.norm(landmarks[_LEFT_EYE_OUTER, :2] - landmarks[_RIGHT_EYE_OUTER, :2]))
    return Quality(
        size_px=float(min(box[2] - box[0], box[3] - box[1])),
        eye_distance_px=eyes,
        sharpness=sharpness(chip),
        brightness=brightness(chip),
        yaw=yaw,
        pitch=pitch,
        roll=roll,
    )


def square_crop(
    image: np.ndarray, cx: float, cy: float, side: float, out: int
) -> tuple[np.ndarray, float, float, float]:
    """A ``out x out`` crop of the square (cx, cy, side), grey outside the image.

    Returns the crop and (x0, y0, side) of the square in image pixels, so that crop
    coordinates u in [0, 1] map back to x0 + u * side.
    """
    side_i = max(int(round(side)), 2)
    x0 = int(round(cx - side_i / 2))
    y0 = int(round(cy - side_i / 2))
    h, w = image.shape[:2]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + side_i, w), min(y0 + side_i, h)
    region = image[iy0:iy1, ix0:ix1]
    if region.size == 0:
        region = np.full((side_i, side_i, 3), 128, np.uint8)
    else:
        region = cv2.copyMakeBorder(
            region, iy0 - y0, y0 + side_i - iy1, ix0 - x0, x0 + side_i - ix1, cv2.BORDER_CONSTANT, value=(128, 128, 128)
        )
    interp = cv2.INTER_AREA if side_i > out else cv2.INTER_LINEAR
    return cv2.resize(region, (out, out), interpolation=interp), float(x0), float(y0), float(side_i)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence MediaPipe's C++ start-up chatter (TFLite, absl) on file descriptor 2.

    Those lines are printed when a graph starts and first runs; a command-line user
    must see one clear line on error, not a page of native logging.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreter): nothing to hide
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _shifted(found: list[Detection], pad: int) -> list[Detection]:
    """Detections on a copy padded by ``pad`` on every side, in the original's pixels."""
    return [Detection((d.box[0] - pad, d.box[1] - pad, d.box[2] - pad, d.box[3] - pad), d.score) for d in found]


# YuNet on camera frames runs on a copy at most this wide or high: ~7 ms instead of
# ~25 at 640x480 on 2 cores, and only on frames where MediaPipe found nothing.
YUNET_FRAME_SIDE = 320
YUNET_FILE = "face_detection_yunet_2023mar_int8bq.onnx"
YUNET_SHA256 = "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10"


class YuNet:
    """OpenCV Zoo's YuNet (MIT), the fallback detector: boxes only; MediaPipe's mesh
    still gives the landmarks, which align better than YuNet's five points."""

    def __init__(self, min_score: float = 0.6) -> None:
        path = config.assets_dir() / "yunet" / YUNET_FILE
        config.check_model_file(path, YUNET_SHA256, "YuNet face detector")
        self._net = cv2.FaceDetectorYN.create(str(path), "", (320, 320), min_score, 0.3, 50)

    def detect(self, image: np.ndarray, *, max_side: int) -> list[Detection]:
        """Face boxes in an RGB image, in its pixels."""
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        bgr = np.ascontiguousarray(image[:, :, ::-1])
        if scale < 1.0:
            bgr = cv2.resize(bgr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        self._net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = self._net.detect(bgr)
        out = []
        for r in rows if rows is not None else []:
            x, y, bw, bh = (float(v) / scale for v in r[:4])
            if bw >= 1 and bh >= 1:
                out.append(Detection((x, y, x + bw, y + bh), float(r[-1])))
        return out


class FaceAnalyzer:
    """Detector and mesh graphs for one thread (MediaPipe graphs are not thread-safe).

    Use :func:`analyzer` to get the one belonging to the calling thread.
    """

    def __init__(self, *, max_faces: int = 10, detect_max_side: int = 1024, min_score: float = 0.5) -> None:
        self.max_faces = max_faces
        self.detect_max_side = detect_max_side
        self._min_score = min_score
        self._open_graphs()

    def _open_graphs(self) -> None:
        import mediapipe as mp

        min_score = self._min_score
        fd = mp.solutions.face_detection
        with _quiet_stderr():
            # Short range (faces within ~2 m, 2.3 ms at 640x480) suits a camera at a
            # door; full range (~5 m, 6.6 ms) finds the small faces of group photos.
            self._short = fd.FaceDetection(model_selection=0, min_detection_confidence=min_score)
            self._full = fd.FaceDetection(model_selection=1, min_detection_confidence=min_score)
            self._mesh = mp.solutions.face_mesh.FaceMesh(
                static_image_mode=True, max_num_faces=2, refine_landmarks=True, min_detection_confidence=0.3
            )
            blank = np.zeros((64, 64, 3), np.uint8)
            for graph in (self._short, self._full, self._mesh):
                graph.process(blank)
        # The mesh logs once more on the first face it finds; keep quiet until then.
        self._mesh_spoke = False

    def close(self) -> None:
        self._short.close()
        self._full.close()
        self._mesh.close()

    # -- stages -------------------------------------------------------------------
    def detect(self, image: np.ndarray, *, frame: bool = False) -> list[Detection]:
        """Face boxes in original-image pixels, left to right.

        ``frame=True`` is the camera path: the fast short-range model first. Photos
        (enrollment, files, evaluation) take the full-range model first, so that a
        second, smaller face is not missed. Either falls back to the other model, then
        to a padded copy (a tight face crop, cut at the hairline, gives the detector too
        little context), then to YuNet on the image and, for photos, on the padded copy.
        """
        order = (self._short, self._full) if frame else (self._full, self._short)
        found: list[Detection] = []
        for model in order:
            found = self._detect_once(model, image)
            if found:
                break
        if not found:
            h, w = image.shape[:2]
            pad = max(h, w) // 2
            padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(128, 128, 128))
            found = _shifted(self._detect_once(self._full, padded), pad)
            if not found:  # YuNet finds faces lit from one side, and tight crops once padded
                found = self._yunet.detect(image, max_side=YUNET_FRAME_SIDE if frame else self.detect_max_side)
            if not found and not frame:
                found = _shifted(self._yunet.detect(padded, max_side=self.detect_max_side), pad)
        found.sort(key=lambda d: (d.box[0], d.box[1]))
        return found[: self.max_faces]

    @functools.cached_property
    def _yunet(self) -> "YuNet":
        return YuNet()

    def _detect_once(self, model, image: np.ndarray) -> list[Detection]:
        h, w = image.shape[:2]
        scale = min(1.0, self.detect_max_side / max(h, w))
        small = (
            image
            if scale >= 1.0
            else cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        )
        result = model.process(small)
        out = []
        for det in result.detections or []:
            rb = det.location_data.relative_bounding_box
            x0, y0 = rb.xmin * w, rb.ymin * h
            box = (x0, y0, x0 + rb.width * w, y0 + rb.height * h)
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue
            out.append(Detection(box, float(det.score[0])))
        return out

    def landmarks(self, image: np.ndarray, detection: Detection) -> np.ndarray | None:
        """478 mesh points for the face in ``detection``, or None if the mesh finds none.

        The crop is twice the box; if the mesh misses there, a looser crop is tried.
        """
        x0, y0, x1, y1 = detection.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        for factor in (2.0, 3.0):
            side = max(x1 - x0, y1 - y0) * factor
            crop, ox, oy, s = square_crop(image, cx, cy, side, _MESH_INPUT)
            if self._mesh_spoke:
                result = self._mesh.process(crop)
            else:
                with _quiet_stderr():
                    result = self._mesh.process(crop)
            if not result.multi_face_landmarks:
                continue
            self._mesh_spoke = True
            best, best_d = None, float("inf")
            for face in result.multi_face_landmarks:
                pts = np.array([(p.x, p.y, p.z) for p in face.landmark], dtype=np.float64)
                d = float(np.hypot(*(pts[:, :2].mean(axis=0) - 0.5)))
                if d < best_d:
                    best, best_d = pts, d
            assert best is not None
            # Crop-relative [0, 1] -> original pixels; MediaPipe's 0 is a pixel's edge,
            # OpenCV's and dlib's 0 is its centre.
            out = np.empty_like(best)
            out[:, 0] = ox + best[:, 0] * s - 0.5
            out[:, 1] = oy + best[:, 1] * s - 0.5
            out[:, 2] = best[:, 2] * s
            return out
        return None

    def analyze(self, image: np.ndarray, *, frame: bool = False) -> list[Face]:
        """Every face in an RGB uint8 image with landmarks, chip and quality, left to right.

        A MediaPipe graph whose run failed once refuses every later run ("Graph has
        errors"); seen once in a full test run, it broke every later analysis of that
        thread. The graphs are then started afresh and the image tried once more."""
        try:
            return self._analyze(image, frame=frame)
        except RuntimeError:
            self.close()
            self._open_graphs()
            return self._analyze(image, frame=frame)

    def _analyze(self, image: np.ndarray, *, frame: bool) -> list[Face]:
        faces = []
        for det in self.detect(image, frame=frame):
            pts = self.landmarks(image, det)
            if pts is None:
                continue
            chip = align(image, pts)
            faces.append(Face(det.box, det.score, pts, chip, quality_of(det.box, pts, chip)))
        return faces


class _Boxed(Protocol):
    @property
    def box(self) -> tuple[float, float, float, float]: ...


BoxedT = TypeVar("BoxedT", bound=_Boxed)


def largest(faces: Sequence[BoxedT]) -> BoxedT | None:
    """The face with the largest box: the one nearest the camera, the photo's subject."""
    if not faces:
        return None
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


_local = threading.local()


def analyzer() -> FaceAnalyzer:
    """The calling thread's analyzer, created on first use (graph start-up is ~100 ms)."""
    inst = getattr(_local, "analyzer", None)
    if inst is None:
        inst = _local.analyzer = FaceAnalyzer()
    return inst
