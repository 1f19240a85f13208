"""Training the liveness model on real clips and attacks synthesised from live ones.

Subjects never straddle the split: every clip of a validation subject (live or
attack) is kept out of training, so the validation figures speak for people the model
never saw. The decision threshold is chosen on the validation clips (the equal-error
point of their clip scores) and shipped with the weights.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .. import config
from ..errors import AccessctlError
from . import LivenessModel, model_features, score_frames
from .clips import ClipFrames, ClipSpec, extract, read_clip_list
from .features import STEP_S, WINDOW, cues, window_before, window_ends
from .model import LivenessNet
from .synth import augment_live, synth_print, synth_replay



@dataclass
class LivenessTrainConfig:
    clips: list[str]
    out: str
    steps: int = 1500
    batch: int = 16
    lr: float = 2e-3
    val_subjects: list[str] = field(default_factory=list)  # empty: the last ~1/3 of subjects, by seed
    seed: int = 0
    synthetic: float = 0.5  # share of attack samples synthesised from live clips


@dataclass
class Clip:
    spec: ClipSpec
    subject: str
    frames: ClipFrames


def subject_of(spec: ClipSpec) -> str:
    """Who is in a clip: NUAA-style names start with the subject number; a video's
    subject is its folder (a live/replay pair shares one)."""
    m = re.match(r"(\d{3,})_", spec.path.name)
    if m:
        return m.group(1)
    return spec.path.parent.name if spec.path.is_file() else spec.path.name


def load_clips(lists: list[str], progress: Callable[[str], None] | None = None) -> list[Clip]:
    out = []
    for path in lists:
        for spec in read_clip_list(path):
            if progress:
                progress(f"reading {spec.path}")
            frames = extract(spec.path)
            out.append(Clip(spec, subject_of(spec), frames))
    return out


def split_subjects(clips: list[Clip], val: list[str], seed: int) -> tuple[list[Clip], list[Clip]]:
    subjects = sorted({c.subject for c in clips})
    if not val:
        order = np.random.default_rng(seed).permutation(len(subjects))
        val = [subjects[i] for i in order[: max(1, len(subjects) // 3)]]
    unknown = set(val) - set(subjects)
    if unknown:
        raise AccessctlError(f"validation subjects not in the clips: {', '.join(sorted(unknown))}")
    return [c for c in clips if c.subject not in val], [c for c in clips if c.subject in val]


class Sampler:
    """Training windows: half live, half attacks (real ones and synthesised ones)."""

    def __init__(self, clips: list[Clip], synthetic: float, rng: np.random.Generator) -> None:
        self.rng = rng
        self.synthetic = synthetic
        usable = [(c, window_ends(c.frames.t)) for c in clips]
        usable = [(c, s) for c, s in usable if s]
        self.live = [(c, s) for c, s in usable if c.spec.live]
        self.attacks = [(c, s) for c, s in usable if not c.spec.live]
        if not self.live:
            raise AccessctlError("training needs live clips with a face in at least 8 frames")

    def _window(self, pool: list[tuple[Clip, list[int]]]) -> tuple[np.ndarray, np.ndarray]:
        clip, ends = pool[self.rng.integers(len(pool))]
        idx = window_before(clip.frames.t, ends[self.rng.integers(len(ends))])
        return clip.frames.crops[idx], clip.frames.points[idx]

    def _background(self) -> np.ndarray:
        crops, _ = self._window(self.live)
        return crops[0][:, ::-1]

    def sample(self) -> tuple[np.ndarray, np.ndarray, float]:
        if self.rng.random() < 0.5:
            crops, pts = self._window(self.live)
            crops, pts = augment_live(crops, pts, self.rng)
            return crops, cues(pts), 1.0
        if self.attacks and self.rng.random() >= self.synthetic:
            crops, pts = self._window(self.attacks)
            crops, pts = augment_live(crops, pts, self.rng)  # camera variation, nothing more
            return crops, cues(pts), 0.0
        crops, pts = self._window(self.live)
        if self.rng.random() < 0.5:
            i = self.rng.integers(len(crops))
            crops, pts = synth_print(crops[i], pts[i], len(crops), self.rng, self._background())
        else:
            crops, pts = synth_replay(crops, pts, self.rng, self._background())
        return crops, cues(pts), 0.0

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        items = [self.sample() for _ in range(n)]
        crops = torch.from_numpy(np.stack([c for c, _, _ in items]))
        cue = torch.from_numpy(np.stack([q for _, q, _ in items]))
        y = torch.tensor([label for _, _, label in items])
        return crops, cue, y


def train(cfg: LivenessTrainConfig, progress: Callable[[int, int, float], None] | None = None,
          log: Callable[[str], None] | None = None) -> dict:
    """Train, validate on held-out subjects, write ``liveness.pt`` and ``liveness.json`` to ``out``."""
    from ..evaluate import pad_metrics, threshold_at_eer

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    clips = load_clips(cfg.clips, log)
    train_clips, val_clips = split_subjects(clips, cfg.val_subjects, cfg.seed)
    if log:
        log(f"train: {len(train_clips)} clips of {len({c.subject for c in train_clips})} subjects; "
            f"validation: {len(val_clips)} clips of subjects {sorted({c.subject for c in val_clips})}")
    sampler = Sampler(train_clips, cfg.synthetic, rng)
    model = LivenessNet()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    t0 = time.perf_counter()
    losses: list[float] = []
    for step in range(cfg.steps):
        model.train()
        crops, cue, y = sampler.batch(cfg.batch)
        clip_logit, frame_logit = model(crops, cue)
        loss = F.binary_cross_entropy_with_logits(clip_logit, y) + 0.3 * F.binary_cross_entropy_with_logits(
            frame_logit, y[:, None].expand_as(frame_logit))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress:
            progress(step + 1, cfg.steps, float(np.mean(losses[-50:])))
    seconds = time.perf_counter() - t0

    report: dict = {"steps": cfg.steps, "train_seconds": round(seconds, 1),
                    "train_subjects": sorted({c.subject for c in train_clips})}
    threshold = 0.5
    if val_clips:
        model.eval()
        judge = LivenessModel(model, 0.5, WINDOW, STEP_S, Path(cfg.out), model_features(model))
        scores = [score_frames(judge, c.frames) for c in val_clips]
        live = np.array([c.spec.live for c in val_clips])
        attacks = [c.spec.attack for c in val_clips]
        threshold = threshold_at_eer(scores, live)
        report["validation"] = pad_metrics(scores, live, attacks, threshold)
        report["validation_subjects"] = sorted({c.subject for c in val_clips})
    save(model, Path(cfg.out), threshold, {"config": asdict(cfg), "report": report})
    return {"threshold": threshold, **report}


def save(model: LivenessNet, out: Path, threshold: float, extra: dict) -> None:
    config.private_dir(out)
    config.write_private(out / "liveness.pt", lambda tmp: torch.save(model.state_dict(), tmp))
    meta = {"threshold": threshold, "window": WINDOW, "step_s": STEP_S, **extra}
    config.write_private(out / "liveness.json", json.dumps(meta, indent=1))
