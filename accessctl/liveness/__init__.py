"""Is the face in front of the camera a live person, or a photo or a screen?

:func:`load_liveness` gives the shipped model (``accessctl/assets/liveness``) or a trained one;
:class:`LivenessMonitor` keeps one rolling window per tracked face and turns the
model's window scores into the states the kiosk shows: checking, live, spoof.

Three rules sit above the scores, because no score should be able to overrule them:

- **Stillness is not evidence.** A track whose latest windows show no motion at all
  (a frozen image, a photo or a paused screen held perfectly still) is a spoof,
  whatever the CNN thinks of its texture.
- **A plane is not a head.** A track whose latest windows moved enough to tell, and
  moved as a plane (a photo or a screen turned, tilted or slid in front of the
  camera: see :func:`.features.planar_ratio`), is a spoof.
- **No second chances.** Once a track is judged a spoof it stays refused until it
  ends (the face leaves the view); an attack whose score wavers is never let in on a
  lucky frame.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from accessctl.errors import AccessctlError
from accessctl.labels import Label
from accessctl.liveness.features import (
    CNN_SCALES,
    PLANAR_RATIO,
    Observation,
    cues,
    is_still,
    planar_ratio,
    window_before,
)
from accessctl.liveness.minifasnet import INPUT
from accessctl.liveness.model import FEATURE_DIM, FrameCNN, SequenceHead
from accessctl.liveness.weights import checked_state, load_frame_cnn, shipped_dir
from accessctl.tracing import trace_for_inference

WEIGHTS_FILE = "liveness.pt"
META_FILE = "liveness.json"
TUNED_FILE = "cnn_tuned.pt"  # the CNNs' fine-tuned last layers, when the model has them
PRETRAINED = "pretrained"  # the CNN id of the MiniFASNets as published

# States of a face, in the order the kiosk meets them.
class LivenessState(Label):
    """A track's liveness verdict: no verdict yet, live, or a presentation attack."""

    CHECKING = "checking"
    LIVE = "live"
    SPOOF = "spoof"


MIN_WINDOWS = 3  # window scores needed before a verdict: about 0.55 s at 30 fps
MAX_WINDOWS = 8  # the verdict is the mean of at most this many of the latest scores
DECIDE_S = 0.25  # how long the door looks at verdicts before it acts (3 identity checks, 0.1 s apart)
# The CNNs run on a face at most this often: a window takes its frames 1/15 s apart, so
# at 30 fps every other frame is all it ever uses, and the other half costs nothing.
CNN_EVERY_S = 0.75 / 15
PRESENTATION_S = 2.0  # evaluation cuts long clips into presentations of this length, each a new track


@dataclass(frozen=True)
class LivenessModel:
    head: SequenceHead = field(repr=False)
    threshold: float  # P(live) at or above which a face is live
    window: int
    step_s: float
    source: Path
    cnn: torch.nn.Module = field(repr=False)  # FrameCNN, traced for the kiosk
    cnn_id: str = PRETRAINED  # which CNN weights: PRETRAINED, or the SHA-256 of the fine-tuned layers


def traced_cnn(cnn: FrameCNN) -> torch.nn.Module:
    """Both CNNs as one frozen TorchScript trace."""
    return trace_for_inference(cnn, torch.zeros(1, len(CNN_SCALES), INPUT, INPUT, 3, dtype=torch.uint8))


@functools.lru_cache(maxsize=4)
def frame_cnn(tuned: tuple[Path, str] | None = None) -> torch.nn.Module:
    """The traced CNNs, pretrained or with fine-tuned last layers (a file and its SHA-256)."""
    return traced_cnn(load_frame_cnn(tuned=tuned))


def frame_features(crops: np.ndarray, cnn: torch.nn.Module | None = None, batch: int = 64) -> np.ndarray:
    """(N, 2, 80, 80, 3) crops -> (N, FEATURE_DIM) per-frame features (default: the pretrained CNNs)."""
    cnn = cnn if cnn is not None else frame_cnn()
    out = [np.zeros((0, FEATURE_DIM), np.float32)]
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(cnn(torch.from_numpy(np.ascontiguousarray(crops[i:i + batch]))).numpy())
    return np.concatenate(out)


def model_from_head(head: SequenceHead, threshold: float, window: int, step_s: float, source: Path,
                    tuned: tuple[Path, str] | None = None) -> LivenessModel:
    return LivenessModel(head.eval(), threshold, window, step_s, source, frame_cnn(tuned),
                         tuned[1] if tuned else PRETRAINED)


@functools.lru_cache(maxsize=2)
def load_liveness(folder: str | Path | None = None) -> LivenessModel:
    """The liveness model in ``folder`` (default: the one shipped in ``assets/``).

    The per-frame CNNs are the shipped, checksummed MiniFASNets; a folder holds the
    sequence head (``liveness.pt``, its SHA-256 in ``liveness.json``), the threshold,
    and optionally the CNNs' fine-tuned last layers (``cnn_tuned.pt``, its SHA-256 there
    too).
    """
    folder = Path(folder) if folder is not None else shipped_dir()
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        digest = str(meta["sha256"])
        threshold, window, step_s = float(meta["threshold"]), int(meta["window"]), float(meta["step_s"])
        shape = {"hidden": int(meta["head"]["hidden"]), "proj": int(meta["head"]["proj"])}
        tuned = (folder / TUNED_FILE, str(meta["cnn"]["sha256"])) if meta.get("cnn") else None
    except FileNotFoundError as exc:
        raise AccessctlError(f"no liveness model in {folder} ({Path(exc.filename).name} missing)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AccessctlError(f"the liveness model in {folder} does not load: {META_FILE} is damaged ({exc})") from None
    if not 0.0 < threshold < 1.0 or not 2 <= window <= 64 or not 0.0 < step_s <= 1.0:
        raise AccessctlError(f"the liveness model in {folder} does not load: threshold, window or step out of range")
    head = SequenceHead(**shape)
    try:
        head.load_state_dict(checked_state(folder / WEIGHTS_FILE, digest))
    except RuntimeError as exc:
        raise AccessctlError(f"the liveness model in {folder} does not load: {exc}") from None
    return model_from_head(head, threshold, window, step_s, folder, tuned)


def save_model(head: SequenceHead, out: Path, threshold: float, extra: dict,
               tuned: dict[str, torch.Tensor] | None = None) -> None:
    """``liveness.pt`` (a plain state dict), ``cnn_tuned.pt`` (the fine-tuned CNN layers,
    a plain state dict of :class:`.FrameCNN` keys, if any) and ``liveness.json``
    (threshold, window, digests)."""
    from accessctl import config
    from accessctl.liveness.features import STEP_S, WINDOW

    config.private_dir(out)
    config.write_private(out / WEIGHTS_FILE, lambda tmp: torch.save(head.state_dict(), tmp))
    shape = {"hidden": head.gru.hidden_size, "proj": head.proj.out_features if isinstance(head.proj, torch.nn.Linear) else 0}
    cnn = None
    if tuned:
        config.write_private(out / TUNED_FILE, lambda tmp: torch.save(tuned, tmp))
        cnn = {"sha256": config.sha256_file(out / TUNED_FILE), "layers": sorted({k.split(".")[2] for k in tuned})}
    else:
        (out / TUNED_FILE).unlink(missing_ok=True)
    meta = {"threshold": threshold, "window": WINDOW, "step_s": STEP_S, "head": shape,
            "sha256": config.sha256_file(out / WEIGHTS_FILE), "cnn": cnn, **extra}
    config.write_private(out / META_FILE, json.dumps(meta, indent=1))


@dataclass(frozen=True)
class LivenessVerdict:
    state: LivenessState
    p_live: float | None  # mean P(live) of the latest windows; None while checking
    windows: int  # window scores so far for this face
    still: bool = False  # the latest windows showed no motion at all
    planar: bool = False  # the latest windows moved as a plane
    t: float = 0.0  # the frame's time


class LivenessMonitor:
    """Rolling clips, one per tracked face; the CNNs run once per frame per face.

    A verdict needs :data:`MIN_WINDOWS` window scores. A new track (a new face, or the
    same one after it was lost) starts from nothing: a swap in front of the camera
    cannot inherit the previous face's verdict.
    """

    def __init__(self, model: LivenessModel, *, keep_scores: bool = False) -> None:
        self.model = model
        # Every verdict of a track, for clip evaluation; off in the kiosk, where a
        # track can last for hours.
        self.keep_scores = keep_scores
        self._tracks: dict[int, _TrackBuffer] = {}

    def due(self, track_id: int, t: float) -> bool:
        """Whether the next update of this track runs the CNNs (at most every CNN_EVERY_S)."""
        buf = self._tracks.get(track_id)
        return buf is None or not buf.t or t - buf.t[-1] >= CNN_EVERY_S

    def update(self, track_id: int, t: float, obs: Observation) -> LivenessVerdict:
        if not self.due(track_id, t):
            return self.verdict(track_id, t)
        with torch.inference_mode():
            feat = self.model.cnn(torch.from_numpy(obs.crops[None]))[0]
        return self._add(track_id, t, feat, obs.points)

    def update_features(self, track_id: int, t: float, feature: torch.Tensor, points: np.ndarray) -> LivenessVerdict:
        """:meth:`update` for a frame whose CNN features are already known (evaluation);
        the same frames are skipped, so that a score means the same thing."""
        if not self.due(track_id, t):
            return self.verdict(track_id, t)
        return self._add(track_id, t, feature, points)

    def _add(self, track_id: int, t: float, feature: torch.Tensor, points: np.ndarray) -> LivenessVerdict:
        buf = self._tracks.setdefault(track_id, _TrackBuffer(self.model.window))
        buf.add(t, feature, points)
        idx = window_before(np.array(buf.t), len(buf.t) - 1, self.model.window, self.model.step_s)
        if idx is not None:
            pts = np.stack([buf.points[i] for i in idx])
            feats = torch.stack([buf.features[i] for i in idx])[None]
            cue = torch.from_numpy(cues(pts))[None]
            with torch.inference_mode():
                p = float(torch.sigmoid(self.model.head(feats, cue))[0])
            buf.scores.append(p)
            buf.still.append(is_still(pts))
            buf.planar.append(planar_ratio(pts))
        verdict = self.verdict(track_id, t)
        if verdict.state == LivenessState.SPOOF:
            buf.spoofed = True
        if self.keep_scores and verdict.state != LivenessState.CHECKING:
            buf.verdicts.append(verdict)
        return verdict

    def verdict(self, track_id: int, t: float = 0.0) -> LivenessVerdict:
        buf = self._tracks.get(track_id)
        if buf is None or len(buf.scores) < MIN_WINDOWS:
            return LivenessVerdict(LivenessState.CHECKING, None, 0 if buf is None else len(buf.scores), t=t)
        p = float(np.mean(list(buf.scores)[-MAX_WINDOWS:]))
        still = all(list(buf.still)[-MIN_WINDOWS:])
        ratios = [r for r in buf.planar if r is not None]
        planar = len(ratios) >= MIN_WINDOWS and float(np.median(ratios)) < PLANAR_RATIO
        live = p >= self.model.threshold and not still and not planar and not buf.spoofed
        return LivenessVerdict(LivenessState.LIVE if live else LivenessState.SPOOF, p, len(buf.scores), still, planar, t)

    def verdicts(self, track_id: int) -> list[LivenessVerdict]:
        """Every verdict of the track so far (needs ``keep_scores``)."""
        buf = self._tracks.get(track_id)
        return list(buf.verdicts) if buf else []

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)


class _TrackBuffer:
    def __init__(self, window: int) -> None:
        keep = window * 4  # enough frames to span a window at up to ~60 fps
        self.t: deque[float] = deque(maxlen=keep)
        self.features: deque[torch.Tensor] = deque(maxlen=keep)
        self.points: deque[np.ndarray] = deque(maxlen=keep)
        self.scores: deque[float] = deque(maxlen=MAX_WINDOWS)
        self.still: deque[bool] = deque(maxlen=MAX_WINDOWS)
        self.planar: deque[float | None] = deque(maxlen=MAX_WINDOWS)
        self.spoofed = False
        self.verdicts: list[LivenessVerdict] = []

    def add(self, t: float, feature: torch.Tensor, points: np.ndarray) -> None:
        self.t.append(t)
        self.features.append(feature)
        self.points.append(points)
