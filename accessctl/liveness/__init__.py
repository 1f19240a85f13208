"""Is the face in front of the camera a live person, or a photo or a screen?

:func:`load_liveness` gives the shipped model (``accessctl/assets/liveness``) or a trained one;
:class:`LivenessMonitor` follows each tracked face and turns the model's scores into
the states the kiosk shows: checking, live, spoof, unsure.

A face is judged on two things, and both must hold for it to be live:

- **It looks live** (texture): the CNNs' P(live), averaged over short windows, is at
  or above the model's ``threshold``. Below it the face is a **spoof**: a print or a
  screen the CNNs can see.
- **It moves like a head** (motion): the motion head, a GRU over the face's last
  second of steps, finds evidence of life (parallax, a blink, speech, motion against
  the room) at or above ``motion_threshold``. A picture that looks real, however it
  is jittered, slid, turned, bent, relit or fed by a program, gives none.

A face that looks live but has shown no evidence of life is **checking**, and after
:data:`EVIDENCE_S` **unsure**: the door then asks for a head turn, or refuses (see
``[liveness] challenge``). No evidence is not called a spoof: a live person standing
very still gives none either.

**No second chances.** Once a track is judged a spoof it stays refused until it ends
(the face leaves the view); an attack whose score wavers is never let in on a lucky
frame.
"""

from __future__ import annotations

import functools
import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from accessctl.errors import AccessctlError
from accessctl.labels import Label
from accessctl.liveness.features import (
    CNN_SCALES,
    STEP_S,
    WINDOW,
    Observation,
    cues,
    history_before,
    partner,
    window_before,
)
from accessctl.liveness.minifasnet import INPUT
from accessctl.liveness.model import FEATURE_DIM, STEP_INPUTS, FrameCNN, MotionHead, step_inputs, texture_logit
from accessctl.liveness.motion import step_cues
from accessctl.liveness.weights import checked_state, load_frame_cnn, shipped_dir
from accessctl.tracing import trace_for_inference

WEIGHTS_FILE = "liveness.pt"
META_FILE = "liveness.json"
TUNED_FILE = "cnn_tuned.pt"  # the CNNs' fine-tuned last layers, when the model has them
PRETRAINED = "pretrained"  # the CNN id of the MiniFASNets as published
FORMAT = 2  # liveness.json's layout: 2 = texture threshold and a motion head


# States of a face, in the order the kiosk meets them.
class LivenessState(Label):
    """A track's liveness verdict: no verdict yet, live, a presentation attack, or no
    evidence of life within the time the door looks (see :data:`EVIDENCE_S`)."""

    CHECKING = "checking"
    LIVE = "live"
    SPOOF = "spoof"
    UNSURE = "unsure"


MIN_WINDOWS = 3  # texture window scores needed before a verdict: about 0.47 s at 30 fps
MAX_WINDOWS = 8  # the texture score is the mean of at most this many of the latest windows
DECIDE_S = 0.25  # how long the door looks at verdicts before it acts (3 identity checks, 0.1 s apart)
# The CNNs run on a face at most this often: a window takes its frames 1/15 s apart, so
# at 30 fps every other frame is all it ever uses, and the other half costs nothing.
CNN_EVERY_S = 0.75 / 15
PRESENTATION_S = 2.0  # evaluation cuts long clips into presentations of this length, each a new track
HISTORY = 15  # steps (1/15 s apart) the motion head reads at most: the face's last second
MIN_HISTORY = 3  # steps before the motion head is asked at all
EVIDENCE_S = 1.5  # a face that has shown no evidence of life this long after it appeared is UNSURE


@dataclass(frozen=True)
class LivenessModel:
    motion: MotionHead = field(repr=False)
    threshold: float  # texture: the CNNs' P(live) at or above which a face looks live
    motion_threshold: float  # the motion head's P(live) at or above which a face moved like a head
    window: int  # texture window, frames step_s apart
    step_s: float
    source: Path
    cnn: torch.nn.Module = field(repr=False)  # FrameCNN, traced for the kiosk
    cnn_id: str = PRETRAINED  # which CNN weights: PRETRAINED, or the SHA-256 of the fine-tuned layers
    history: int = HISTORY
    evidence_s: float = EVIDENCE_S


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


def make_model(motion: MotionHead, threshold: float, motion_threshold: float, source: Path,
               tuned: tuple[Path, str] | None = None, evidence_s: float = EVIDENCE_S) -> LivenessModel:
    return LivenessModel(motion.eval(), threshold, motion_threshold, WINDOW, STEP_S, source, frame_cnn(tuned),
                         tuned[1] if tuned else PRETRAINED, HISTORY, evidence_s)


@functools.lru_cache(maxsize=2)
def load_liveness(folder: str | Path | None = None) -> LivenessModel:
    """The liveness model in ``folder`` (default: the one shipped in ``assets/``).

    The per-frame CNNs are the shipped, checksummed MiniFASNets; a folder holds the
    motion head (``liveness.pt``, its SHA-256 in ``liveness.json``), both thresholds,
    and optionally the CNNs' fine-tuned last layers (``cnn_tuned.pt``, its SHA-256 there
    too).
    """
    folder = Path(folder) if folder is not None else shipped_dir()
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise ValueError("a model from before the motion head; train it again with 'accessctl liveness train'")
        digest = str(meta["sha256"])
        threshold, window, step_s = float(meta["threshold"]), int(meta["window"]), float(meta["step_s"])
        motion_threshold, evidence_s = float(meta["motion"]["threshold"]), float(meta["motion"]["evidence_s"])
        hidden, history = int(meta["motion"]["hidden"]), int(meta["motion"]["history"])
        tuned = (folder / TUNED_FILE, str(meta["cnn"]["sha256"])) if meta.get("cnn") else None
    except FileNotFoundError as exc:
        raise AccessctlError(f"no liveness model in {folder} ({Path(exc.filename).name} missing)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AccessctlError(f"the liveness model in {folder} does not load: {META_FILE} is damaged ({exc})") from None
    if (not 0.0 < threshold < 1.0 or not 0.0 < motion_threshold < 1.0 or window != WINDOW or step_s != STEP_S
            or history != HISTORY or not 0.2 <= evidence_s <= 10.0):
        raise AccessctlError(f"the liveness model in {folder} does not load: a threshold, window or time out of range")
    head = MotionHead(hidden)
    try:
        head.load_state_dict(checked_state(folder / WEIGHTS_FILE, digest))
    except RuntimeError as exc:
        raise AccessctlError(f"the liveness model in {folder} does not load: {exc}") from None
    return make_model(head, threshold, motion_threshold, folder, tuned, evidence_s)


def _save_state(state: dict[str, torch.Tensor], path: str) -> None:
    """Through an open file: saved by path, torch names the archive inside after the
    (temporary) file, so the same weights would get another SHA-256 each time."""
    with open(path, "wb") as f:
        torch.save(state, f)


def save_model(model: LivenessModel, out: Path, extra: dict, tuned: dict[str, torch.Tensor] | None = None) -> None:
    """``liveness.pt`` (the motion head, a plain state dict), ``cnn_tuned.pt`` (the
    fine-tuned CNN layers, a plain state dict of :class:`.FrameCNN` keys, if any) and
    ``liveness.json`` (thresholds, window, digests)."""
    from accessctl import config

    config.private_dir(out)
    config.write_private(out / WEIGHTS_FILE, lambda tmp: _save_state(model.motion.state_dict(), tmp))
    cnn = None
    if tuned:
        config.write_private(out / TUNED_FILE, lambda tmp: _save_state(tuned, tmp))
        cnn = {"sha256": config.sha256_file(out / TUNED_FILE), "layers": sorted({k.split(".")[2] for k in tuned})}
    else:
        (out / TUNED_FILE).unlink(missing_ok=True)
    meta = {"format": FORMAT, "threshold": model.threshold, "window": model.window, "step_s": model.step_s,
            "motion": {"threshold": model.motion_threshold, "hidden": model.motion.gru.hidden_size,
                       "history": model.history, "evidence_s": model.evidence_s},
            "sha256": config.sha256_file(out / WEIGHTS_FILE), "cnn": cnn, **extra}
    config.write_private(out / META_FILE, json.dumps(meta, indent=1))


@dataclass(frozen=True)
class LivenessVerdict:
    state: LivenessState
    p_live: float | None  # texture: mean P(live) of the CNNs over the latest windows; None while checking
    windows: int  # texture window scores so far for this face
    p_motion: float | None = None  # the motion head's latest P(live); None before it has spoken
    t: float = 0.0  # the frame's time


# The dense motion cues of a step: (the frame before, this frame) -> motion.N_STEP values.
StepFn = Callable[[Observation, Observation], np.ndarray]


def dense_cues(before: Observation, now: Observation) -> np.ndarray:
    return step_cues(before.patch, before.square, before.size, now.patch, now.square, now.size, now.points)


class LivenessMonitor:
    """Rolling clips, one per tracked face; the CNNs and the motion cues run once per
    step (at most every :data:`CNN_EVERY_S`) per face.

    A verdict needs :data:`MIN_WINDOWS` texture scores. A new track (a new face, or the
    same one after it was lost) starts from nothing: a swap in front of the camera
    cannot inherit the previous face's verdict. A frame identical to the one before
    (a camera repeating itself, a frozen picture) adds nothing: it is not a step.
    """

    def __init__(self, model: LivenessModel, *, keep_scores: bool = False, step_fn: StepFn = dense_cues) -> None:
        self.model = model
        # Every verdict of a track, for clip evaluation; off in the kiosk, where a
        # track can last for hours.
        self.keep_scores = keep_scores
        self.step_fn = step_fn
        self._tracks: dict[int, _TrackBuffer] = {}

    def due(self, track_id: int, t: float) -> bool:
        """Whether the next update of this track runs the CNNs (at most every CNN_EVERY_S)."""
        buf = self._tracks.get(track_id)
        return buf is None or not buf.t or t - buf.t[-1] >= CNN_EVERY_S

    def update(self, track_id: int, t: float, obs: Observation, feature: torch.Tensor | None = None) -> LivenessVerdict:
        """This frame of the track; ``feature``: its CNN features when already known
        (evaluation), so that the CNNs do not run again."""
        if not self.due(track_id, t):
            return self.verdict(track_id, t)
        buf = self._tracks.get(track_id)
        if buf is not None and buf.obs and _same_picture(buf.obs[-1], obs):
            return self.verdict(track_id, t)
        if feature is None:
            with torch.inference_mode():
                feature = self.model.cnn(torch.from_numpy(obs.crops[None]))[0]
        return self._add(track_id, t, feature, obs)

    def _add(self, track_id: int, t: float, feature: torch.Tensor, obs: Observation) -> LivenessVerdict:
        model = self.model
        buf = self._tracks.get(track_id)
        if buf is None:
            buf = self._tracks[track_id] = _TrackBuffer(model.history, t, everything=self.keep_scores)
        times = np.array([*buf.t, t])
        before = partner(times, len(times) - 1, model.step_s)
        if before is not None:
            prev = buf.obs[before]
            lm = cues(np.stack([prev.points, obs.points]))[1]
            step = step_inputs(feature.numpy(), (t - times[before]) / model.step_s, lm, self.step_fn(prev, obs))
        else:
            step = step_inputs(feature.numpy(), 0.0, None, None)
        buf.add(t, feature, obs, step)
        end = len(buf.t) - 1
        idx = window_before(times, end, model.window, model.step_s)
        if idx is not None:
            feats = torch.stack([buf.features[i] for i in idx])
            buf.texture.append(float(torch.sigmoid(texture_logit(feats))))
        hist = history_before(times, end, model.history, model.step_s)
        if len(hist) >= MIN_HISTORY:
            steps = torch.from_numpy(np.stack([buf.steps[i] for i in hist]))[None]
            with torch.inference_mode():
                buf.motion = float(torch.sigmoid(model.motion(steps))[0])
        verdict = self.verdict(track_id, t)
        if verdict.state == LivenessState.SPOOF:
            buf.spoofed = True
        if self.keep_scores and (verdict.windows >= MIN_WINDOWS or verdict.state != LivenessState.CHECKING):
            buf.verdicts.append(verdict)
        return verdict

    def verdict(self, track_id: int, t: float = 0.0) -> LivenessVerdict:
        buf = self._tracks.get(track_id)
        if buf is None:
            return LivenessVerdict(LivenessState.CHECKING, None, 0, t=t)
        model = self.model
        waited = t - buf.first_t >= model.evidence_s
        if len(buf.texture) < MIN_WINDOWS and not buf.spoofed:
            return LivenessVerdict(LivenessState.UNSURE if waited else LivenessState.CHECKING, None,
                                   len(buf.texture), buf.motion, t)
        p = float(np.mean(list(buf.texture)[-MAX_WINDOWS:])) if buf.texture else 0.0
        if buf.spoofed or p < model.threshold:
            state = LivenessState.SPOOF
        elif buf.motion is not None and buf.motion >= model.motion_threshold and not buf.looped:
            state = LivenessState.LIVE
        else:
            state = LivenessState.UNSURE if waited else LivenessState.CHECKING
        return LivenessVerdict(state, p, len(buf.texture), buf.motion, t)

    def mark_looped(self, track_id: int) -> None:
        """The track's face came back in a picture the camera had already given, after
        another one (frames of a recording looped by a program: a camera's sensor
        never repeats itself exactly). Its motion is then no evidence of life: the
        track can be unsure or a spoof, never live on how it moved."""
        buf = self._tracks.get(track_id)
        if buf is not None:
            buf.looped = True

    def verdicts(self, track_id: int) -> list[LivenessVerdict]:
        """Every verdict of the track so far (needs ``keep_scores``)."""
        buf = self._tracks.get(track_id)
        return list(buf.verdicts) if buf else []

    def steps(self, track_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The track's step times and motion-head inputs kept so far (training reads
        them through the kiosk's own code)."""
        buf = self._tracks.get(track_id)
        if buf is None:
            return np.zeros(0), np.zeros((0, STEP_INPUTS), np.float32)
        return np.array(buf.t), np.stack(list(buf.steps)) if buf.steps else np.zeros((0, STEP_INPUTS), np.float32)

    def forget(self, track_id: int) -> None:
        self._tracks.pop(track_id, None)


def _same_picture(a: Observation, b: Observation) -> bool:
    return a.square == b.square and np.array_equal(a.patch, b.patch) and np.array_equal(a.points, b.points)


class _TrackBuffer:
    def __init__(self, history: int, t: float, everything: bool = False) -> None:
        # enough steps to span the history at up to ~45 fps; evaluation keeps them all
        keep = None if everything else history * 3
        self.first_t = t
        self.t: deque[float] = deque(maxlen=keep)
        self.features: deque[torch.Tensor] = deque(maxlen=keep)
        self.obs: deque[Observation] = deque(maxlen=keep)
        self.steps: deque[np.ndarray] = deque(maxlen=keep)
        self.texture: deque[float] = deque(maxlen=MAX_WINDOWS)
        self.motion: float | None = None
        self.spoofed = False
        self.looped = False  # see LivenessMonitor.mark_looped
        self.verdicts: list[LivenessVerdict] = []

    def add(self, t: float, feature: torch.Tensor, obs: Observation, step: np.ndarray) -> None:
        self.t.append(t)
        self.features.append(feature)
        self.obs.append(obs)
        self.steps.append(step)
