"""Is the face in front of the camera a live person, or a photo or a screen?

:func:`load_liveness` gives the shipped model (``assets/liveness``) or a trained one;
:class:`LivenessMonitor` keeps one rolling window per tracked face and turns the
model's window scores into the states the kiosk shows: checking, live, spoof.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from .. import config
from ..errors import AccessctlError
from ..tracing import trace_for_inference
from .features import CROP, Observation, cues, window_before
from .model import LivenessNet

if TYPE_CHECKING:
    from .clips import ClipFrames

WEIGHTS_FILE = "liveness.pt"
META_FILE = "liveness.json"

# States of a face, in the order the kiosk meets them.
CHECKING, LIVE, SPOOF = "checking", "live", "spoof"
MIN_WINDOWS = 3  # window scores needed before a verdict: about 0.55 s at 30 fps
MAX_WINDOWS = 8  # the verdict is the mean of at most this many of the latest scores


@dataclass(frozen=True)
class LivenessModel:
    net: LivenessNet = field(repr=False)
    threshold: float  # P(live) at or above which a face is live
    window: int
    step_s: float
    source: Path
    features: torch.nn.Module = field(repr=False)  # net.frame_features, traced for the kiosk


class _Features(torch.nn.Module):
    def __init__(self, net: LivenessNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        return self.net.frame_features(crops)


def model_features(net: LivenessNet) -> torch.nn.Module:
    """The per-frame CNN as a frozen TorchScript trace: 1.2 ms a frame instead of 2.8."""
    return trace_for_inference(_Features(net), torch.zeros(1, CROP, CROP, 3, dtype=torch.uint8))


def shipped_dir() -> Path:
    return config.assets_dir() / "liveness"


@functools.lru_cache(maxsize=2)
def load_liveness(folder: str | Path | None = None) -> LivenessModel:
    """The liveness model in ``folder`` (default: the one shipped in ``assets/``)."""
    folder = Path(folder) if folder is not None else shipped_dir()
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        state = torch.load(folder / WEIGHTS_FILE, map_location="cpu", weights_only=True)
        net = LivenessNet()
        net.load_state_dict(state)
    except FileNotFoundError as exc:
        raise AccessctlError(f"no liveness model in {folder} ({Path(exc.filename).name} missing)") from None
    except Exception as exc:  # damaged weights raise many types; fail closed, clearly
        raise AccessctlError(f"the liveness model in {folder} does not load: {exc}") from None
    net.eval()
    return LivenessModel(net, float(meta["threshold"]), int(meta["window"]), float(meta["step_s"]), folder,
                         model_features(net))


@dataclass(frozen=True)
class LivenessVerdict:
    state: str  # checking | live | spoof
    p_live: float | None  # mean P(live) of the latest windows; None while checking
    windows: int  # window scores so far for this face


class LivenessMonitor:
    """Rolling clips, one per tracked face; the CNN runs once per frame per face.

    A verdict needs :data:`MIN_WINDOWS` window scores. A new track (a new face, or the
    same one after it was lost) starts from nothing: a swap in front of the camera
    cannot inherit the previous face's verdict.
    """

    def __init__(self, model: LivenessModel, *, keep_scores: bool = False) -> None:
        self.model = model
        # Every window score of a track, for clip evaluation; off in the kiosk, where a
        # track can last for hours.
        self.keep_scores = keep_scores
        self._tracks: dict[int, _TrackBuffer] = {}

    def update(self, track_id: int, t: float, obs: Observation) -> LivenessVerdict:
        buf = self._tracks.setdefault(track_id, _TrackBuffer(self.model.window, self.keep_scores))
        with torch.inference_mode():
            feat = self.model.features(torch.from_numpy(obs.crop[None]))[0]
        buf.add(t, feat, obs.points)
        times = np.array(buf.t)
        idx = window_before(times, len(times) - 1, self.model.window, self.model.step_s)
        if idx is not None:
            feats = torch.stack([buf.features[i] for i in idx])[None]
            cue = torch.from_numpy(cues(np.stack([buf.points[i] for i in idx])))[None]
            with torch.inference_mode():
                p = float(torch.sigmoid(self.model.net.clip_logit(feats, cue))[0])
            buf.record(p)
        return self.verdict(track_id)

    def verdict(self, track_id: int) -> LivenessVerdict:
        buf = self._tracks.get(track_id)
        if buf is None or len(buf.scores) < MIN_WINDOWS:
            return LivenessVerdict(CHECKING, None, 0 if buf is None else len(buf.scores))
        p = float(np.mean(list(buf.scores)[-MAX_WINDOWS:]))
        return LivenessVerdict(LIVE if p >= self.model.threshold else SPOOF, p, len(buf.scores))

    def scores(self, track_id: int) -> list[float]:
        """Every window score of the track so far (needs ``keep_scores``)."""
        buf = self._tracks.get(track_id)
        return list(buf.all_scores) if buf else []

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)


class _TrackBuffer:
    def __init__(self, window: int, keep_scores: bool) -> None:
        keep = window * 4  # enough frames to span a window at up to ~60 fps
        self.t: deque[float] = deque(maxlen=keep)
        self.features: deque[torch.Tensor] = deque(maxlen=keep)
        self.points: deque[np.ndarray] = deque(maxlen=keep)
        self.scores: deque[float] = deque(maxlen=MAX_WINDOWS)
        self.all_scores: list[float] = []
        self.keep_scores = keep_scores

    def add(self, t: float, feature: torch.Tensor, points: np.ndarray) -> None:
        self.t.append(t)
        self.features.append(feature)
        self.points.append(points)

    def record(self, p: float) -> None:
        self.scores.append(p)
        if self.keep_scores:
            self.all_scores.append(p)


def score_clip(model: LivenessModel, path: str | Path) -> float | None:
    """A clip's P(live), from the kiosk's own face analysis (cached per file by
    :func:`.clips.extract`) and monitor; see :func:`score_frames`."""
    from .clips import extract

    return score_frames(model, extract(path))


def score_frames(model: LivenessModel, frames: "ClipFrames") -> float | None:
    """The mean of the window scores a :class:`LivenessMonitor` gives a clip's frames,
    fed one by one as the kiosk feeds them. None when no window could be scored (no
    face, or a face in too few frames)."""
    monitor = LivenessMonitor(model, keep_scores=True)
    for i in range(len(frames)):
        monitor.update(0, float(frames.t[i]), Observation(frames.crops[i], frames.points[i]))
    scores = monitor.scores(0)
    return float(np.mean(scores)) if scores else None
