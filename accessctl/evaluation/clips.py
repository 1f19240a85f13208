"""Clip lists and the per-frame observations of a clip, through the live pipeline.

A clip (video file or frame folder) is read by :func:`accessctl.frames.sources.open_source`
and every frame goes through the kiosk's own ``faces.analyzer()`` (camera-frame
mode) and :func:`.features.observe`, so training and evaluation see what the kiosk
sees. The largest face of each frame is the clip's subject. Observations are cached
per clip file (path, size, modification time), as face analysis is the slow part.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from accessctl import config
from accessctl.errors import AccessctlError
from accessctl.evaluation.lists import list_path, read_rows
from accessctl.frames.sources import open_source
from accessctl.liveness import (
    DECIDE_S,
    PRESENTATION_S,
    LivenessModel,
    LivenessMonitor,
    LivenessVerdict,
    frame_features,
    load_liveness,
)
from accessctl.liveness.features import BOX_CORRECTION, CNN_SCALES, N_POINTS, observe
from accessctl.liveness.minifasnet import INPUT
from accessctl.vision.faces import analyzer, largest

LABELS = ("live", "spoof")
_CACHE_FORMAT = 3


@dataclass(frozen=True)
class ClipSpec:
    path: Path
    label: str  # live | spoof
    attack: str  # none | print | replay | ...
    source: str = ""  # the capture set (person, room, camera) it belongs to; see source_of

    @property
    def live(self) -> bool:
        return self.label == "live"


@dataclass
class ClipFrames:
    """The frames of a clip in which a face was found, in order."""

    crops: np.ndarray = field(repr=False)  # (T, 2, 80, 80, 3) BGR uint8: the CNNs' inputs
    points: np.ndarray = field(repr=False)  # (T, N_POINTS, 3) float32
    t: np.ndarray = field(repr=False)  # (T,) seconds since the start of the clip
    frames: int  # frames read, with or without a face
    features: np.ndarray = field(repr=False)  # (T, FEATURE_DIM): the shipped model's CNN outputs
    cnn_id: str  # the CNN weights ``features`` come from (LivenessModel.cnn_id)

    def __len__(self) -> int:
        return len(self.t)

    def features_for(self, model: LivenessModel) -> np.ndarray:
        """The per-frame features as ``model``'s CNNs give them (computed again for a
        model whose CNN weights are not the ones cached)."""
        if model.cnn_id == self.cnn_id:
            return self.features
        return frame_features(self.crops, model.cnn)


def read_clip_list(path: str | Path) -> list[ClipSpec]:
    """``path,label,attack[,source]`` rows; paths relative to the CSV's folder (or absolute)."""
    path = Path(path)
    clips = []
    for line, row in read_rows(path, ("path", "label", "attack"), ("source",)):
        label, attack, clip = row["label"], row["attack"], row["path"]
        if label not in LABELS or not clip or not attack:
            raise AccessctlError(f"{path}:{line}: expected a path, label live or spoof, and an attack type")
        if label == "live" and attack != "none":
            raise AccessctlError(f"{path}:{line}: a live clip has attack 'none', not {attack!r}")
        if label == "spoof" and attack == "none":
            raise AccessctlError(f"{path}:{line}: a spoof clip needs its attack type (print, replay, ...)")
        where = list_path(path, clip)
        clips.append(ClipSpec(where, label, attack, row["source"] or source_of(where)))
    if not clips:
        raise AccessctlError(f"{path}: no clips")
    return clips


def source_of(path: Path) -> str:
    """The capture set of a clip when its list does not say: a NUAA-style name starts
    with the subject number (one person, one room); a live/replay pair of videos
    shares its folder; any other video is a source of its own."""
    m = re.match(r"(\d{3,})_", path.name)
    if m:
        return f"nuaa-{m.group(1)}"
    if path.is_file() and re.fullmatch(r"pair\d+", path.parent.name):
        return path.parent.name
    return path.stem if path.is_file() else path.name


def _cache_key(path: Path) -> str:
    st = path.stat()
    if path.is_dir():
        newest = max((f.stat().st_mtime_ns for f in path.iterdir()), default=0)
        stamp = f"{len(list(path.iterdir()))}|{newest}"
    else:
        stamp = f"{st.st_size}|{st.st_mtime_ns}"
    key = f"{_CACHE_FORMAT}|{BOX_CORRECTION}|{path.resolve()}|{stamp}"
    return hashlib.sha1(key.encode()).hexdigest()


def extract(path: str | Path, *, use_cache: bool = True) -> ClipFrames:
    """The observations of the largest face in every frame of a clip, and the shipped
    model's CNN features of them (computed again, not the face analysis, when the
    shipped CNN weights have changed since the clip was cached)."""
    path = Path(path)
    shipped = load_liveness()
    with open_source(path) as source:  # raises a clear VideoError for missing or damaged input
        cache = config.cache_dir() / "liveness-clips" / f"{_cache_key(path)}.npz"
        if use_cache and cache.is_file():
            try:
                with np.load(cache) as z:
                    clip = ClipFrames(z["crops"], z["points"], z["t"], int(z["frames"]), z["features"],
                                      str(z["cnn_id"]))
                if clip.cnn_id == shipped.cnn_id:
                    return clip
                clip.features, clip.cnn_id = clip.features_for(shipped), shipped.cnn_id
                _save(cache, clip)
                return clip
            except (OSError, ValueError, KeyError):
                pass
        crops, points, times, n = [], [], [], 0
        for frame in source:
            n += 1
            face = largest(analyzer().analyze(frame.image, frame=True))
            if face is None:
                continue
            obs = observe(frame.image, face.box, face.landmarks)
            crops.append(obs.crops)
            points.append(obs.points)
            times.append(frame.t)

    stacked = np.stack(crops) if crops else np.zeros((0, len(CNN_SCALES), INPUT, INPUT, 3), np.uint8)
    clip = ClipFrames(
        stacked,
        np.stack(points).astype(np.float32) if points else np.zeros((0, N_POINTS, 3), np.float32),
        np.array(times, np.float64),
        n,
        frame_features(stacked, shipped.cnn),
        shipped.cnn_id,
    )
    if use_cache:
        _save(cache, clip)
    return clip


def _save(cache: Path, clip: ClipFrames) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, crops=clip.crops, points=clip.points, t=clip.t, frames=clip.frames, features=clip.features,
                     cnn_id=clip.cnn_id)

    config.write_private(cache, save)


def decision_score(verdicts: list[LivenessVerdict]) -> float | None:
    """What the door acts on for one presentation: the lowest P(live) of the verdicts in
    its first :data:`~accessctl.liveness.DECIDE_S` seconds, a still or planar verdict counting as 0. A spoof verdict
    is final, so a presentation is refused at a threshold exactly when this score is
    below it, which makes the score usable for choosing the threshold. None when no
    verdict was reached."""
    if not verdicts:
        return None
    first = verdicts[0]
    scores = [0.0 if v.still or v.planar else float(v.p_live or 0.0) for v in verdicts if v.t - first.t <= DECIDE_S]
    return float(min(scores))


def presentation_scores(model: LivenessModel, frames: ClipFrames,
                        features: np.ndarray | None = None) -> list[float | None]:
    """Door decisions for a clip, fed frame by frame to a :class:`~accessctl.liveness.LivenessMonitor` as the
    kiosk feeds it: one per :data:`~accessctl.liveness.PRESENTATION_S` of the clip (each a new track, like a
    person stepping up again), see :func:`decision_score`. ``features``: the frames'
    CNN features when training has them (default: ``model``'s CNNs')."""
    if len(frames) == 0:
        return [None]
    feats = torch.from_numpy(frames.features_for(model) if features is None else features)
    monitor = LivenessMonitor(model, keep_scores=True)
    start = float(frames.t[0])
    track = 0
    out: list[float | None] = []
    for i in range(len(frames)):
        if frames.t[i] - start >= PRESENTATION_S:
            out.append(decision_score(monitor.verdicts(track)))
            monitor.forget(track)
            track, start = track + 1, float(frames.t[i])
        monitor.update_features(track, float(frames.t[i]), feats[i], frames.points[i])
    last = decision_score(monitor.verdicts(track))
    if last is not None or not out:
        out.append(last)
    return out


def score_clip(model: LivenessModel, path: str | Path) -> list[float | None]:
    """A clip's presentation scores, from the kiosk's own face analysis (cached per file
    by :func:`extract`) and monitor."""
    return presentation_scores(model, extract(path))
