"""The per-track liveness monitor: rolling clips, one per tracked face, turned into
verdicts (see :mod:`accessctl.liveness`)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import torch

from accessctl.liveness.features import (
    Observation,
    cues,
    history_before,
    partner,
    window_before,
)
from accessctl.liveness.model import STEP_INPUTS, step_inputs, texture_logit
from accessctl.liveness.motion import step_cues
from accessctl.liveness.saved import LivenessModel
from accessctl.liveness.verdict import (
    CNN_EVERY_S,
    MAX_WINDOWS,
    MIN_HISTORY,
    MIN_WINDOWS,
    LivenessState,
    LivenessVerdict,
)

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

    def __init__(
        self,
        model: LivenessModel,
        *,
        threshold: float | None = None,
        keep_scores: bool = False,
        step_fn: StepFn = dense_cues,
    ) -> None:
        self.model = model
        # the texture score a face must reach: the site's, where it set one, else the model's
        self.threshold = model.threshold if threshold is None else threshold
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
            return LivenessVerdict(
                LivenessState.UNSURE if waited else LivenessState.CHECKING, None, len(buf.texture), buf.motion, t
            )
        p = float(np.mean(list(buf.texture)[-MAX_WINDOWS:])) if buf.texture else 0.0
        if buf.spoofed or p < self.threshold:
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
