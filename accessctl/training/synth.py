"""Temporal presentation attacks made from the frames we have, for training and judging
the liveness model on what only time shows.

Every family animates one frame, or a few, the way a hand, a stand, a screen or a
program would: nothing a head does. The frames keep whatever texture they had (a
live frame stays a live-looking picture), so a model can only refuse these from how
the face moves over time. Each family draws its parameters over a wide range from a
seeded generator, so a clip is reproducible from ``(family, seed)`` and a family held
out of training is a family of motions, not one motion.

The geometry is a chain of inverse maps from each output pixel back to the source
image (:func:`render`): an in-plane similarity, a plane turned in 3D (a homography),
and a sheet bent or curled (a height field seen in perspective), all about the face.
Photometric and temporal effects (sensor noise, exposure flicker, re-compression,
duplicated, dropped and paused frames) are applied after.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from accessctl.evaluation.clips import ClipFrames, cached, clip_stamp, observe_frames
from accessctl.frames.images import IMAGE_SUFFIXES, load_image
from accessctl.frames.sources import open_source
from accessctl.vision.faces import analyzer, largest

# The families, each a kind of animation; "combo" mixes them. The first group moves
# one frame; "frames" and "pause" use a few frames of the source clip.
# "zoom" came last (a new family is appended: each family's generator is seeded by its place).
FAMILIES = (
    "still",
    "jitter",
    "wobble",
    "tilt",
    "bend",
    "flicker",
    "codec",
    "frames",
    "pause",
    "scene",
    "combo",
    "zoom",
)


@dataclass(frozen=True)
class Motion:
    """The pose of the picture at one output frame, about the face centre."""

    dx: float = 0.0  # in-plane translation, pixels
    dy: float = 0.0
    angle: float = 0.0  # in-plane rotation, degrees
    scale: float = 1.0
    yaw: float = 0.0  # the picture's plane turned about a vertical axis, degrees
    pitch: float = 0.0  # and about a horizontal one
    bend: float = 0.0  # curvature of the sheet, 1 / radius in face widths (0: flat)
    bend_axis: float = 0.0  # direction of the bend's axis, degrees from vertical
    wave: float = 0.0  # amplitude of a curl travelling across the sheet, in face widths
    wave_phase: float = 0.0


@dataclass(frozen=True)
class Photometric:
    gain: float = 1.0
    gamma: float = 1.0
    cast: tuple[float, float, float] = (1.0, 1.0, 1.0)
    noise: float = 0.0  # sensor noise, grey levels (standard deviation)
    blur: float = 0.0  # Gaussian blur, pixels
    jpeg: int = 0  # re-compressed at this quality (0: not)


@dataclass(frozen=True)
class Step:
    """One output frame: which source frame, posed and lit how, shown when."""

    source: int  # index into the source frames
    t: float
    motion: Motion = field(default_factory=Motion)
    light: Photometric = field(default_factory=Photometric)
    repeat: bool = False  # the previous output frame again, byte for byte (a duplicated frame)


@dataclass(frozen=True)
class Animation:
    family: str
    seed: int
    steps: list[Step]
    face: tuple[float, float, float, float]  # the face box in the source frames
    background: int | None = None  # "scene": the index of the frame the picture is held in front of
    print_box: tuple[float, float, float, float] | None = None  # "scene": the part of the frame printed


def _smooth(
    rng: np.random.Generator, t: np.ndarray, amp: float, fmin: float = 0.2, fmax: float = 3.0, parts: int = 3
) -> np.ndarray:
    """A smooth random signal of about ``amp`` (a hand's sway, a stand's swing)."""
    out = np.zeros_like(t)
    for _ in range(parts):
        f = np.exp(rng.uniform(np.log(fmin), np.log(fmax)))
        out += rng.uniform(0.3, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
    peak = np.abs(out).max() or 1.0
    return out / peak * amp


def _amp(rng: np.random.Generator, low: float, high: float) -> float:
    """An amplitude drawn evenly on a log scale: small and large motions alike."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _times(rng: np.random.Generator, n: int) -> np.ndarray:
    fps = float(rng.choice([15.0, 20.0, 25.0, 30.0, 30.0]))
    return np.arange(n) / fps


def _light(rng: np.random.Generator, n: int, t: np.ndarray, flicker: bool) -> list[Photometric]:
    """Noise always (a camera's, or none from a program); exposure flicker when asked."""
    noise = 0.0 if rng.random() < 0.15 else _amp(rng, 0.3, 8.0)
    blur = 0.0 if rng.random() < 0.6 else float(rng.uniform(0.3, 1.5))
    jpeg = 0 if rng.random() < 0.6 else int(rng.integers(30, 96))
    gains = np.ones(n)
    gammas = np.ones(n)
    casts = np.ones((n, 3))
    if flicker:
        kind = rng.integers(3)
        amp = _amp(rng, 0.02, 0.35)
        if kind == 0:  # mains-light beat, or a screen's refresh seen by a camera
            gains = 1 + amp * np.sin(2 * np.pi * rng.uniform(0.5, 12.0) * t + rng.uniform(0, 6.3))
        elif kind == 1:  # an auto-exposure hunting, frame to frame
            gains = np.exp(rng.normal(0, amp, n))
        else:  # slow drift with steps
            gains = np.exp(_smooth(rng, t, amp, 0.2, 2.0) + amp * (rng.random(n) < 0.1) * rng.normal(0, 1, n))
        gammas = np.exp(_smooth(rng, t, _amp(rng, 0.01, 0.2), 0.2, 4.0))
        casts = np.exp(np.stack([_smooth(rng, t, _amp(rng, 0.005, 0.08), 0.2, 4.0) for _ in range(3)], 1))
    base = np.exp(rng.uniform(-0.4, 0.3))
    return [
        Photometric(float(base * g), float(gm), (float(c[0]), float(c[1]), float(c[2])), noise, blur, jpeg)
        for g, gm, c in zip(gains, gammas, casts, strict=True)
    ]


def _jitter(rng: np.random.Generator, n: int) -> list[Motion]:
    amp = _amp(rng, 0.1, 3.0)
    rot = _amp(rng, 0.01, 0.5) if rng.random() < 0.5 else 0.0
    zoom = _amp(rng, 0.0005, 0.005) if rng.random() < 0.5 else 0.0
    draw = rng.uniform if rng.random() < 0.5 else (lambda a, b, k: rng.normal(0, (b - a) / 4, k))
    dx, dy = draw(-amp, amp, n), draw(-amp, amp, n)
    return [
        Motion(
            float(x),
            float(y),
            float(rng.uniform(-rot, rot)) if rot else 0.0,
            1.0 + (float(rng.uniform(-zoom, zoom)) if zoom else 0.0),
        )
        for x, y in zip(dx, dy, strict=True)
    ]


def _wobble(rng: np.random.Generator, t: np.ndarray, scale: float = 1.0) -> list[Motion]:
    dx = _smooth(rng, t, scale * _amp(rng, 0.5, 20.0))
    dy = _smooth(rng, t, scale * _amp(rng, 0.5, 20.0))
    angle = _smooth(rng, t, scale * _amp(rng, 0.1, 10.0))
    zoom = _smooth(rng, t, scale * _amp(rng, 0.002, 0.12))
    if rng.random() < 0.5:  # a steady drift: slid, or brought nearer
        dx = dx + t * scale * rng.uniform(-1, 1) * _amp(rng, 0.5, 30.0)
        dy = dy + t * scale * rng.uniform(-1, 1) * _amp(rng, 0.5, 30.0)
        zoom = zoom + t * scale * rng.uniform(-1, 1) * _amp(rng, 0.005, 0.2)
    shake = _amp(rng, 0.02, 1.0) if rng.random() < 0.5 else 0.0  # a hand's tremor on top
    return [
        Motion(float(x + rng.normal(0, shake)), float(y + rng.normal(0, shake)), float(a), float(1 + z))
        for x, y, a, z in zip(dx, dy, angle, zoom, strict=True)
    ]


def _tilt(rng: np.random.Generator, t: np.ndarray) -> list[Motion]:
    base = _wobble(rng, t, scale=float(rng.uniform(0.0, 0.7)))
    yaw = _smooth(rng, t, _amp(rng, 2.0, 35.0), 0.2, 2.0) + rng.uniform(-15, 15)
    pitch = _smooth(rng, t, _amp(rng, 1.0, 25.0), 0.2, 2.0) + rng.uniform(-10, 10)
    if rng.random() < 0.3:  # turned about one axis only
        (yaw if rng.random() < 0.5 else pitch)[:] = 0.0
    return [dataclasses.replace(m, yaw=float(y), pitch=float(p)) for m, y, p in zip(base, yaw, pitch, strict=True)]


def _bend(rng: np.random.Generator, t: np.ndarray) -> list[Motion]:
    base = _tilt(rng, t) if rng.random() < 0.5 else _wobble(rng, t, scale=float(rng.uniform(0.0, 0.5)))
    axis = float(rng.choice([0.0, 90.0, rng.uniform(-60, 60)]))
    curl = rng.random() < 0.35
    amp = _amp(rng, 0.05, 0.6)
    offset = rng.uniform(-1, 1) * amp * 0.5
    bends = _smooth(rng, t, amp, 0.2, 2.5) + offset
    if curl:
        waves = np.full(len(t), _amp(rng, 0.01, 0.12))
        phases = 2 * np.pi * rng.uniform(0.2, 2.0) * t + rng.uniform(0, 6.3)
        return [
            dataclasses.replace(m, wave=float(w), wave_phase=float(p), bend_axis=axis, bend=float(b) * 0.3)
            for m, w, p, b in zip(base, waves, phases, bends, strict=True)
        ]
    return [dataclasses.replace(m, bend=float(b), bend_axis=axis) for m, b in zip(base, bends, strict=True)]


def _zoom(rng: np.random.Generator, t: np.ndarray) -> list[Motion]:
    """A picture brought towards the camera or taken away: its size changes by 5% to 70%
    (evenly, eased, or there and back), the face drifting as it would about a point
    other than itself, with a hand's sway or a turn on top. A head coming closer grows
    too, but not as a rigid sheet does."""
    base = _tilt(rng, t) if rng.random() < 0.3 else _wobble(rng, t, scale=float(rng.uniform(0.0, 0.6)))
    change = float(rng.uniform(np.log(1.05), np.log(1.7))) * (1 if rng.random() < 0.5 else -1)
    span = float(t[-1]) or 1.0
    u = np.clip((t - rng.uniform(0.0, 0.3) * span) / (rng.uniform(0.4, 1.0) * span), 0.0, 1.0)
    kind = rng.integers(3)
    if kind == 0:
        progress = u
    elif kind == 1:
        progress = u * u * (3 - 2 * u)
    else:
        progress = np.sin(np.pi * u * rng.uniform(0.5, 1.5)) ** 2
    size = np.exp(change * progress)
    ox, oy = rng.uniform(-150, 150, 2)
    return [
        dataclasses.replace(m, scale=m.scale * float(s), dx=m.dx + float((s - 1) * ox), dy=m.dy + float((s - 1) * oy))
        for m, s in zip(base, size, strict=True)
    ]


def _hold(
    rng: np.random.Generator, n: int, fps: float, piece: Callable[[int], list[int]], hold_s: tuple[float, float]
) -> list[int]:
    """Output frame -> source frame for a sequence shown in pieces with holds between."""
    out: list[int] = []
    while len(out) < n:
        out += piece(len(out))
        out += [out[-1]] * int(rng.uniform(*hold_s) * fps)
    return out[:n]


# One branch per family, each drawing from one random stream in a fixed order: split
# up, a family's clips for a seed could change and the published figures with them.
def animate(  # noqa: C901
    family: str,
    seed: int,
    n: int,
    sources: int,
    start: int,
    face: tuple[float, float, float, float],
    size: tuple[int, int],
) -> Animation:
    """The steps of one clip of ``n`` frames of ``family``, from a clip of ``sources``
    frames (RGB, ``size`` = (w, h)), starting at frame ``start`` whose face box is ``face``."""
    if family not in FAMILIES:
        raise ValueError(f"unknown attack family {family!r}")
    rng = np.random.default_rng([seed, FAMILIES.index(family)])
    if family == "combo":
        parts = list(rng.choice(["jitter", "wobble", "tilt", "bend"], size=1))
        family_geo = str(parts[0])
    t = _times(rng, n)
    fps = 1.0 / (t[1] - t[0]) if n > 1 else 30.0
    src = [start] * n
    motions = [Motion()] * n
    flicker = family in ("flicker", "combo") or rng.random() < 0.15
    background = print_box = None
    if family == "still":
        pass
    elif family == "jitter":
        motions = _jitter(rng, n)
    elif family == "wobble":
        motions = _wobble(rng, t)
    elif family == "tilt":
        motions = _tilt(rng, t)
    elif family == "bend":
        motions = _bend(rng, t)
    elif family == "flicker":
        if rng.random() < 0.5:
            motions = _jitter(rng, n) if rng.random() < 0.5 else _wobble(rng, t, 0.3)
    elif family == "codec":
        motions = _jitter(rng, n) if rng.random() < 0.5 else _wobble(rng, t, float(rng.uniform(0.05, 1.0)))
    elif family == "frames":
        # A few different frames of the clip, each shown for a while (a slideshow, or two
        # photos swapped to fake a blink); small motion on top or none.
        picks = [start] + [
            int(p)
            for p in rng.choice(
                [i for i in range(sources) if i != start], size=min(sources - 1, int(rng.integers(1, 4))), replace=False
            )
        ]
        shown = [0]

        def next_pick(_: int) -> list[int]:
            shown[0] += 1
            return [picks[(shown[0] - 1) % len(picks)]]

        src = _hold(rng, n, fps, next_pick, (0.1, 0.6))
        if rng.random() < 0.5:
            motions = _jitter(rng, n)
    elif family == "pause":
        # A recording played a few frames at a time, paused in between (a video paused
        # and resumed, a program feeding stills): real motion only in short bursts.
        pos = [start]

        def burst(_: int) -> list[int]:
            k = int(rng.integers(1, 4))
            run = [min(sources - 1, pos[0] + i) for i in range(1, k + 1)]
            pos[0] = run[-1] if run[-1] < sources - 1 else int(rng.integers(sources))
            return run

        src = _hold(rng, n, fps, burst, (0.15, 1.0))
    elif family == "scene":
        # A print held in front of the camera: part of the frame, moved as a sheet, in a
        # room that does not move.
        w, h = size
        x0, y0, x1, y1 = face
        fw, fh = x1 - x0, y1 - y0
        k = rng.uniform(1.2, 2.6)
        cx, cy = (x0 + x1) / 2 + rng.uniform(-0.2, 0.2) * fw, (y0 + y1) / 2 + rng.uniform(-0.1, 0.3) * fh
        pw, ph = fw * k * rng.uniform(0.8, 1.2), fh * k * rng.uniform(1.0, 1.5)
        print_box = (
            max(0.0, cx - pw / 2),
            max(0.0, cy - ph / 2),
            min(float(w), cx + pw / 2),
            min(float(h), cy + ph / 2),
        )
        background = int(rng.integers(sources))
        kind = rng.integers(3)
        motions = _wobble(rng, t) if kind == 0 else _tilt(rng, t) if kind == 1 else _bend(rng, t)
    elif family == "zoom":
        motions = _zoom(rng, t)
    elif family == "combo":
        motions = {
            "jitter": lambda: _jitter(rng, n),
            "wobble": lambda: _wobble(rng, t),
            "tilt": lambda: _tilt(rng, t),
            "bend": lambda: _bend(rng, t),
        }[family_geo]()
        if rng.random() < 0.5:  # jitter on top of a smooth motion
            jit = _jitter(rng, n)
            motions = [
                dataclasses.replace(m, dx=m.dx + j.dx, dy=m.dy + j.dy) for m, j in zip(motions, jit, strict=True)
            ]
    lights = _light(rng, n, t, flicker)
    if family == "codec":
        lights = [dataclasses.replace(p, jpeg=int(rng.integers(10, 80))) for p in lights]
    steps = [Step(s, float(tt), m, p) for s, tt, m, p in zip(src, t, motions, lights, strict=True)]
    if family in ("codec", "combo") or rng.random() < 0.2:
        steps = _retime(rng, steps, fps, pauses=True)
    return Animation(family, seed, steps, face, background, print_box)


def relive(seed: int, n: int, sources: int, start: int, face: tuple[float, float, float, float]) -> Animation:
    """A live clip as another camera or link would deliver it: its own frames in order,
    with sensor noise, exposure changes, re-compression, duplicated, dropped and
    paused frames, but no motion added. Live, not an attack: so that the motion head
    learns that none of these is evidence either way."""
    rng = np.random.default_rng([seed, 104729])
    fps = float(rng.choice([15.0, 20.0, 25.0, 30.0, 30.0]))
    count = min(n, sources - start)
    t = np.arange(count) / fps
    lights = _light(rng, count, t, flicker=rng.random() < 0.3)
    steps = [Step(start + i, float(tt), Motion(), p) for i, (tt, p) in enumerate(zip(t, lights, strict=True))]
    if rng.random() < 0.3:
        steps = _retime(rng, steps, fps, pauses=False)
    return Animation("live", seed, steps, face)


def _retime(rng: np.random.Generator, steps: list[Step], fps: float, pauses: bool) -> list[Step]:
    """Duplicated and dropped frames, and (``pauses``) a stream that stops on one
    picture for a while: what a busy encoder, a virtual camera or a player does."""
    out: list[Step] = []
    dup, drop = rng.uniform(0, 0.3), rng.uniform(0, 0.2)
    pause = pauses and rng.random() < 0.4
    i, t = 0, 0.0
    while len(out) < len(steps):
        s = steps[min(i, len(steps) - 1)]
        out.append(dataclasses.replace(s, t=t))
        t += 1.0 / fps
        r = rng.random()
        if r < dup:
            out.append(dataclasses.replace(s, t=t, repeat=True))  # the same frame again
            t += 1.0 / fps
        elif pause and r < dup + 0.05:
            for _ in range(int(rng.uniform(0.2, 0.8) * fps)):
                out.append(dataclasses.replace(s, t=t))  # held, the camera's noise still on it
                t += 1.0 / fps
        i += 2 if rng.random() < drop else 1
    return out[: len(steps)]


# -- rendering -------------------------------------------------------------------------


def _rotation(yaw: float, pitch: float) -> np.ndarray:
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return ry @ rx


def source_coordinates(
    m: Motion, u: np.ndarray, v: np.ndarray, centre: tuple[float, float], face_width: float, focal: float
) -> tuple[np.ndarray, np.ndarray]:
    """For output pixels (u, v), where they come from in the source image.

    The picture is a sheet through the face centre at distance ``focal`` from the
    camera (a pinhole of that focal length in pixels): the in-plane similarity, then
    the plane turned (yaw, pitch) in 3D, then the sheet bent about an axis through the
    face centre (a cylinder of curvature ``bend``) and curled (a travelling wave)."""
    cx, cy = centre
    x, y = u - cx - m.dx, v - cy - m.dy
    # undo the turn: the ray through (x, y) meets the turned plane
    if m.yaw or m.pitch:
        r = _rotation(m.yaw, m.pitch)
        d = np.stack([x, y, np.full_like(x, focal)], -1)  # ray directions, camera at (0, 0, -focal) from the face
        n = r[:, 2]  # the plane's normal
        o = np.array([0.0, 0.0, -focal])
        s = -(o @ n) / np.maximum(d @ n, 1e-6)
        p = o + d * s[..., None]  # points on the plane, centred on the face
        local = p @ r  # in the plane's own axes
        x, y = local[..., 0], local[..., 1]
    # undo the similarity
    a = np.radians(m.angle)
    c, sn = np.cos(a) / m.scale, np.sin(a) / m.scale
    x, y = c * x + sn * y, -sn * x + c * y
    # undo the bend and the curl, along the bend's axis direction
    if m.bend or m.wave:
        a = np.radians(m.bend_axis)
        ca, sa = np.cos(a), np.sin(a)
        across, along = ca * x + sa * y, -sa * x + ca * y
        w = max(face_width, 1.0)
        s = across.copy()
        for _ in range(4):  # fixed point: the arc length s whose image lands at `across`
            z = np.zeros_like(s)
            if m.bend:
                radius = w / m.bend
                z = radius * (1 - np.cos(s / radius))
                chord = radius * np.sin(np.clip(s / radius, -1.4, 1.4))
            else:
                chord = s
            if m.wave:
                z = z + m.wave * w * np.sin(2 * np.pi * s / (1.5 * w) + m.wave_phase)
            persp = (focal + z) / focal
            s = s + (across * persp - chord)
        along = along * persp
        x, y = ca * s - sa * along, sa * s + ca * along
    return (x + cx).astype(np.float32), (y + cy).astype(np.float32)


def render(anim: Animation, frames: list[np.ndarray]) -> list[tuple[float, np.ndarray]]:
    """The clip of ``anim`` from its source ``frames`` (RGB uint8, all one size):
    (time, RGB frame) pairs."""
    h, w = frames[0].shape[:2]
    x0, y0, x1, y1 = anim.face
    centre = ((x0 + x1) / 2, (y0 + y1) / 2)
    face_width = x1 - x0
    rng = np.random.default_rng([anim.seed, 7919])
    cv2.setRNGSeed(anim.seed % (2**31))
    focal = float(rng.uniform(1.0, 3.0)) * max(w, h)
    # the maps are smooth: computed on a grid 4 pixels apart, then interpolated
    u, v = np.meshgrid(np.arange(0, w + 4, 4, dtype=np.float64), np.arange(0, h + 4, 4, dtype=np.float64))
    fine_u, fine_v = np.meshgrid(np.arange(w, dtype=np.float32) / 4, np.arange(h, dtype=np.float32) / 4)
    out: list[tuple[float, np.ndarray]] = []
    for step in anim.steps:
        if step.repeat and out:
            out.append((step.t, out[-1][1]))
            continue
        image = frames[step.source]
        gx, gy = source_coordinates(step.motion, u, v, centre, face_width, focal)
        mx = cv2.remap(gx, fine_u, fine_v, cv2.INTER_LINEAR)
        my = cv2.remap(gy, fine_u, fine_v, cv2.INTER_LINEAR)
        if anim.print_box is not None and anim.background is not None:
            px0, py0, px1, py1 = anim.print_box
            inside = (mx >= px0) & (mx < px1) & (my >= py0) & (my < py1)
            warped = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            room = frames[anim.background]
            room = cv2.GaussianBlur(cv2.flip(room, 1), (0, 0), float(rng.uniform(8, 20)))  # a room, out of focus
            frame = np.where(inside[..., None], warped, room)
        else:
            frame = cv2.remap(image, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        out.append((step.t, _expose(frame, step.light)))
    return out


def _expose(frame: np.ndarray, p: Photometric) -> np.ndarray:
    x = frame.astype(np.float32) / 255.0
    if p.blur > 0:
        x = np.asarray(cv2.GaussianBlur(x, (0, 0), p.blur), np.float32)
    x = np.clip(x, 0, 1) ** p.gamma * p.gain * np.array(p.cast, np.float32)
    x = x * 255.0
    if p.noise > 0:
        noise = np.empty(x.shape, np.float32)
        # OpenCV's generator (numpy's costs 20 ms a frame); arrays, not scalars, for the
        # mean and deviation, or only the first channel gets noise
        cv2.randn(noise, np.zeros(1), np.full(1, p.noise))
        x = x + noise
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if p.jpeg:
        ok, buf = cv2.imencode(".jpg", out[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, p.jpeg])
        if ok:
            out = np.ascontiguousarray(cv2.imdecode(buf, cv2.IMREAD_COLOR)[:, :, ::-1])
    return out


# -- clips -----------------------------------------------------------------------------

SYNTH_VERSION = 2  # bump when a family's drawing or rendering changes: cached clips are then made again
SOURCE_FRAMES = 90  # frames of a source clip an animation may use (3 s at 30 fps)


PICTURE_SIZE = (640, 480)  # a still picture is framed as a camera would show it, filling the view


def source_frames(path: Path, limit: int = SOURCE_FRAMES) -> list[np.ndarray]:
    """The frames of a clip to animate; a still picture (a photo, not a recording: a
    ``picture`` row of a clip list) is one frame, scaled to fill a 640x480 view."""
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        image = load_image(path)
        h, w = image.shape[:2]
        k = max(PICTURE_SIZE[0] / w, PICTURE_SIZE[1] / h)
        image = cv2.resize(
            image,
            (max(PICTURE_SIZE[0], round(w * k)), max(PICTURE_SIZE[1], round(h * k))),
            interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC,
        )
        y, x = (image.shape[0] - PICTURE_SIZE[1]) // 2, (image.shape[1] - PICTURE_SIZE[0]) // 2
        return [np.ascontiguousarray(image[y : y + PICTURE_SIZE[1], x : x + PICTURE_SIZE[0]])]
    with open_source(path) as source:
        return [f.image for f in islice(source, limit)]


def synthetic(path: Path, family: str, seed: int, n: int = 45) -> ClipFrames | None:
    """The observations of clip ``path`` animated as ``family`` (or, for "live", the
    live clip re-delivered: :func:`relive`) with ``seed``, through the kiosk's own
    face analysis; cached. None when no frame of the source shows a face to animate."""
    key = hashlib.sha1(f"{SYNTH_VERSION}|{clip_stamp(path)}|{family}|{seed}|{n}".encode()).hexdigest()

    def make() -> ClipFrames:
        frames = source_frames(path)
        rng = np.random.default_rng([seed, 31337])
        # a live clip re-delivered needs its frames after the start: start early enough
        room = len(frames) if family != "live" else max(1, len(frames) - n + 1)
        for start in [int(rng.integers(room)) for _ in range(4)] + list(range(len(frames))):
            face = largest(analyzer().analyze(frames[start], frame=True))
            if face is not None:
                break
        else:
            return observe_frames([])
        size = (frames[0].shape[1], frames[0].shape[0])
        anim = (
            relive(seed, n, len(frames), start, face.box)
            if family == "live"
            else animate(family, seed, n, len(frames), start, face.box, size)
        )
        return observe_frames(render(anim, frames))

    clip = cached("liveness-synth", key, make)
    return clip if len(clip) else None
