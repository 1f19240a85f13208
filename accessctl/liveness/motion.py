"""How the face moved between two frames, from the pixels: what only time shows.

A printed photo or a screen, however it is held, turned, bent or fed by a program,
moves as one sheet, and when the whole picture is a frame fed to the camera it moves
with everything around it. A head does neither: it turns in depth (the nose against
the cheeks: parallax), it blinks and speaks, and it moves against the room behind it.

Landmarks alone cannot tell these apart on a still photo: Face Mesh's jitter on a
noisy frame looks like parallax. So each frame keeps a small grey patch of the face
and its surroundings (:func:`context_patch`, the same square as the landmarks'
frame), and :func:`step_cues` measures dense optical flow from the previous step's
patch to this one, then asks three questions of it, in units of the inter-ocular
distance:

- how much of the face's motion the surroundings' motion does not explain (a frame
  that is itself a picture moves face and room alike);
- how much of the face's motion a plane does not explain (a homography fits any
  sheet held flat; a turning head, a blink or a mouth does not fit it);
- how much of it a smooth bend does not explain either (a bent print);
- what changed in the picture that no motion explains, once the flow is undone: at
  the eyes and the mouth against the rest of the face (blinks, speech: too small and
  quick for the flow itself), and on the face against the room;

beside the amount of motion of each, the light's change on the face and around it
(exposure flicker changes both alike), and the landmark cues of :func:`.features.cues`.
The sequence model learns from these which motions are a head's; these functions
only measure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import cv2
import numpy as np

PATCH = 128  # side of the grey patch of the landmarks' square, pixels
_GRID = 5  # flow is sampled every _GRID patch pixels
_MIN_POINTS = 24  # fewer textured samples than this in a region: it says nothing

# Where on the face, as indices into features.POINTS (the landmark subset kept per frame).
_EYES = tuple(range(12))
_MOUTH = (18, 19)  # mouth corners (61, 291)
_FACE_OUTLINE = (14, 15, 16, 17, 20, 21, 22, 23)  # brow, chin, cheeks, bridge, jaw

# Step cues, in order: see step_cues.
STEP_NAMES = (
    "face_motion",
    "room_motion",
    "against_room",
    "off_plane",
    "off_bend",
    "eyes_change",
    "mouth_change",
    "face_change",
    "face_light",
    "room_light",
    "room_seen",
    "textured",
    "against_x",
    "against_y",
    "room_x",
    "room_y",
    "face_px",
    "noise",
)
N_STEP = len(STEP_NAMES)
_EPS = 1e-4  # motions below this many inter-ocular distances are read as none (log scale floor)

_local = threading.local()
_YS, _XS = np.mgrid[0:PATCH, 0:PATCH].astype(np.float32)


def _flow_engine() -> cv2.DISOpticalFlow:
    """DIS optical flow, one per thread (OpenCV's object keeps state between calls)."""
    dis = getattr(_local, "dis", None)
    if dis is None:
        dis = _local.dis = cv2.DISOpticalFlow.create(cv2.DISOpticalFlow_PRESET_FAST)
    return dis


def context_patch(image: np.ndarray, square: tuple[float, float, float]) -> np.ndarray:
    """The grey (PATCH, PATCH) uint8 patch of an RGB image's ``square`` (left, top,
    side in pixels); outside the image is 0 (see :func:`valid_mask`)."""
    ox, oy, side = square
    k = PATCH / side
    m = np.array([[k, 0.0, -ox * k], [0.0, k, -oy * k]])
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    flags = cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR
    if k < 0.5:  # INTER_AREA through warpAffine does not average: shrink first
        f = max(1, int(0.5 / k))
        grey = cv2.resize(grey, (grey.shape[1] // f, grey.shape[0] // f), interpolation=cv2.INTER_AREA)
        m[:, :2] *= f
        flags = cv2.INTER_LINEAR
    return cv2.warpAffine(grey, m, (PATCH, PATCH), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=(0,))


def valid_mask(square: tuple[float, float, float], image_size: tuple[int, int], margin: int = 0) -> np.ndarray:
    """Which patch pixels lie inside the image (at least ``margin`` patch pixels in)."""
    ox, oy, side = square
    w, h = image_size
    k = PATCH / side
    x0, y0 = int(np.ceil(-ox * k)) + margin, int(np.ceil(-oy * k)) + margin
    x1, y1 = int(np.floor((w - ox) * k)) - margin, int(np.floor((h - oy) * k)) - margin
    out = np.zeros((PATCH, PATCH), bool)
    out[max(0, y0) : max(0, min(PATCH, y1)), max(0, x0) : max(0, min(PATCH, x1))] = True
    return out


def _fit(src: np.ndarray, dst: np.ndarray, w: np.ndarray, basis: str) -> Callable[[np.ndarray], np.ndarray]:
    """Weighted least-squares model of dst from src, as a function of points.

    ``homography``: direct linear transform on normalised points; ``bend``: a
    quadratic in x and y for each coordinate (a sheet bent or curled, to first order)."""
    c = (src * w[:, None]).sum(0) / w.sum()
    s = np.sqrt(2) / (np.sqrt((((src - c) ** 2).sum(1)) * w).sum() / w.sum() + 1e-9)
    x, y = ((src - c) * s).T
    sw = np.sqrt(w)[:, None]
    if basis == "bend":

        def terms(u: np.ndarray, v: np.ndarray) -> np.ndarray:
            return np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], 1)

        coef, *_ = np.linalg.lstsq(terms(x, y) * sw, (dst - c) * s * sw, rcond=None)

        def bent(at: np.ndarray) -> np.ndarray:
            ax, ay = (at - c).T * s
            return (terms(ax, ay) @ coef) / s + c

        return bent
    d = (dst - c) * s
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    r1 = np.stack([-x, -y, -ones, zeros, zeros, zeros, x * d[:, 0], y * d[:, 0], d[:, 0]], 1) * sw
    r2 = np.stack([zeros, zeros, zeros, -x, -y, -ones, x * d[:, 1], y * d[:, 1], d[:, 1]], 1) * sw
    # the null vector of the stacked rows: the eigenvector of their 9x9 normal matrix
    # with the smallest eigenvalue (a tenth of the cost of their SVD)
    h = np.linalg.eigh(r1.T @ r1 + r2.T @ r2)[1][:, 0].reshape(3, 3)

    def plane(at: np.ndarray) -> np.ndarray:
        ax, ay = (at - c).T * s
        p = np.stack([ax, ay, np.ones_like(ax)], 1) @ h.T
        z = np.where(np.abs(p[:, 2:]) < 1e-9, 1e-9, p[:, 2:])
        return p[:, :2] / z / s + c

    return plane


def _rms(v: np.ndarray, w: np.ndarray) -> float:
    return float(np.sqrt(((v**2).sum(1) * w).sum() / max(w.sum(), 1e-9)))


def _robust_fit(
    src: np.ndarray, dst: np.ndarray, w: np.ndarray
) -> tuple[Callable[[np.ndarray], np.ndarray], np.ndarray]:
    """A homography re-weighted once against outliers (Cauchy): the surroundings hold
    hair and shoulders that move with the head beside a wall that does not; the fit
    follows what most of them do. Returns the model and the final weights."""
    model = _fit(src, dst, w, "homography")
    r = np.sqrt(((model(src) - dst) ** 2).sum(1))
    scale = max(float(np.median(r)) * 1.5, 0.05)
    ww = w / (1.0 + (r / scale) ** 2)
    return _fit(src, dst, ww, "homography"), ww


def _log(x: float) -> float:
    return float(np.log10(max(x, 0.0) + _EPS))


def step_cues(
    prev_patch: np.ndarray,
    prev_square: tuple[float, float, float],
    prev_size: tuple[int, int],
    patch: np.ndarray,
    square: tuple[float, float, float],
    size: tuple[int, int],
    points: np.ndarray,
) -> np.ndarray:
    """(N_STEP,) float32 cues of the motion from the previous step to this one.

    ``points`` are this frame's landmarks (features.POINTS) in units of ``square``.
    Motions are log10 of inter-ocular distances (a floor of 1e-4: nothing), lights a
    log ratio; then the share of the surroundings inside the image and of the face's
    samples with texture enough to read motion from, the face's and the room's
    motion signed, the face's size in camera pixels (log2 of the inter-ocular
    distance over 64), and the change no motion explains where the face is not
    (noise)."""
    out = np.zeros(N_STEP, np.float32)
    k = prev_square[2] / square[2]
    shift = ((prev_square[0] - square[0]) * PATCH / square[2], (prev_square[1] - square[1]) * PATCH / square[2])
    a = np.array([[k, 0.0, shift[0]], [0.0, k, shift[1]]])
    before = cv2.warpAffine(prev_patch, a, (PATCH, PATCH), flags=cv2.INTER_LINEAR)
    seen_before = (
        cv2.warpAffine(valid_mask(prev_square, prev_size).astype(np.uint8), a, (PATCH, PATCH), flags=cv2.INTER_NEAREST)
        > 0
    )
    flow = _flow_engine().calc(before, np.asarray(patch, np.uint8), None)  # type: ignore[call-overload]

    pts = np.asarray(points, np.float64)[:, :2] * PATCH
    iod = float(np.linalg.norm(pts[0] - pts[9])) + 1e-6
    # how many camera pixels the face spans: what the measurements below can resolve
    out[STEP_NAMES.index("face_px")] = float(np.log2(iod * square[2] / PATCH / 64.0 + 1e-3))
    hull = cv2.convexHull(pts[list(_FACE_OUTLINE) + list(_EYES)].astype(np.float32)).astype(np.int32)
    face_mask = np.zeros((PATCH, PATCH), np.uint8)
    cv2.fillConvexPoly(face_mask, hull, (1,))
    valid = valid_mask(square, size, margin=4) & cv2.erode(
        seen_before.astype(np.uint8), np.ones((9, 9), np.uint8)
    ).astype(bool)
    near = cv2.dilate(face_mask, np.ones((int(iod * 0.6) | 1,) * 2, np.uint8)) > 0
    face = (cv2.erode(face_mask, np.ones((3, 3), np.uint8)) > 0) & valid
    room = ~near & valid

    g = slice(_GRID // 2, PATCH, _GRID)
    gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3)[g, g]
    gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3)[g, g]
    texture = np.minimum(np.sqrt(gx * gx + gy * gy) / 200.0, 1.0).astype(np.float64)
    ys, xs = np.mgrid[g, g]
    src = np.stack([xs, ys], -1).astype(np.float64)
    dst = src + flow[g, g].astype(np.float64)

    fm, rm = face[g, g], room[g, g]
    fw = texture[fm] + 0.02
    fsrc, fdst = src[fm], dst[fm]
    out[STEP_NAMES.index("room_seen")] = float(room.mean() / max(1e-6, 1.0 - near.mean()))
    out[STEP_NAMES.index("textured")] = float((texture[fm] > 0.1).mean()) if fm.any() else 0.0
    # Light: the mean grey level's change on the face and around it (flicker moves both).
    for name, m in (("face_light", face), ("room_light", room)):
        if m.sum() >= _MIN_POINTS:
            out[STEP_NAMES.index(name)] = float(np.log((patch[m].mean() + 4.0) / (before[m].mean() + 4.0)) * 10.0)
    if len(fsrc) < _MIN_POINTS:
        for name in STEP_NAMES[:5]:
            out[STEP_NAMES.index(name)] = _log(0.0)
        return out
    out[STEP_NAMES.index("face_motion")] = _log(_rms(fdst - fsrc, fw) / iod)
    if rm.sum() >= _MIN_POINTS:
        rsrc, rdst, rw = src[rm], dst[rm], texture[rm] + 0.02
        room_model, rww = _robust_fit(rsrc, rdst, rw)
        pred_room = room_model(rsrc)
        out[STEP_NAMES.index("room_motion")] = _log(_rms(pred_room - rsrc, rww) / iod)
        moved = room_model(fsrc)  # where the face would be had it moved with the room
        out[STEP_NAMES.index("against_room")] = _log(_rms(fdst - moved, fw) / iod)
        room_shift = ((pred_room - rsrc) * rww[:, None]).sum(0) / rww.sum()
    else:
        out[STEP_NAMES.index("room_motion")] = _log(0.0)
        moved = fsrc
        out[STEP_NAMES.index("against_room")] = _log(_rms(fdst - fsrc, fw) / iod)
        room_shift = np.zeros(2)
    # Which way, signed (in hundredths of the inter-ocular distance, squashed): a head
    # sways smoothly, a picture jittered by a hand or a program jumps back and forth.
    against = ((fdst - moved) * fw[:, None]).sum(0) / fw.sum() / iod
    for name, v in (
        ("against_x", against[0]),
        ("against_y", against[1]),
        ("room_x", room_shift[0] / iod),
        ("room_y", room_shift[1] / iod),
    ):
        out[STEP_NAMES.index(name)] = float(np.arcsinh(v * 100.0))
    plane = _fit(fsrc, fdst, fw, "homography")(fsrc)
    bend = _fit(fsrc, fdst, fw, "bend")(fsrc)
    out[STEP_NAMES.index("off_plane")] = _log(_rms(fdst - plane, fw) / iod)
    out[STEP_NAMES.index("off_bend")] = _log(_rms(fdst - bend, fw) / iod)
    # What changed once the flow is undone (the later patch pulled back along it),
    # near the eyes and the mouth against the rest of the face, and on the face
    # against the room: noise and interpolation are alike everywhere, a lid or a lip is not.
    back = cv2.remap(patch, _XS + flow[..., 0], _YS + flow[..., 1], cv2.INTER_LINEAR)
    change = cv2.GaussianBlur(cv2.absdiff(back, before).astype(np.float32), (0, 0), 1.0)
    face_change = float(change[face].mean())
    for name, idx in (("eyes_change", _EYES), ("mouth_change", _MOUTH)):
        part = np.zeros((PATCH, PATCH), np.uint8)
        for x, y in pts[list(idx)]:
            cv2.circle(part, (int(round(x)), int(round(y))), max(2, int(iod * 0.2)), (1,), -1)
        here = (part > 0) & valid
        if here.sum() >= 8:
            out[STEP_NAMES.index(name)] = float(np.log((change[here].mean() + 1.0) / (face_change + 1.0)))
    if room.sum() >= _MIN_POINTS:
        out[STEP_NAMES.index("face_change")] = float(np.log((face_change + 1.0) / (change[room].mean() + 1.0)))
    # what is left where nothing of the face is: the camera's noise, re-compression,
    # flicker (grey levels, log): the scale the motions above are read against
    quiet = room if room.sum() >= _MIN_POINTS else face
    out[STEP_NAMES.index("noise")] = float(np.log(float(change[quiet].mean()) + 1.0))
    return out
