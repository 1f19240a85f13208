"""Training the motion head on evidence of life, and judging it on sources and attack
families it never saw.

The head (:class:`.model.MotionHead`) learns from three kinds of clip, all read
through the kiosk's own face analysis and monitor:

- **live**: the real live clips, and each re-delivered as another camera or link would
  (noise, exposure, re-compression, duplicated and dropped frames: :func:`.synth.relive`),
  so that none of those is evidence either way;
- **real attacks**: the prints and replays of the clip lists;
- **synthetic attacks**: every clip's frames animated by each family of
  :mod:`.synth` (a still, jittered, wobbled, turned, bent, relit, re-encoded picture,
  a few frames swapped or a video paused, a print held in a still room), all attacks.

Judged two ways, both on held-out data only: **leave one source out** (a source is a
person, a room, a camera: its real clips and everything made from them are held out
together) and **leave one family out** (trained without a family, tested on every clip
of it). The threshold is the lowest that keeps every synthetic
family's held-out APCER within ``max_apcer``; the baseline is the model shipped before
(the CNNs' texture score and the stillness and planar rules), scored the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accessctl.errors import AccessctlError
from accessctl.evaluation.clips import (
    ClipFrames,
    ClipSpec,
    door_score,
    extract,
    grant_curve,
    presentations,
    read_clip_list,
    time_to_grant,
)
from accessctl.evaluation.pad import pad_metrics
from accessctl.liveness.features import N_CUES, history_before, homography_residual, window_before
from accessctl.liveness.model import N_CNNS, STEP_INPUTS, MotionHead
from accessctl.liveness.monitor import LivenessMonitor
from accessctl.liveness.saved import LivenessModel, load_liveness, make_model, save_model
from accessctl.liveness.verdict import CNN_EVERY_S, DECIDE_S, MAX_WINDOWS, MIN_HISTORY, MIN_WINDOWS, PRESENTATION_S
from accessctl.training.synth import FAMILIES, synthetic

LIVE = "live"
PICTURE = "picture"  # a clip list row that is a still photo: animated by every family, never a clip itself


@dataclass
class MotionConfig:
    clips: list[str]
    out: str
    cnn_from: str = ""  # a model folder whose CNN weights and texture threshold are kept ("": the shipped one)
    families: list[str] = field(default_factory=lambda: list(FAMILIES))
    seeds: int = 1  # synthetic clips per source clip and family
    live_variants: int = 2  # re-delivered copies of each live clip
    frames: int = 45  # frames per synthetic clip
    hidden: int = 16
    steps: int = 2000
    batch: int = 128
    lr: float = 3e-3
    weight_decay: float = 1e-2
    seed: int = 0
    use_cnn: bool = False  # whether the head reads the CNNs' per-frame logits (measured: see the model card)
    use_landmarks: bool = True  # whether it reads the landmark cues (eyes, landmark motion) beside the dense ones
    max_apcer: float = 0.01  # the threshold keeps every held-out synthetic family's APCER within this
    cv: bool = True  # the cross-validated reports (the threshold needs them)
    workers: int = 1  # processes for reading the clips and for the folds


@dataclass
class Item:
    """One clip, with the steps the monitor kept of it as one track."""

    source: str
    live: bool
    kind: str  # live, or the attack: a real type (print, replay) or a synthetic family
    original: bool  # a clip as recorded (not made here)
    path: str
    frames: ClipFrames = field(repr=False)
    t: np.ndarray = field(repr=False)
    steps: np.ndarray = field(repr=False)  # (T, STEP_INPUTS)
    starts: np.ndarray = field(repr=False)  # per step, the first step of its history

    @property
    def family(self) -> str:
        return "" if self.original or self.live else self.kind


def track_steps(model: LivenessModel, frames: ClipFrames) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The monitor's steps of a whole clip, each of the subject's tracks as the kiosk
    sees it: times, head inputs, and per step the first step of its history."""
    monitor = LivenessMonitor(model, keep_scores=True, step_fn=frames.dense)
    feats = torch.from_numpy(frames.features)
    for i, obs in enumerate(frames.observations):
        monitor.update(int(frames.tracks[i]), float(frames.t[i]), obs, feats[i])
    times, steps, starts = [np.zeros(0)], [np.zeros((0, STEP_INPUTS), np.float32)], [np.zeros(0, np.int64)]
    offset = 0
    for track in dict.fromkeys(frames.tracks.tolist()):
        t, s = monitor.steps(track)
        times.append(t)
        steps.append(s)
        starts.append(
            np.array([history_before(t, e, model.history, model.step_s)[0] for e in range(len(t))], np.int64) + offset
        )
        offset += len(t)
    return np.concatenate(times), np.concatenate(steps), np.concatenate(starts)


def make_item(
    model: LivenessModel, source: str, live: bool, kind: str, original: bool, path: str, frames: ClipFrames
) -> Item:
    t, steps, starts = track_steps(model, frames)
    return Item(source, live, kind, original, path, frames, t, steps, starts)


def load_items(cfg: MotionConfig, model: LivenessModel, log: Callable[[str], None] | None = None) -> list[Item]:
    """The real clips, their live variants and their synthetic attacks (each clip list
    row in a worker of its own when ``cfg.workers`` > 1)."""
    specs = [s for path in cfg.clips for s in read_clip_list(path)]
    items: list[Item] = []
    with _Workers(cfg.workers, specs=specs, cfg=cfg, model=model) as work:
        for k, got in enumerate(work.map(_items_of, range(len(specs)))):
            items += got
            if log:
                log(f"[{k + 1}/{len(specs)}] {specs[k].path}")
    return items


def _items_of(k: int) -> list[Item]:
    spec, cfg, model = _SHARED["specs"][k], _SHARED["cfg"], _SHARED["model"]
    items = []
    if spec.attack != PICTURE:  # a still picture is material for the synthetic attacks only
        real = extract(spec.path)
        if len(real):
            items.append(
                make_item(model, spec.source, spec.live, LIVE if spec.live else spec.attack, True, str(spec.path), real)
            )
    for family, s, seed in made_from(spec, cfg):
        clip = synthetic(spec.path, family, seed, cfg.frames)
        if clip is not None:
            items.append(make_item(model, spec.source, family == LIVE, family, False, f"{spec.path}#{family}{s}", clip))
    return items


_SHARED: dict = {}  # what forked workers read instead of receiving it pickled (the clips are large)


class _Workers:
    """``map`` in forked processes that share ``_SHARED`` (one thread each), or in
    this one when there is one worker."""

    def __init__(self, workers: int, **shared: object) -> None:
        self.workers, self.shared = workers, shared
        self.pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Workers:
        _SHARED.clear()
        _SHARED.update(self.shared)
        if self.workers > 1:
            self.pool = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=torch.set_num_threads,
                initargs=(1,),
            )
        return self

    def map(self, fn: Callable, args: Iterable) -> Iterator:
        return self.pool.map(fn, args) if self.pool else map(fn, args)

    def __exit__(self, *exc: object) -> None:
        if self.pool:
            self.pool.shutdown(cancel_futures=True)
        _SHARED.clear()


def made_from(spec: ClipSpec, cfg: MotionConfig) -> list[tuple[str, int, int]]:
    """The clips made from one real clip: (family or "live", copy number, seed)."""
    made = [(LIVE, s) for s in range(cfg.live_variants)] if spec.live else []
    made += [(f, s) for f in cfg.families for s in range(cfg.seeds)]
    # seeded by what the clip is, not where it lies: the same clips wherever the data is
    key = f"{spec.source}|{spec.path.name}"
    return [(f, s, int.from_bytes(hashlib.sha1(f"{key}|{f}|{s}".encode()).digest()[:4], "little")) for f, s in made]


class Sampler:
    """Training windows: half live, half attack; an attack kind (each real attack type
    and each synthetic family alike), a source, a clip, then one of its steps with at
    least MIN_HISTORY steps of history."""

    def __init__(self, items: list[Item], rng: np.random.Generator) -> None:
        self.items, self.rng = items, rng
        self.pools: dict[bool, dict[str, dict[str, list[int]]]] = {True: {}, False: {}}
        self.ends: dict[int, np.ndarray] = {}
        for k, it in enumerate(items):
            ends = np.flatnonzero(np.arange(len(it.t)) - it.starts + 1 >= MIN_HISTORY)
            if len(ends):
                self.ends[k] = ends
                self.pools[it.live].setdefault(it.kind, {}).setdefault(it.source, []).append(k)
        if not self.pools[True] or not self.pools[False]:
            raise AccessctlError("training the motion head needs live and attack clips with a face")

    def draw(self, n: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
        picks, labels = [], []
        for i in range(n):
            live = i % 2 == 0
            kinds = self.pools[live]
            sources = kinds[sorted(kinds)[self.rng.integers(len(kinds))]]
            clips = sources[sorted(sources)[self.rng.integers(len(sources))]]
            k = clips[self.rng.integers(len(clips))]
            picks.append((k, int(self.ends[k][self.rng.integers(len(self.ends[k]))])))
            labels.append(float(live))
        return picks, torch.tensor(labels)


def batch_of(items: list[Item], picks: list[tuple[int, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """The histories of the picked steps, padded at the end to the longest, and their lengths."""
    seqs = [items[k].steps[items[k].starts[e] : e + 1] for k, e in picks]
    x = np.zeros((len(seqs), max(len(q) for q in seqs), STEP_INPUTS), np.float32)
    for b, q in enumerate(seqs):
        x[b, : len(q)] = q
    return torch.from_numpy(x), torch.tensor([len(q) for q in seqs])


def fit(items: list[Item], cfg: MotionConfig, seed: int) -> MotionHead:
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = MotionHead(cfg.hidden)
    every = np.concatenate([it.steps for it in items])
    moved = every[every[:, 1 + N_CNNS] > 0]  # steps with one before them: where the motion cues exist
    with torch.no_grad():
        head.mean.copy_(torch.from_numpy(moved.mean(0)))
        head.scale.copy_(torch.from_numpy(np.maximum(moved.std(0), 1e-3)))
        if not cfg.use_cnn:
            head.use[: 1 + N_CNNS] = 0.0
        if not cfg.use_landmarks:
            head.use[2 + N_CNNS : 2 + N_CNNS + N_CUES] = 0.0
    sampler = Sampler(items, rng)
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    head.train()
    for _ in range(cfg.steps):
        picks, y = sampler.draw(cfg.batch)
        x, lengths = batch_of(items, picks)
        loss = F.binary_cross_entropy_with_logits(head(x, lengths), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return head.eval()


# -- judging -----------------------------------------------------------------------------

MAX_MEDIAN_DECISION_S = 1.0  # a live face's median time to a grant may not exceed this
EVIDENCE_CHOICES = (1.0, 1.25, 1.5, 1.75)  # how long the door may look for evidence of life, seconds
LONGEST_LOOK = max(EVIDENCE_CHOICES)  # presentations are scored this long, and cut shorter afterwards


@dataclass
class Scored:
    """One clip's presentations as the door saw them, for any motion threshold and any
    time the door looks for evidence (up to :data:`LONGEST_LOOK`)."""

    source: str
    live: bool
    kind: str
    family: str  # the synthetic attack family; "" for a live or a real attack clip
    original: bool  # a clip as recorded
    path: str
    judged: list[bool]  # whether each presentation reached a verdict at all
    curves: list[list[tuple[float, float]]]  # the door's grant curves (texture and motion: see grant_curve)
    motion_curves: list[list[tuple[float, float]]]  # the same with the texture taken as live: motion alone

    def scores(self, evidence_s: float) -> list[float | None]:
        """The door's score of each presentation when it looks ``evidence_s`` for evidence."""
        return _best(self.curves, self.judged, evidence_s)

    def motion(self, evidence_s: float) -> list[float | None]:
        return _best(self.motion_curves, self.judged, evidence_s)

    def times(self, threshold: float, evidence_s: float) -> list[float | None]:
        """Seconds from the face's first frame to a grant at ``threshold``, each presentation."""
        return [time_to_grant(_cut(c, evidence_s), threshold) for c in self.curves]


def _cut(curve: list[tuple[float, float]], evidence_s: float) -> list[tuple[float, float]]:
    return [(t, p) for t, p in curve if t - DECIDE_S <= evidence_s + 1e-9]


def _best(curves: list[list[tuple[float, float]]], judged: list[bool], evidence_s: float) -> list[float | None]:
    return [
        max((p for _, p in _cut(c, evidence_s)), default=0.0) if j else None
        for c, j in zip(curves, judged, strict=True)
    ]


def score(model: LivenessModel, items: list[Item]) -> list[Scored]:
    door = dataclasses.replace(model, evidence_s=LONGEST_LOOK)
    motion_only = dataclasses.replace(door, threshold=1e-6)
    out = []
    for it in items:
        runs = []
        for m in (door, motion_only):
            shown = presentations(m, it.frames, it.frames.features)
            judged = [door_score(p.verdicts, p.first_t, m.evidence_s) is not None for p in shown] or [False]
            runs.append((judged, [grant_curve(p.verdicts, p.first_t, m.evidence_s) for p in shown] or [[]]))
        (judged, curves), (_, motion) = runs
        if len(judged) > 1 and not judged[-1]:
            judged, curves, motion = judged[:-1], curves[:-1], motion[:-1]
        out.append(Scored(it.source, it.live, it.kind, it.family, it.original, it.path, judged, curves, motion))
    return out


# -- the rules of the model shipped before the motion head (its baseline) ---------------

STILL_MOTION = 0.004  # landmark motion per frame pair, in inter-ocular distances: below it, nothing moved


def _pair_motion(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each frame pair of a window: its points before and after, how far they moved
    (RMS, in inter-ocular distances of the later frame), and that distance."""
    p = np.asarray(points, np.float64)
    iod = np.linalg.norm(p[1:, 0, :2] - p[1:, 9, :2], axis=-1) + 1e-9
    src, dst = p[:-1, :, :2], p[1:, :, :2]
    return src, dst, np.sqrt(((dst - src) ** 2).sum(axis=2).mean(axis=1)) / iod, iod


def landmark_motion(points: np.ndarray) -> float:
    """The largest frame-to-frame landmark motion in a window, in inter-ocular
    distances (RMS over the points). A live face is never perfectly still for half a
    second: breathing, blinks and sway move it; a frozen frame gives exactly 0, and a
    photo or a paused screen held still gives only the detector's jitter."""
    if len(points) < 2:
        return 0.0
    return float(_pair_motion(points)[2].max())


def is_still(points: np.ndarray) -> bool:
    return landmark_motion(points) < STILL_MOTION


PLANAR_MIN_MOTION = 0.02  # frame pairs moving less than this (inter-ocular distances) say nothing of shape
PLANAR_RATIO = 0.07  # departure from a homography per unit of motion below which the face moved as a plane


def planar_ratio(points: np.ndarray) -> float | None:
    """How far a window's landmark motion departs from a plane's, per unit of motion:
    the median over frame pairs that moved enough of (homography residual / motion).
    A head that moves shows parallax (nose against cheeks, the far eye); a photo or
    a screen, however it is turned or tilted, moves as a plane and scores near 0.
    None when too little moved to tell."""
    if len(points) < 2:
        return None
    src, dst, moved, iod = _pair_motion(points)
    keep = moved >= PLANAR_MIN_MOTION
    if keep.sum() < max(2, len(moved) // 2):
        return None
    residual = homography_residual(src[keep], dst[keep]) / iod[keep]
    return float(np.median(residual / moved[keep]))


def legacy_scores(frames: ClipFrames) -> list[tuple[float, bool] | None]:
    """The model shipped before the motion head, on a clip's presentations: the CNNs'
    texture score (the lowest verdict in the first DECIDE_S after the first) and
    whether its stillness or planar rule fired then (either refused the face). Kept
    here only to report it beside the new one, and to measure whether its rules would
    still add anything."""
    if len(frames) == 0:
        return [None]
    out: list[tuple[float, bool] | None] = []
    t, feats = frames.t, frames.features
    start, last = float(t[0]), -1e9
    keep: list[int] = []

    def judge(idx: list[int]) -> tuple[float, bool] | None:
        times = t[idx]
        verdicts: list[tuple[float, float, bool]] = []
        tex: list[float] = []
        still: list[bool] = []
        planar: list[float] = []
        for e in range(len(idx)):
            w = window_before(times, e)
            if w is None:
                continue
            sel = [idx[i] for i in w]
            tex.append(float(1 / (1 + np.exp(-feats[sel, 0].mean()))))
            still.append(is_still(frames.points[sel]))
            r = planar_ratio(frames.points[sel])
            if r is not None:
                planar.append(r)
            if len(tex) >= MIN_WINDOWS:
                flagged = all(still[-3:]) or (len(planar) >= MIN_WINDOWS and float(np.median(planar)) < PLANAR_RATIO)
                verdicts.append((float(times[e]), float(np.mean(tex[-MAX_WINDOWS:])), flagged))
        if not verdicts:
            return None
        first = [v for v in verdicts if v[0] - verdicts[0][0] <= DECIDE_S]
        return min(v[1] for v in first), any(v[2] for v in first)

    for i in range(len(t)):
        if t[i] - start >= PRESENTATION_S:
            out.append(judge(keep))
            keep, start = [], float(t[i])
        if not keep or t[i] - last >= CNN_EVERY_S:
            keep.append(i)
            last = float(t[i])
    tail = judge(keep)
    if tail is not None or not out:
        out.append(tail)
    return out


def legacy_score(p: tuple[float, bool] | None) -> float | None:
    """The door score of the model shipped before (a flagged face scores 0)."""
    return None if p is None else (0.0 if p[1] else p[0])


def threshold_for(scored: list[Scored], max_apcer: float, evidence_s: float) -> float:
    """The lowest motion threshold at which every synthetic family's held-out attacks
    are accepted at most ``max_apcer`` of the time on motion alone (as if the CNNs
    took every picture for a live face: a print or a screen too good for them); a
    presentation that never reached a verdict is refused at any threshold."""
    thr = 0.0
    for fam in sorted({s.family for s in scored if s.family}):
        att = np.sort([x for s in scored if s.family == fam for x in s.motion(evidence_s) if x is not None])
        n = sum(len(s.judged) for s in scored if s.family == fam)
        allowed = int(np.floor(max_apcer * n))
        if len(att) > allowed:
            thr = max(thr, float(np.nextafter(att[len(att) - allowed - 1], 1.0)))
    return float(np.clip(thr, 1e-4, 1 - 1e-4))


def figures(
    scored: list[Scored],
    threshold: float,
    evidence_s: float,
    legacy: dict[str, list[tuple[float, bool] | None]] | None = None,
    legacy_threshold: float = 0.5,
) -> dict:
    """Per family, per real attack type and per live source, at ``threshold``, the
    door looking ``evidence_s`` for evidence of life."""

    def metrics(rows: list[Scored], scores_of: Callable[[Scored], list[float | None]], thr: float) -> dict:
        scores = [x for r in rows for x in scores_of(r)]
        live = [r.live for r in rows for _ in scores_of(r)]
        kinds = [r.family or r.kind for r in rows for _ in scores_of(r)]
        m = pad_metrics(scores, live, kinds, thr)
        m["presentations"] = len(scores)
        return m

    out: dict = {"threshold": threshold, "evidence_s": evidence_s}
    real = [s for s in scored if s.original]
    out["real"] = metrics(real, lambda r: r.scores(evidence_s), threshold)
    out["synthetic"] = {}
    for fam in sorted({s.family for s in scored if s.family}):
        rows = [s for s in scored if s.family == fam]
        n = sum(len(r.judged) for r in rows)
        ok = sum(1 for r in rows for x in r.scores(evidence_s) if x is not None and x >= threshold)
        alone = sum(1 for r in rows for x in r.motion(evidence_s) if x is not None and x >= threshold)
        out["synthetic"][fam] = {"presentations": n, "apcer": ok / max(n, 1), "apcer_motion_alone": alone / max(n, 1)}
    live_sources: dict[str, dict] = {}
    for src in sorted({s.source for s in real if s.live}):
        rows = [s for s in real if s.live and s.source == src]
        sc = [x for r in rows for x in r.scores(evidence_s)]
        refused = sum(1 for x in sc if x is None or x < threshold)
        times = [x for r in rows for x in r.times(threshold, evidence_s) if x is not None]
        live_sources[src] = {
            "presentations": len(sc),
            "bpcer": refused / max(len(sc), 1),
            "decision_s_median": float(np.median(times)) if times else None,
        }
    out["live_sources"] = live_sources
    times = [x for s in real if s.live for x in s.times(threshold, evidence_s) if x is not None]
    out["decision_s"] = {
        "median": float(np.median(times)) if times else None,
        "worst": float(np.max(times)) if times else None,
        "n": len(times),
    }
    if legacy is not None:

        def legacy_of(r: Scored) -> list[float | None]:
            return [legacy_score(p) for p in legacy[r.path]]

        out["legacy"] = {"real": metrics(real, legacy_of, legacy_threshold), "synthetic": {}}
        for fam in sorted({s.family for s in scored if s.family}):
            sc = [x for r in scored if r.family == fam for x in legacy_of(r)]
            out["legacy"]["synthetic"][fam] = {
                "presentations": len(sc),
                "apcer": sum(1 for x in sc if x is not None and x >= legacy_threshold) / max(len(sc), 1),
            }
        # would the old stillness and planar rules, on top of the new model, refuse
        # an attack it accepts (they add), or a live face it accepts (they cost)?
        adds = costs = 0
        for r in scored:
            # strict=False: the legacy run keeps a last, unjudged presentation that score() drops
            for new, old in zip(r.scores(evidence_s), legacy[r.path], strict=False):
                if new is not None and new >= threshold and old is not None and old[1]:
                    costs += r.live
                    adds += not r.live
        out["rules"] = {"attacks_they_would_add": adds, "live_they_would_refuse": costs}
    return out


def cross_validate(
    items: list[Item], model: LivenessModel, cfg: MotionConfig, log: Callable[[str], None] | None = None
) -> dict[str, list[Scored]]:
    """Held-out scores: ``source`` (each source out in turn, with everything made from
    it) and ``family`` (each synthetic family out in turn: trained on the others, all
    sources, and judged on every clip of it). Folds run in ``cfg.workers`` processes."""
    sources = sorted({it.source for it in items})
    fams = sorted({it.kind for it in items if not it.original and not it.live})
    folds = [("source", s, cfg.seed + i) for i, s in enumerate(sources)]
    folds += [("family", f, cfg.seed + 1000 + j) for j, f in enumerate(fams)]
    out: dict[str, list[Scored]] = {"source": [], "family": []}
    with _Workers(cfg.workers, items=items, cfg=cfg, model=model) as work:
        for k, ((by, held_out, _), scored) in enumerate(zip(folds, work.map(_fold, folds), strict=True)):
            out[by] += scored
            if log:
                log(f"fold {k + 1}/{len(folds)}: held out {by} {held_out}")
    return out


def _fold(fold: tuple[str, str, int]) -> list[Scored]:
    by, held_out, seed = fold
    items, cfg, model = _SHARED["items"], _SHARED["cfg"], _SHARED["model"]
    if by == "source":
        train = [it for it in items if it.source != held_out]
        held = [it for it in items if it.source == held_out and (it.original or not it.live)]
    else:
        train = [it for it in items if it.kind != held_out]
        held = [it for it in items if it.kind == held_out and not it.original]
    return score(_with(model, fit(train, cfg, seed)), held)


def _with(
    model: LivenessModel, head: MotionHead, threshold: float = 0.5, evidence_s: float | None = None
) -> LivenessModel:
    return make_model(
        head,
        model.threshold,
        threshold,
        model.source,
        (model.source / "cnn_tuned.pt", model.cnn_id) if model.cnn_id != "pretrained" else None,
        model.evidence_s if evidence_s is None else evidence_s,
    )


def train(cfg: MotionConfig, log: Callable[[str], None] | None = None, extra: dict | None = None) -> dict:
    """Cross-validate (by source and by family), then train the head on everything and
    write the model (the CNN weights and texture threshold of ``cnn_from``, the head and
    its cross-validated threshold) to ``out``."""
    unknown = set(cfg.families) - set(FAMILIES)
    if unknown:
        raise AccessctlError(f"unknown attack families: {', '.join(sorted(unknown))} (known: {', '.join(FAMILIES)})")
    if not cfg.cv:
        raise AccessctlError("the motion threshold is chosen on held-out scores: keep the cross-validation on")
    base = load_liveness(cfg.cnn_from or None)
    t0 = time.perf_counter()
    items = load_items(cfg, base, log)
    report: dict = {
        "clips": sum(it.original for it in items),
        "made": sum(not it.original for it in items),
        "sources": len({it.source for it in items}),
        "steps": int(sum(len(it.t) for it in items)),
    }
    cv = cross_validate(items, base, cfg, log)
    # how long the door looks for evidence of life, decided here: for each choice the
    # threshold that keeps every held-out family within max_apcer, and what that costs
    # live people held out by source (unsure, so asked to turn their head)
    looks = {}
    for look in EVIDENCE_CHOICES:
        thr = max(threshold_for(cv["source"], cfg.max_apcer, look), threshold_for(cv["family"], cfg.max_apcer, look))
        f = figures(cv["source"], thr, look)
        looks[look] = {"threshold": thr, "live_unsure": f["real"]["bpcer"], "decision_s": f["decision_s"]}
    fast = [k for k, v in looks.items() if (v["decision_s"]["median"] or 9.9) <= MAX_MEDIAN_DECISION_S]
    evidence_s = min(fast or list(looks), key=lambda k: (looks[k]["live_unsure"], k))
    thr_source = threshold_for(cv["source"], cfg.max_apcer, evidence_s)
    thr_family = threshold_for(cv["family"], cfg.max_apcer, evidence_s)
    threshold = max(thr_source, thr_family)
    legacy = {it.path: legacy_scores(it.frames) for it in items}
    report["cv"] = {
        "threshold_by_source": thr_source,
        "threshold_by_family": thr_family,
        "evidence_s": evidence_s,
        "looks": {str(k): v for k, v in looks.items()},
        "source": figures(cv["source"], threshold, evidence_s, legacy, base.threshold),
        "family": figures(cv["family"], threshold, evidence_s, legacy, base.threshold),
    }
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    # every held-out presentation, so that figures at another threshold need no retraining
    (out / "cv_scores.json").write_text(json.dumps({k: [asdict(s) for s in v] for k, v in cv.items()}))
    head = fit(items, cfg, cfg.seed)
    final = _with(base, head, threshold, evidence_s)
    report["train_seconds"] = round(time.perf_counter() - t0, 1)
    tuned = None
    if base.cnn_id != "pretrained":
        tuned = torch.load(base.source / "cnn_tuned.pt", map_location="cpu", weights_only=True)
    save_model(final, Path(cfg.out), {**(extra or {}), "motion_config": asdict(cfg), "motion_report": report}, tuned)
    return {"threshold": threshold, "evidence_s": evidence_s, **report}
