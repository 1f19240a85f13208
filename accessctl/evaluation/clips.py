"""Clip lists and the per-frame observations of a clip, through the live pipeline.

A clip (video file or frame folder) is read by :func:`accessctl.frames.sources.open_source`
and every frame goes through the kiosk's own ``faces.analyzer()`` (camera-frame
mode) and :func:`.features.observe`, so training and evaluation see what the kiosk
sees. The largest face of each frame is the clip's subject. Observations are cached
per clip file (path, size, modification time), as face analysis is the slow part.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from accessctl import config
from accessctl.errors import AccessctlError
from accessctl.evaluation.lists import list_path, read_rows
from accessctl.frames.sources import open_source
from accessctl.liveness.features import BOX_CORRECTION, CNN_SCALES, N_POINTS, Observation, observe
from accessctl.liveness.minifasnet import INPUT
from accessctl.liveness.monitor import LivenessMonitor, dense_cues
from accessctl.liveness.motion import PATCH
from accessctl.liveness.saved import LivenessModel, frame_features, load_liveness
from accessctl.liveness.verdict import DECIDE_S, MIN_WINDOWS, PRESENTATION_S, LivenessState, LivenessVerdict
from accessctl.vision.faces import analyzer, largest
from accessctl.vision.tracking import Tracker

LABELS = ("live", "spoof")
_CACHE_FORMAT = 5


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
    patches: np.ndarray = field(repr=False)  # (T, PATCH, PATCH) grey uint8 (see liveness.motion)
    squares: np.ndarray = field(repr=False)  # (T, 3): the landmarks' square, left, top, side
    sizes: np.ndarray = field(repr=False)  # (T, 2): the image's width and height
    tracks: np.ndarray = field(repr=False)  # (T,): which of the kiosk's tracks of the subject each frame is in
    # dense motion cues already measured, by (frame, frame before): evaluation scores a
    # clip once per model and fold, and the cues do not depend on the model
    _dense: dict[tuple[int, int], np.ndarray] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.t)

    def features_for(self, model: LivenessModel) -> np.ndarray:
        """The per-frame features as ``model``'s CNNs give them (computed again for a
        model whose CNN weights are not the ones cached)."""
        if model.cnn_id == self.cnn_id:
            return self.features
        return frame_features(self.crops, model.cnn)

    @functools.cached_property
    def observations(self) -> list[Observation]:
        return [
            Observation(
                self.crops[i],
                self.points[i],
                self.patches[i],
                (float(self.squares[i, 0]), float(self.squares[i, 1]), float(self.squares[i, 2])),
                (int(self.sizes[i, 0]), int(self.sizes[i, 1])),
            )
            for i in range(len(self))
        ]

    def dense(self, before: Observation, now: Observation) -> np.ndarray:
        """:func:`accessctl.liveness.monitor.dense_cues` of two of this clip's observations, measured once."""
        index = self._index
        key = (index[id(now)], index[id(before)])
        got = self._dense.get(key)
        if got is None:
            got = self._dense[key] = dense_cues(before, now)
        return got

    @functools.cached_property
    def _index(self) -> dict[int, int]:
        return {id(o): i for i, o in enumerate(self.observations)}

    def __getstate__(self) -> dict:
        # the observations are remade where the clip is unpickled: the index is by identity
        state = self.__dict__.copy()
        state.pop("observations", None)
        state.pop("_index", None)
        return state


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


def clip_stamp(path: Path) -> str:
    """A digest of a clip file or folder's content (its files' names and bytes) and of
    how its frames are analysed: a cached analysis is used only under the same one.
    Content, not modification times, so that a data folder copied again (as each
    machine does) keeps its cache."""
    files = sorted(path.iterdir()) if path.is_dir() else [path]
    key = f"{_CACHE_FORMAT}|{BOX_CORRECTION}|{path.name}|" + "|".join(
        f"{f.name}:{_file_digest(f, f.stat())}" for f in files if f.is_file()
    )
    return hashlib.sha1(key.encode()).hexdigest()


@functools.lru_cache(maxsize=4096)
def _file_digest_cached(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _file_digest(path: Path, st: os.stat_result) -> str:
    return _file_digest_cached(path.resolve(), st.st_size, st.st_mtime_ns)


def cached(kind: str, key: str, make: Callable[[], ClipFrames], use_cache: bool = True) -> ClipFrames:
    """The observations cached under ``kind``/``key``, or ``make()``'s, then cached; CNN
    features are computed again (not the face analysis) when the shipped CNN weights
    have changed since."""
    shipped = load_liveness()
    cache = config.cache_dir() / kind / f"{key}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:
                clip = ClipFrames(
                    z["crops"],
                    z["points"],
                    z["t"],
                    int(z["frames"]),
                    z["features"],
                    str(z["cnn_id"]),
                    z["patches"],
                    z["squares"],
                    z["sizes"],
                    z["tracks"],
                )
            if clip.cnn_id != shipped.cnn_id:
                clip.features, clip.cnn_id = clip.features_for(shipped), shipped.cnn_id
                _save(cache, clip)
            return clip
        except (OSError, ValueError, KeyError):
            pass
    clip = make()
    if use_cache:
        _save(cache, clip)
    return clip


def extract(path: str | Path, *, use_cache: bool = True) -> ClipFrames:
    """The observations of the largest face in every frame of a clip, and the shipped
    model's CNN features of them (cached per file: see :func:`cached`)."""
    path = Path(path)
    with open_source(path) as source:  # raises a clear VideoError for missing or damaged input
        return cached(
            "liveness-clips", clip_stamp(path), lambda: observe_frames((f.t, f.image) for f in source), use_cache
        )


def observe_frames(frames: Iterable[tuple[float, np.ndarray]], model: LivenessModel | None = None) -> ClipFrames:
    """The observations of a clip's subject in each (time, RGB image), through the
    kiosk's own face analysis and tracker, with ``model``'s CNN features (default: the
    shipped one's). The subject is the largest face when it appears, then followed as
    the kiosk's tracker follows it, so that a second face in the picture never takes
    its place (a lone face that jumps, in a clip of frames far apart, stays the
    subject); when its track ends among other faces, the largest face then is the next
    subject, on a track of its own (``tracks``)."""
    model = model or load_liveness()
    obs: list[Observation] = []
    times: list[float] = []
    tracks: list[int] = []
    tracker = Tracker()
    subject: int | None = None
    segment = 0
    n = 0
    for t, image in frames:
        n += 1
        faces = analyzer().analyze(image, frame=True)
        ids, _ = tracker.update([f.box for f in faces], t)
        if subject not in ids and len(faces) == 1 and subject is not None:
            subject = ids[0]  # the one face in view jumped (frames far apart): still the subject
        elif subject not in tracker.tracks and faces:
            big = largest(faces)
            assert big is not None
            subject, segment = ids[faces.index(big)], segment + 1
        if subject not in ids:
            continue  # the subject is not seen in this frame, and someone else is
        face = faces[ids.index(subject)]
        obs.append(observe(image, face.box, face.landmarks))
        times.append(t)
        tracks.append(segment)
    crops = np.stack([o.crops for o in obs]) if obs else np.zeros((0, len(CNN_SCALES), INPUT, INPUT, 3), np.uint8)
    return ClipFrames(
        crops,
        np.stack([o.points for o in obs]).astype(np.float32) if obs else np.zeros((0, N_POINTS, 3), np.float32),
        np.array(times, np.float64),
        n,
        frame_features(crops, model.cnn),
        model.cnn_id,
        np.stack([o.patch for o in obs]) if obs else np.zeros((0, PATCH, PATCH), np.uint8),
        np.array([o.square for o in obs], np.float64).reshape(-1, 3),
        np.array([o.size for o in obs], np.int64).reshape(-1, 2),
        np.array(tracks, np.int64),
    )


def _save(cache: Path, clip: ClipFrames) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)

    def save(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                crops=clip.crops,
                points=clip.points,
                t=clip.t,
                frames=clip.frames,
                features=clip.features,
                cnn_id=clip.cnn_id,
                patches=clip.patches,
                squares=clip.squares,
                sizes=clip.sizes,
                tracks=clip.tracks,
            )

    config.write_private(cache, save)


def grant_curve(verdicts: list[LivenessVerdict], first_t: float, evidence_s: float) -> list[tuple[float, float]]:
    """When the door could grant, and at which motion thresholds: for each verdict
    within ``evidence_s`` of the face's first frame (``first_t``), the seconds from that
    frame to a grant that starts there (the verdict's time plus
    :data:`~accessctl.liveness.verdict.DECIDE_S`, the door's identity checks) and the lowest
    motion P(live) that held through it, with the texture judged live. A spoof verdict
    is final, so it holds 0 from then on. The door grants at a motion threshold at the
    first entry whose P(live) is at or above it."""
    scored = [v for v in verdicts if v.windows >= MIN_WINDOWS or v.state == LivenessState.SPOOF]
    m = [0.0 if v.state == LivenessState.SPOOF else float(v.p_motion or 0.0) for v in scored]
    curve = []
    for k, v in enumerate(scored):
        if v.t - first_t > evidence_s:
            break
        held = [m[j] for j in range(k, len(scored)) if scored[j].t - v.t <= DECIDE_S]
        curve.append((v.t + DECIDE_S - first_t, min(held)))
    return curve


def door_score(verdicts: list[LivenessVerdict], first_t: float, evidence_s: float) -> float | None:
    """What the door acts on for one presentation, as a score that a motion threshold
    can be compared with: the highest motion P(live) of :func:`grant_curve`. The door
    grants at a motion threshold exactly when this is at or above it. None when no
    verdict was reached (no face, or too short a clip for the CNNs' windows)."""
    if not any(v.windows >= MIN_WINDOWS or v.state == LivenessState.SPOOF for v in verdicts):
        return None
    return max((p for _, p in grant_curve(verdicts, first_t, evidence_s)), default=0.0)


def time_to_grant(curve: list[tuple[float, float]], threshold: float) -> float | None:
    """Seconds from the face's first frame to the grant at ``threshold`` (see
    :func:`grant_curve`); None if it never grants."""
    return next((t for t, p in curve if p >= threshold), None)


def decision_time(verdicts: list[LivenessVerdict], first_t: float, model: LivenessModel) -> float | None:
    """Seconds from the face's first frame to the door's grant at ``model``'s
    thresholds; None if it never grants."""
    return time_to_grant(grant_curve(verdicts, first_t, model.evidence_s), model.motion_threshold)


@dataclass(frozen=True)
class Presentation:
    """One presentation of a clip through the kiosk's monitor."""

    first_t: float
    verdicts: list[LivenessVerdict]


def presentations(model: LivenessModel, frames: ClipFrames, features: np.ndarray | None = None) -> list[Presentation]:
    """A clip fed frame by frame to a :class:`~accessctl.liveness.monitor.LivenessMonitor` as
    the kiosk feeds it, cut into presentations of :data:`~accessctl.liveness.verdict.PRESENTATION_S`
    (each a new track, like a person stepping up again), and where the subject's track
    ends. ``features``: the frames' CNN features when training has them (default:
    ``model``'s CNNs')."""
    if len(frames) == 0:
        return []
    feats = torch.from_numpy(frames.features_for(model) if features is None else features)
    monitor = LivenessMonitor(model, keep_scores=True, step_fn=frames.dense)
    obs = frames.observations
    start = float(frames.t[0])
    track = 0
    out: list[Presentation] = []
    for i in range(len(frames)):
        if frames.t[i] - start >= PRESENTATION_S or (i and frames.tracks[i] != frames.tracks[i - 1]):
            out.append(Presentation(start, monitor.verdicts(track)))
            monitor.forget(track)
            track, start = track + 1, float(frames.t[i])
        monitor.update(track, float(frames.t[i]), obs[i], feats[i])
    out.append(Presentation(start, monitor.verdicts(track)))
    return out


def presentation_scores(
    model: LivenessModel, frames: ClipFrames, features: np.ndarray | None = None
) -> list[float | None]:
    """Door scores for a clip's presentations (see :func:`presentations` and :func:`door_score`)."""
    got = presentations(model, frames, features)
    if not got:
        return [None]
    scores = [door_score(p.verdicts, p.first_t, model.evidence_s) for p in got]
    if len(scores) > 1 and scores[-1] is None:  # a tail too short to judge is not a presentation
        scores.pop()
    return scores


def texture_score(verdicts: list[LivenessVerdict]) -> float | None:
    """The texture part of a presentation alone: the lowest CNN P(live) of its verdicts
    in the first :data:`~accessctl.liveness.verdict.DECIDE_S` after the first (what the door
    acted on before the motion head). None when no verdict was reached."""
    scored = [v for v in verdicts if v.p_live is not None]
    if not scored:
        return None
    return float(min(v.p_live or 0.0 for v in scored if v.t - scored[0].t <= DECIDE_S))


def texture_scores(model: LivenessModel, frames: ClipFrames, features: np.ndarray | None = None) -> list[float | None]:
    """:func:`texture_score` of a clip's presentations; the texture threshold is compared with these."""
    got = presentations(model, frames, features)
    scores = [texture_score(p.verdicts) for p in got] or [None]
    if len(scores) > 1 and scores[-1] is None:
        scores.pop()
    return scores


def score_clip(model: LivenessModel, path: str | Path) -> list[float | None]:
    """A clip's presentation scores, from the kiosk's own face analysis (cached per file
    by :func:`extract`) and monitor."""
    return presentation_scores(model, extract(path))
