"""What the liveness model sees of each frame: two crops for the CNNs, a few landmarks.

The crops are the pretrained MiniFASNets' own inputs (see :mod:`.minifasnet`): the
face box scaled about its centre by 2.7 and by 4.0 (the original code's rule: capped
so that the crop fits in the image, moved rather than padded at the edges), resized
to 80x80 without keeping the aspect ratio, in BGR order. MediaPipe's boxes are
tighter than the RetinaFace boxes those models were trained on, so each box is first
grown by :data:`BOX_CORRECTION` (measured: see the model card).

The landmarks are a subset of the Face Mesh points in units of a square of
``CONTEXT`` times the face box (0..1). From a window of them, :func:`cues` computes
the geometric cues fed to the GRU beside the CNN's features:

- eye openness (blinks) and its change,
- how far the landmark motion from one frame to the next departs from a plane's
  (a homography fits a photo's motion exactly; a turning head shows parallax),
- how much the face moved (the plane test means little when nothing moves),
- how far the nose tip stands out of the face plane in the mesh's depth.

The stillness and planar rules that once stood beside the model are gone: measured
on top of the trained motion head they refused nothing it accepted (the model card);
the training code keeps them to score the model shipped before them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from accessctl.liveness.minifasnet import INPUT
from accessctl.liveness.motion import context_patch

CONTEXT = 2.2  # the landmarks' frame: a square of this many face-box sides
CNN_SCALES = (2.7, 4.0)  # MiniFASNetV2, MiniFASNetV1SE
BOX_CORRECTION = 1.0  # MediaPipe box -> the box the CNNs were trained on

LEFT_EYE = (33, 160, 158, 133, 153, 144)  # corner, top, top, corner, bottom, bottom
RIGHT_EYE = (362, 385, 387, 263, 373, 380)
STRUCTURE = (1, 2, 10, 152, 234, 454, 61, 291, 168, 6, 172, 397)  # nose, brow, chin, cheeks, mouth, jaw
POINTS = LEFT_EYE + RIGHT_EYE + STRUCTURE
N_POINTS = len(POINTS)
N_CUES = 6

WINDOW = 6  # frames per clip window
STEP_S = 1 / 15  # seconds between the window's frames: 6 frames span a third of a second


@dataclass(frozen=True)
class Observation:
    """One frame of one face, as the liveness model takes it."""

    crops: np.ndarray = field(repr=False)  # (len(CNN_SCALES), INPUT, INPUT, 3) BGR uint8
    points: np.ndarray = field(repr=False)  # (N_POINTS, 3): x, y in CONTEXT-square units 0..1, z likewise
    patch: np.ndarray = field(repr=False)  # (PATCH, PATCH) grey uint8 of the CONTEXT square (see .motion)
    square: tuple[float, float, float]  # the CONTEXT square in the image: left, top, side (pixels)
    size: tuple[int, int]  # the image's width and height


def cnn_crop(
    image: np.ndarray, box: tuple[float, float, float, float], scale: float, correction: float = BOX_CORRECTION
) -> np.ndarray:
    """The MiniFASNet input for an RGB image and a face box (x0, y0, x1, y1): BGR uint8."""
    h_img, w_img = image.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    w, h = max((x1 - x0) * correction, 1.0), max((y1 - y0) * correction, 1.0)
    s = min((h_img - 1) / h, (w_img - 1) / w, scale)
    w, h = w * s, h * s
    left = min(max(cx - w / 2, 0.0), w_img - w)
    top = min(max(cy - h / 2, 0.0), h_img - h)
    region = image[int(top) : int(top + h), int(left) : int(left + w)]
    if region.size == 0:  # a degenerate box: a grey crop, which no model calls live
        return np.full((INPUT, INPUT, 3), 128, np.uint8)
    return np.ascontiguousarray(cv2.resize(region, (INPUT, INPUT))[:, :, ::-1])


def observe(image: np.ndarray, box: tuple[float, float, float, float], landmarks: np.ndarray) -> Observation:
    """The CNNs' crops of a face and its landmarks (of the 478 mesh points)."""
    x0, y0, x1, y1 = box
    side = max(x1 - x0, y1 - y0) * CONTEXT
    ox, oy = (x0 + x1) / 2 - side / 2, (y0 + y1) / 2 - side / 2
    pts = landmarks[list(POINTS)].astype(np.float32)
    out = np.empty_like(pts)
    out[:, 0] = (pts[:, 0] + 0.5 - ox) / side
    out[:, 1] = (pts[:, 1] + 0.5 - oy) / side
    out[:, 2] = pts[:, 2] / side
    crops = np.stack([cnn_crop(image, box, s) for s in CNN_SCALES])
    square = (float(ox), float(oy), float(side))
    return Observation(crops, out, context_patch(image, square), square, (image.shape[1], image.shape[0]))


def _eye_openness(p: np.ndarray, eye: slice) -> np.ndarray:
    e = p[:, eye, :2]
    vertical = np.linalg.norm(e[:, 1] - e[:, 5], axis=-1) + np.linalg.norm(e[:, 2] - e[:, 4], axis=-1)
    horizontal = np.linalg.norm(e[:, 0] - e[:, 3], axis=-1) * 2 + 1e-6
    return vertical / horizontal


def homography_residual(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """RMS distance of dst from the best homography image of src, for (P, N, 2) point sets.

    Direct linear transform on normalised points, all pairs in one batched SVD (a
    window's seven pairs cost ~0.1 ms; cv2.findHomography one by one cost ~2 ms).
    """

    def normalise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = x.mean(axis=1, keepdims=True)
        s = np.sqrt(2) / (np.sqrt(((x - c) ** 2).sum(axis=2)).mean(axis=1) + 1e-12)
        m = np.zeros((len(x), 3, 3))
        m[:, 0, 0] = m[:, 1, 1] = s
        m[:, 0, 2], m[:, 1, 2] = -s * c[:, 0, 0], -s * c[:, 0, 1]
        m[:, 2, 2] = 1
        return (x - c) * s[:, None, None], m

    a, ta = normalise(src)
    b, tb = normalise(dst)
    n = a.shape[1]
    ones, zeros = np.ones((len(a), n, 1)), np.zeros((len(a), n, 3))
    ah = np.concatenate([a, ones], axis=2)
    rows1 = np.concatenate([-ah, zeros, ah * b[:, :, :1]], axis=2)
    rows2 = np.concatenate([zeros, -ah, ah * b[:, :, 1:]], axis=2)
    _, _, vt = np.linalg.svd(np.concatenate([rows1, rows2], axis=1))
    h = np.linalg.inv(tb) @ vt[:, -1].reshape(-1, 3, 3) @ ta
    proj = np.einsum("pij,pnj->pni", h, np.concatenate([src, np.ones((len(src), n, 1))], axis=2))
    proj = proj[:, :, :2] / np.where(np.abs(proj[:, :, 2:]) < 1e-12, 1e-12, proj[:, :, 2:])
    return np.sqrt(((proj - dst) ** 2).sum(axis=2).mean(axis=1))


def cues(points: np.ndarray) -> np.ndarray:
    """(T, N_POINTS, 3) landmarks of a window -> (T, N_CUES) float32 cues."""
    p = np.asarray(points, np.float32)
    t = len(p)
    out = np.zeros((t, N_CUES), np.float32)
    if t == 0:
        return out
    ear = (_eye_openness(p, slice(0, 6)) + _eye_openness(p, slice(6, 12))) / 2
    iod = np.linalg.norm(p[:, 0, :2] - p[:, 9, :2], axis=-1) + 1e-6  # outer eye corners
    out[:, 0] = ear * 4.0
    out[1:, 1] = np.abs(np.diff(ear)) * 20.0
    if t > 1:
        src, dst = p[:-1, :, :2].astype(np.float64), p[1:, :, :2].astype(np.float64)
        motion = np.sqrt(((dst - src) ** 2).sum(axis=2).mean(axis=1)) / iod[1:]
        residual = homography_residual(src, dst) / iod[1:]
        out[1:, 2] = np.minimum(residual * 100.0, 10.0)
        out[1:, 3] = np.minimum(motion * 10.0, 10.0)
    structure = p[:, 12:]
    nose_z = structure[:, 0, 2]
    plane_z = (p[:, 0, 2] + p[:, 9, 2] + structure[:, 6, 2] + structure[:, 7, 2]) / 4  # eye corners, mouth
    out[:, 4] = (plane_z - nose_z) / iod
    out[:, 5] = np.log(iod * 10.0)  # how big the face is in its crop (a photo's border shows)
    return out


def window_before(t: np.ndarray, end: int, length: int = WINDOW, step_s: float = STEP_S) -> np.ndarray | None:
    """Indices of ``length`` frames about ``step_s`` apart, the last being ``end``; None
    if the frames before ``end`` do not reach back far enough. One definition for the
    training sampler, validation and the kiosk's rolling window."""
    targets = t[end] - step_s * np.arange(length - 1, -1, -1)
    if targets[0] < t[0] - step_s / 2:
        return None
    times = t[: end + 1]
    right = np.minimum(np.searchsorted(times, targets), end)
    left = np.maximum(right - 1, 0)
    idx = np.where(np.abs(times[left] - targets) < np.abs(times[right] - targets), left, right)  # nearest frame
    if np.abs(times[idx] - targets).max() > step_s:
        return None  # a gap (face lost, frames dropped): not a clip of this face
    return idx


MAX_GAP_STEPS = 2.0  # frames further apart than this many steps are not one stretch of a face


def partner(t: np.ndarray, end: int, step_s: float = STEP_S) -> int | None:
    """The step a step's motion is measured from: the one before it, unless the two
    are more than :data:`MAX_GAP_STEPS` steps apart (a gap: frames dropped, the face
    lost) or ``end`` is the track's first."""
    if end <= 0 or t[end] - t[end - 1] > MAX_GAP_STEPS * step_s:
        return None
    return end - 1


def history_before(t: np.ndarray, end: int, most: int, step_s: float = STEP_S) -> np.ndarray:
    """Indices of the steps the motion head reads at step ``end``, oldest first: those
    of about the last ``most`` step lengths of time, back to the track's start or to a
    gap; at least ``end`` itself. By time rather than by count, so that the head reads
    about a second whatever the frame rate."""
    start = end
    while (
        start > 0
        and t[end] - t[start - 1] < (most - 0.5) * step_s
        and t[start] - t[start - 1] <= MAX_GAP_STEPS * step_s
    ):
        start -= 1
    return np.arange(start, end + 1)


def slowest_fps(step_s: float = STEP_S) -> float:
    """The lowest frame rate at which :func:`window_before` can still find a window: it
    refuses a frame more than ``step_s`` from its target, so frames at most ``2 * step_s``
    apart always have one near enough."""
    return 1.0 / (2.0 * step_s)
