"""Training the liveness head on real clips, and judging it across capture sources.

The per-frame CNNs are the pretrained MiniFASNets, frozen: 9 NUAA subjects and a few
dozen webcam sources are far too few to retrain texture features that were learnt on
a large attack corpus, and too few not to learn the room instead. What is trained is
the sequence head (:class:`.model.SequenceHead`), a correction on top of the CNNs'
own score, on the CNN features cached per clip by :func:`.clips.extract`.

A source is one capture set (a NUAA subject, a replay pair, one ``liveness_web``
repository): one person or household, one room, one camera. Every split here is by
source, never by clip or frame. :func:`cross_validate` holds out each source in turn,
trains on the rest, and scores the held-out clips through the kiosk's own
:class:`.LivenessMonitor` and decision rule, for the trained head and for the
pretrained CNNs alone; the threshold is chosen on those held-out scores.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accessctl.errors import AccessctlError
from accessctl.evaluation.clips import ClipFrames, ClipSpec, extract, presentation_scores, read_clip_list
from accessctl.liveness import (
    LivenessModel,
    model_from_head,
    save_model,
)
from accessctl.liveness.features import STEP_S, WINDOW, cues, window_before, window_ends
from accessctl.liveness.model import SequenceHead

MAX_BPCER = 0.02  # the shipped threshold refuses at most 1 live presentation in 50


@dataclass
class LivenessTrainConfig:
    clips: list[str]
    out: str
    steps: int = 300
    batch: int = 64
    lr: float = 3e-3
    weight_decay: float = 0.1
    seed: int = 0
    # The recipe chosen by the cross-source report (model card): a small GRU on the CNNs'
    # live logits and the landmark cues; the 256-D embeddings let it learn the rooms.
    hidden: int = 8  # the GRU's units
    proj: int = 0  # CNN embedding dimensions the GRU sees (0: only the CNNs' logits and the cues)
    dropout: float = 0.2
    cv_by: str = ""  # "source": leave-one-source-out report before the final training
    val_sources: list[str] = field(default_factory=list)  # held out of the final training


@dataclass
class Clip:
    spec: ClipSpec
    frames: ClipFrames

    @property
    def source(self) -> str:
        return self.spec.source

    @functools.cached_property
    def windows(self) -> tuple[np.ndarray, np.ndarray] | None:
        """Every window's CNN features (W, WINDOW, FEATURE_DIM) and cues, gathered once
        (cross-validation trains 36 times on the same clips)."""
        idx = [window_before(self.frames.t, e) for e in window_ends(self.frames.t)]
        if not idx:
            return None
        return (np.stack([self.frames.features[i] for i in idx]).astype(np.float32),
                np.stack([cues(self.frames.points[i]) for i in idx]))


def load_clips(lists: list[str], progress: Callable[[str], None] | None = None) -> list[Clip]:
    out = []
    for path in lists:
        for spec in read_clip_list(path):
            if progress:
                progress(f"reading {spec.path}")
            out.append(Clip(spec, extract(spec.path)))
    return out


class Sampler:
    """Training windows: half live, half attack; within each, a source first, then one
    of its clips and a window, so that a long video or a big source does not outvote
    the others."""

    def __init__(self, clips: list[Clip], rng: np.random.Generator) -> None:
        self.rng = rng
        self.pools: dict[bool, dict[str, list[tuple[np.ndarray, np.ndarray]]]] = {True: {}, False: {}}
        for c in clips:
            windows = c.windows
            if windows is not None:
                self.pools[c.spec.live].setdefault(c.source, []).append(windows)
        if not self.pools[True] or not self.pools[False]:
            raise AccessctlError("training needs live and attack clips with a face in enough frames for a window")

    def _window(self, live: bool) -> tuple[np.ndarray, np.ndarray]:
        sources = list(self.pools[live].values())
        pool = sources[self.rng.integers(len(sources))]
        feats, cue = pool[self.rng.integers(len(pool))]
        k = self.rng.integers(len(feats))
        return feats[k], cue[k]

    def batch(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        labels = [i % 2 == 0 for i in range(n)]
        items = [self._window(live) for live in labels]
        feats = torch.from_numpy(np.stack([f for f, _ in items]))
        cue = torch.from_numpy(np.stack([q for _, q in items]))
        return feats, cue, torch.tensor(labels, dtype=torch.float32)


def fit_head(clips: list[Clip], cfg: LivenessTrainConfig, seed: int) -> tuple[SequenceHead, float]:
    torch.manual_seed(seed)
    sampler = Sampler(clips, np.random.default_rng(seed))
    head = SequenceHead(cfg.hidden, cfg.proj, cfg.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(cfg.steps, 1), pct_start=0.1)
    losses = []
    for _ in range(cfg.steps):
        head.train()
        feats, cue, y = sampler.batch(cfg.batch)
        loss = F.binary_cross_entropy_with_logits(head(feats, cue), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    head.eval()
    return head, float(np.mean(losses[-50:])) if losses else float("nan")


@dataclass
class Scored:
    """The door's decision scores of one clip's presentations (see :func:`.presentation_scores`)."""

    source: str
    live: bool
    attack: str
    scores: list[float | None]


def score_clips(model: LivenessModel, clips: list[Clip]) -> list[Scored]:
    return [Scored(c.source, c.spec.live, c.spec.attack, presentation_scores(model, c.frames)) for c in clips]


def threshold_for_bpcer(scored: list[Scored], max_bpcer: float = MAX_BPCER) -> float:
    """The highest threshold that refuses at most ``max_bpcer`` of the live
    presentations (a face without a verdict counts as refused): the lowest APCER there."""
    live = np.sort([s for c in scored if c.live for s in c.scores if s is not None])
    n = sum(len(c.scores) for c in scored if c.live)
    allowed = int(np.floor(max_bpcer * n)) - (n - len(live))  # faceless ones are refused at any threshold
    if len(live) == 0 or allowed < 0:
        raise AccessctlError("too few live presentations with a face to choose a threshold")
    return float(np.clip(live[min(allowed, len(live) - 1)], 1e-6, 1 - 1e-6))


def figures(scored: list[Scored], threshold: float) -> dict:
    """ISO/IEC 30107-3 figures over presentations (see :func:`accessctl.evaluation.pad.pad_metrics`)."""
    from accessctl.evaluation.pad import pad_metrics

    scores = [s for c in scored for s in c.scores]
    live = [c.live for c in scored for _ in c.scores]
    attacks = [c.attack for c in scored for _ in c.scores]
    m = pad_metrics(scores, live, attacks, threshold)
    m["clips"] = len(scored)
    m["presentations"] = len(scores)
    return m


def per_source(scored: list[Scored], threshold: float) -> dict[str, dict]:
    out = {}
    for src in sorted({c.source for c in scored}):
        m = figures([c for c in scored if c.source == src], threshold)
        has_live = any(c.live for c in scored if c.source == src)
        has_attack = any(not c.live for c in scored if c.source == src)
        # ACER needs both kinds; a source of one kind is judged by the one error rate it has
        worst_apcer = max(m["apcer"].values()) if m["apcer"] else 0.0
        m["error"] = m["acer"] if has_live and has_attack else (m["bpcer"] if has_live else worst_apcer)
        out[src] = m
    return out


def cross_validate(clips: list[Clip], cfg: LivenessTrainConfig,
                   log: Callable[[str], None] | None = None) -> dict[str, list[Scored]]:
    """Held-out scores of every clip, each from a head trained without the clip's source:
    ``trained`` (the recipe) and ``pretrained`` (the CNNs alone, the same rule)."""
    sources = sorted({c.source for c in clips})
    baseline = model_from_head(SequenceHead(), 0.5, WINDOW, STEP_S, Path("-"))
    out: dict[str, list[Scored]] = {"pretrained": [], "trained": []}
    for i, src in enumerate(sources):
        held = [c for c in clips if c.source == src]
        head, loss = fit_head([c for c in clips if c.source != src], cfg, cfg.seed + i)
        out["trained"] += score_clips(model_from_head(head, 0.5, WINDOW, STEP_S, Path("-")), held)
        out["pretrained"] += score_clips(baseline, held)
        if log:
            log(f"fold {i + 1}/{len(sources)}: held out {src} ({len(held)} clips), training loss {loss:.3f}")
    return out


def cv_report(scored: dict[str, list[Scored]]) -> dict:
    """Each method at its own threshold for BPCER <= 2% on the held-out scores: pooled
    figures, per-source figures and the worst source."""
    report = {}
    for name, s in scored.items():
        thr = threshold_for_bpcer(s)
        sources = per_source(s, thr)
        worst = max(sources, key=lambda k: sources[k]["error"])
        report[name] = {"threshold": thr, "pooled": figures(s, thr), "sources": sources,
                        "worst_source": worst, "worst_error": sources[worst]["error"]}
    return report


def train(cfg: LivenessTrainConfig, log: Callable[[str], None] | None = None) -> dict:
    """Optionally cross-validate by source, then train the head on every clip not held
    out and write ``liveness.pt`` and ``liveness.json`` to ``out``.

    The threshold is the cross-validated one when ``cv_by`` is set (the only scores
    of this recipe on sources it never saw); else it is chosen on ``val_sources``;
    with neither, training is refused, as a threshold from training clips means nothing.
    """
    if cfg.cv_by not in ("", "source"):
        raise AccessctlError(f"--cv-by {cfg.cv_by!r}: the only split is 'source'")
    clips = load_clips(cfg.clips, log)
    sources = {c.source for c in clips}
    unknown = set(cfg.val_sources) - sources
    if unknown:
        raise AccessctlError(f"validation sources not in the clips: {', '.join(sorted(unknown))}")
    if not cfg.cv_by and not cfg.val_sources:
        raise AccessctlError("choose how the threshold is set: --cv-by source, or --val-sources A,B")
    t0 = time.perf_counter()
    report: dict = {"clips": len(clips), "sources": len(sources)}
    if cfg.cv_by:
        report["cv"] = cv_report(cross_validate(clips, cfg, log))
        threshold = report["cv"]["trained"]["threshold"]
    train_clips = [c for c in clips if c.source not in cfg.val_sources]
    head, loss = fit_head(train_clips, cfg, cfg.seed)
    if cfg.val_sources:
        val = score_clips(model_from_head(head, 0.5, WINDOW, STEP_S, Path("-")),
                          [c for c in clips if c.source in cfg.val_sources])
        if not cfg.cv_by:
            threshold = threshold_for_bpcer(val)
        report["validation"] = figures(val, threshold)
        report["validation_sources"] = sorted(cfg.val_sources)
    report["train_seconds"] = round(time.perf_counter() - t0, 1)
    report["train_sources"] = sorted({c.source for c in train_clips})
    report["final_loss"] = loss
    save_model(head, Path(cfg.out), threshold, {"config": asdict(cfg), "report": report})
    return {"threshold": threshold, **report}
