"""Presentation attacks synthesised from live frames, to multiply the few real ones.

Both work on the liveness model's own input (context crops and their landmarks), and
move the landmarks with exactly the transform applied to the pixels, so the
geometric cues of a synthetic attack behave as a real one's would:

- a **print**: one still frame on paper. Reduced contrast and gamut, a paper tint,
  halftone dots and paper grain, sometimes a visible sheet edge on a background and a
  hand holding it, glare, and the whole sheet moving as one plane (rigid or gently
  bent), so its landmarks never move but by a homography.
- a **screen replay**: a live clip (blinks and all) on a phone screen. Gamma and tint
  of a display, the pixel grid, moire against the camera's sensor, refresh banding,
  a bezel, screen glare and a second camera's blur and noise.

The live samples get the camera part of this (blur, noise, compression, exposure) too,
so the model cannot learn "a little blur means an attack".
"""

from __future__ import annotations

import cv2
import numpy as np

from .features import CROP

_yy, _xx = np.mgrid[0:CROP, 0:CROP].astype(np.float32)


def _homography(scale: float, strength: float, t: float, phase: np.ndarray) -> np.ndarray:
    """A near-identity plane motion about the crop centre at time ``t`` (0..1)."""
    c = CROP / 2
    wobble = np.sin(2 * np.pi * (t + phase))
    angle = np.deg2rad(6.0 * strength * wobble[0])
    s = scale * (1 + 0.04 * strength * wobble[1])
    tx, ty = 4.0 * strength * wobble[2], 4.0 * strength * wobble[3]
    px, py = 6e-4 * strength * wobble[4], 6e-4 * strength * wobble[5]
    a = np.array([[s * np.cos(angle), -s * np.sin(angle), 0], [s * np.sin(angle), s * np.cos(angle), 0], [px, py, 1]])
    to_c = np.array([[1, 0, -c], [0, 1, -c], [0, 0, 1]], np.float64)
    back = np.array([[1, 0, c + tx], [0, 1, c + ty], [0, 0, 1]], np.float64)
    return back @ a @ to_c


def _warp_points(points: np.ndarray, h: np.ndarray, scale: float) -> np.ndarray:
    out = points.copy()
    xy = cv2.perspectiveTransform((points[None, :, :2] * CROP).astype(np.float64), h)[0] / CROP
    out[:, :2] = xy
    out[:, 2] = points[:, 2] * scale
    return out


def _blob(rng: np.random.Generator) -> np.ndarray:
    cx, cy = rng.uniform(0, CROP, 2)
    sigma = rng.uniform(8, 35)
    return np.exp(-((_xx - cx) ** 2 + (_yy - cy) ** 2) / (2 * sigma**2))


def _pattern(period: float, angle: float, phase: float = 0.0) -> np.ndarray:
    u = _xx * np.cos(angle) + _yy * np.sin(angle)
    return np.cos(2 * np.pi * u / period + phase)


def camera(img: np.ndarray, rng: np.random.Generator, strength: float = 1.0) -> np.ndarray:
    """What any camera does to any scene: exposure, blur, sensor noise, compression."""
    f = img.astype(np.float32)
    f = f * rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength) + rng.uniform(-15, 15) * strength
    if rng.random() < 0.5 * strength:
        f = cv2.GaussianBlur(f, (0, 0), rng.uniform(0.3, 1.0 + 0.5 * strength))
    f += rng.normal(0, rng.uniform(0.5, 1.0 + 3.0 * strength), f.shape).astype(np.float32)
    out = np.clip(f, 0, 255).astype(np.uint8)
    if rng.random() < 0.4 * strength:
        ok, buf = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.uniform(45, 95))])
        if ok:
            out = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return out


def augment_live(crops: np.ndarray, points: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Camera variation on a live window: the same per clip, as one camera films it."""
    seed = int(rng.integers(1 << 31))
    flip = rng.random() < 0.5
    out = np.empty_like(crops)
    pts = points.copy()
    for i, c in enumerate(crops):
        img = c[:, ::-1] if flip else c
        out[i] = camera(np.ascontiguousarray(img), np.random.default_rng(seed + i % 2), rng.uniform(0.2, 1.0))
    if flip:
        pts[..., 0] = 1.0 - pts[..., 0]
    return out, pts


def _compose(
    content: np.ndarray, h: np.ndarray, background: np.ndarray, frame_px: float, frame_colour: np.ndarray
) -> np.ndarray:
    """Warp the content (a sheet or a screen) with its frame/margin onto the background."""
    border = int(round(frame_px))
    framed = cv2.copyMakeBorder(content, border, border, border, border, cv2.BORDER_CONSTANT, value=frame_colour.tolist())
    shift = np.array([[1, 0, -border], [0, 1, -border], [0, 0, 1]], np.float64)
    m = h @ shift
    warped = cv2.warpPerspective(framed, m, (CROP, CROP), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    mask = cv2.warpPerspective(np.ones(framed.shape[:2], np.float32), m, (CROP, CROP), flags=cv2.INTER_LINEAR)
    return warped * mask[..., None] + background * (1 - mask[..., None])


def _background(rng: np.random.Generator, other: np.ndarray | None) -> np.ndarray:
    if other is not None and rng.random() < 0.7:
        return cv2.GaussianBlur(other.astype(np.float32), (0, 0), rng.uniform(1, 4))
    a, b = rng.uniform(20, 230, 3), rng.uniform(20, 230, 3)
    ramp = (_yy / CROP)[..., None]
    return (a * (1 - ramp) + b * ramp).astype(np.float32)


def _hand(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A skin-coloured blob (mask, colour) over the edge of the sheet or phone, where fingers hold it."""
    skin = np.array([rng.uniform(150, 235), rng.uniform(100, 180), rng.uniform(80, 150)], np.float32)
    side = rng.integers(4)
    cx = [rng.uniform(10, 100), rng.uniform(10, 100), 0, CROP][side]
    cy = [0, CROP, rng.uniform(10, 100), rng.uniform(10, 100)][side]
    ax, ay = rng.uniform(10, 28), rng.uniform(18, 40)
    mask = (((_xx - cx) / ax) ** 2 + ((_yy - cy) / ay) ** 2 < 1).astype(np.float32)
    return cv2.GaussianBlur(mask, (0, 0), 1.5)[..., None], skin


def synth_print(
    crop: np.ndarray, points: np.ndarray, length: int, rng: np.random.Generator, background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A printed photo of one live frame, held in front of the camera for ``length`` frames."""
    f = crop.astype(np.float32)
    contrast, black = rng.uniform(0.55, 0.92), rng.uniform(8, 45)
    f = black + f * contrast
    grey = f.mean(axis=2, keepdims=True)
    f = grey + (f - grey) * rng.uniform(0.35, 0.95)
    f *= np.array([rng.uniform(1.0, 1.08), rng.uniform(0.97, 1.03), rng.uniform(0.82, 1.0)], np.float32)
    if rng.random() < 0.7:  # halftone screen
        period, angle = rng.uniform(1.8, 4.0), rng.uniform(0, np.pi)
        dots = _pattern(period, angle) * _pattern(period, angle + np.pi / 2)
        f += rng.uniform(3, 14) * dots[..., None]
    grain = cv2.GaussianBlur(rng.normal(0, 1, (CROP, CROP)).astype(np.float32), (0, 0), 0.7)
    f += rng.uniform(2, 7) * grain[..., None]
    sheet = np.clip(f, 0, 255)

    scale = rng.uniform(0.55, 1.1)
    strength = rng.choice([0.0, 0.3, 1.0, 2.0])
    phase = rng.uniform(0, 1, 6)
    margin = rng.uniform(0, 24)
    paper = np.array([rng.uniform(215, 255)] * 3, np.float32) * np.array([1, 1, rng.uniform(0.9, 1)], np.float32)
    bg = _background(rng, background)
    hand = _hand(rng) if rng.random() < 0.3 else None
    glare = _blob(rng) * rng.uniform(30, 130) if rng.random() < 0.5 else None
    speed = rng.uniform(0.05, 0.4)
    crops, pts = np.empty((length, CROP, CROP, 3), np.uint8), np.empty((length,) + points.shape, np.float32)
    cam = np.random.default_rng(int(rng.integers(1 << 31)))
    cam_strength = rng.uniform(0.2, 1.0)
    for i in range(length):
        h = _homography(scale, strength, i * speed / max(length, 1), phase)
        img = _compose(sheet, h, bg, margin, paper)
        if hand is not None:
            img = img * (1 - hand[0]) + hand[1] * hand[0]
        if glare is not None:
            img = img + glare[..., None]
        crops[i] = camera(np.clip(img, 0, 255).astype(np.uint8), cam, cam_strength)
        pts[i] = _warp_points(points, h, scale)
    return crops, pts


def synth_replay(
    crops_in: np.ndarray, points: np.ndarray, rng: np.random.Generator, background: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A live clip played back on a phone screen and filmed again."""
    length = len(crops_in)
    scale = rng.uniform(0.7, 1.1)
    strength = rng.choice([0.0, 0.3, 1.0])
    phase = rng.uniform(0, 1, 6)
    gamma = rng.uniform(0.75, 1.3)
    tint = np.array([rng.uniform(0.88, 1.0), rng.uniform(0.95, 1.03), rng.uniform(1.0, 1.15)], np.float32)
    gain = rng.uniform(0.8, 1.2)
    grid_period, grid_amp = rng.uniform(1.6, 3.5), rng.uniform(0.03, 0.15)
    grid = 1 - grid_amp * (0.5 + 0.5 * _pattern(grid_period, rng.choice([0, np.pi / 2]) + rng.uniform(-0.05, 0.05)))
    moire_period, moire_angle = rng.uniform(4, 30), rng.uniform(0, np.pi)
    moire_amp = rng.uniform(3, 16) if rng.random() < 0.8 else 0.0
    band_period, band_amp, band_speed = rng.uniform(20, 90), rng.uniform(0, 0.12), rng.uniform(0.5, 3)
    bezel = rng.uniform(2, 14)
    bezel_colour = np.array([rng.uniform(0, 40)] * 3, np.float32)
    bg = _background(rng, background)
    hand = _hand(rng) if rng.random() < 0.4 else None
    glare = _blob(rng) * rng.uniform(20, 110) if rng.random() < 0.6 else None
    blur = rng.uniform(0.4, 1.6)
    cam = np.random.default_rng(int(rng.integers(1 << 31)))
    cam_strength = rng.uniform(0.3, 1.0)
    out, pts = np.empty_like(crops_in), np.empty(points.shape, np.float32)
    for i in range(length):
        f = 255.0 * (crops_in[i].astype(np.float32) / 255.0) ** gamma * gain * tint
        f = f * grid[..., None]
        if moire_amp:
            ph = 2 * np.pi * i * 0.13
            f += moire_amp * np.stack([_pattern(moire_period, moire_angle, ph + k) for k in (0.0, 0.7, 1.4)], -1)
        f *= 1 + band_amp * np.sin(2 * np.pi * (_yy / band_period + i * band_speed / 30))[..., None]
        h = _homography(scale, strength, i * 0.1 / max(length, 1), phase)
        img = _compose(np.clip(f, 0, 255), h, bg, bezel, bezel_colour)
        if hand is not None:
            img = img * (1 - hand[0]) + hand[1] * hand[0]
        if glare is not None:
            img = img + glare[..., None]
        img = cv2.GaussianBlur(np.clip(img, 0, 255), (0, 0), blur)
        out[i] = camera(img.astype(np.uint8), cam, cam_strength)
        pts[i] = _warp_points(points[i], h, scale)
    return out, pts
