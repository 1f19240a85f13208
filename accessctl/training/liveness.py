"""Training the liveness model on real clips, and judging it across capture sources.

Two stages: the CNNs' texture score (here), then the motion head on top
(:mod:`.motion`); :func:`train` runs both.

What the texture stage trains, decided by the cross-source report (model card): the **last layers of
the pretrained MiniFASNets** (from :attr:`LivenessTrainConfig.tune_from` on), fine-tuned
on single frames with the pretrained weights as an anchor (an L2 pull towards them,
"L2-SP") and their batch-norm statistics kept, so that a few dozen sources adjust
the texture features learnt on a large attack corpus rather than replace them. The
frozen layers' outputs are computed once per frame (:func:`trunks`), so fine-tuning
costs seconds on a CPU. What ships is halfway between the pretrained and the tuned
weights (:func:`mix`), which kept the gains and gave back what full tuning cost
some live people.

A source is one capture set (a NUAA subject, a replay pair, one ``liveness_web``
repository): one person or household, one room, one camera. Every split here is by
source, never by clip or frame. :func:`cross_validate` holds out each source in turn,
trains on the rest, and scores the held-out clips' texture through the kiosk's own
:class:`.LivenessMonitor` (:func:`.texture_scores`), for the recipe and for the
pretrained CNNs alone; the texture threshold is chosen on those held-out scores.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accessctl.errors import AccessctlError
from accessctl.evaluation.clips import ClipFrames, ClipSpec, extract, read_clip_list, texture_scores
from accessctl.liveness.minifasnet import LAYERS
from accessctl.liveness.model import FrameCNN, MotionHead
from accessctl.liveness.saved import LivenessModel, load_liveness, make_model, save_model
from accessctl.liveness.weights import load_frame_cnn
from accessctl.training.motion import MotionConfig
from accessctl.training.motion import train as train_motion

MAX_BPCER = 0.02  # the shipped threshold refuses at most 1 live presentation in 50
TUNABLE = LAYERS[-3:]  # where fine-tuning may start (it always includes the embedding and the classifier)
_AFTER_LAYERS = ("linear", "bn", "prob")


@dataclass
class LivenessTrainConfig:
    clips: list[str]
    out: str
    # The CNNs' fine-tuning: the recipe chosen by the cross-source report (model card).
    tune_from: str = "conv_5"  # the first layer fine-tuned, with every one after it ("": the CNNs frozen)
    tune_steps: int = 200
    tune_lr: float = 3e-4
    tune_anchor: float = 0.01  # weight of the L2 pull of the tuned weights towards the pretrained ones
    tune_mix: float = 0.5  # the shipped weights: pretrained + tune_mix * (fine-tuned - pretrained) (1: as tuned)
    tune_exposure: int = 0  # copies of each frame under a random exposure (gain, gamma, colour cast) to tune on
    batch: int = 64  # frames per fine-tuning step
    seed: int = 0
    cv_by: str = ""  # "source": leave-one-source-out report before the final training
    val_sources: list[str] = field(default_factory=list)  # held out of the final training
    cnn_from: str = ""  # keep this model folder's CNN weights and texture threshold instead of fine-tuning


@dataclass
class Clip:
    spec: ClipSpec
    frames: ClipFrames
    trunk: list[torch.Tensor] = field(default_factory=list, repr=False)  # per CNN: its frozen layers' outputs
    exposed: list[list[torch.Tensor]] = field(default_factory=list, repr=False)  # the same, per exposure copy

    @property
    def source(self) -> str:
        return self.spec.source

    def variant(self, rng: np.random.Generator) -> list[torch.Tensor]:
        """The frozen layers' outputs of the frames as recorded, or of one of their exposure copies."""
        if not self.exposed:
            return self.trunk
        k = int(rng.integers(1 + len(self.exposed)))
        return self.trunk if k == 0 else self.exposed[k - 1]


def load_clips(lists: list[str], progress: Callable[[str], None] | None = None) -> list[Clip]:
    out = []
    for path in lists:
        for spec in read_clip_list(path):
            if progress:
                progress(f"reading {spec.path}")
            out.append(Clip(spec, extract(spec.path)))
    return out


class Balanced:
    """Training items: half live, half attack; within each, a source first, then one of
    its clips and an item of it (a frame, a window), so that a long video or a big
    source does not outvote the others."""

    def __init__(self, sizes: list[tuple[bool, str, int]], rng: np.random.Generator) -> None:
        """``sizes``: per clip, whether it is live, its source and how many items it has."""
        self.rng = rng
        self.pools: dict[bool, dict[str, list[tuple[int, int]]]] = {True: {}, False: {}}
        for k, (live, source, n) in enumerate(sizes):
            if n:
                self.pools[live].setdefault(source, []).append((k, n))
        if not self.pools[True] or not self.pools[False]:
            raise AccessctlError("training needs live and attack clips with a face in enough frames for a window")

    def draw(self, n: int) -> tuple[list[tuple[int, int]], torch.Tensor]:
        """``n`` (clip, item) pairs and their labels (1 = live), alternating."""
        picks = []
        for i in range(n):
            sources = list(self.pools[i % 2 == 0].values())
            pool = sources[self.rng.integers(len(sources))]
            k, size = pool[self.rng.integers(len(pool))]
            picks.append((k, int(self.rng.integers(size))))
        return picks, torch.tensor([i % 2 == 0 for i in range(n)], dtype=torch.float32)


def _tuned(key: str, tune_from: str) -> bool:
    layer = key.split(".")[2]  # nets.<i>.<layer>....
    return layer in _AFTER_LAYERS or (layer in LAYERS and LAYERS.index(layer) >= LAYERS.index(tune_from))


def exposure(crops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each frame's crops as if lit and exposed differently: a random gain, gamma and
    colour cast per frame (both crops of a frame alike: one camera, one moment).

    Why: in the training clips attacks are bright (a screen glows) and some live rooms
    are dim, so a model can learn "dark is an attack"; held out, the fine-tuned CNNs
    refused the darkest live faces the pretrained ones accepted (model card). Training
    on every frame under many exposures takes brightness away as a cue. Measured, it
    did not bring those faces back and cost elsewhere, so the recipe leaves it off
    (``tune_exposure`` 0); :func:`mix` did."""
    n = len(crops)
    gain = np.exp(rng.uniform(-0.6, 0.6, (n, 1, 1, 1, 1)))
    gamma = np.exp(rng.uniform(-0.5, 0.5, (n, 1, 1, 1, 1)))
    cast = np.exp(rng.uniform(-0.1, 0.1, (n, 1, 1, 1, 3)))
    x = (crops.astype(np.float32) / 255.0) ** gamma * gain * cast
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def trunks(
    cnn: FrameCNN, clips: list[Clip], tune_from: str, batch: int = 256, exposures: int = 0, seed: int = 0
) -> None:
    """Each clip's frames through each CNN's frozen layers (those before ``tune_from``),
    once; and ``exposures`` copies of them under a random :func:`exposure` each."""
    rng = np.random.default_rng(seed)

    def run(crops: np.ndarray) -> list[torch.Tensor]:
        out = []
        for x, net in zip(FrameCNN.inputs(torch.from_numpy(crops)), cnn.minifasnets(), strict=True):
            parts = []
            for j in range(0, len(x), batch):
                h = x[j : j + batch]
                for layer in net.layers(stop=tune_from):
                    h = layer(h)
                parts.append(h)
            out.append(torch.cat(parts) if parts else torch.zeros(0))
        return out

    with torch.inference_mode():
        for c in clips:
            c.trunk = run(c.frames.crops)
            c.exposed = [run(exposure(c.frames.crops, rng)) for _ in range(exposures)]


def clip_features(cnn: FrameCNN, clip: Clip, tune_from: str) -> np.ndarray:
    """A clip's per-frame features from its frozen layers' outputs (see :func:`trunks`)."""
    if len(clip.frames) == 0:
        return clip.frames.features
    with torch.inference_mode():
        return cnn.from_inputs(clip.trunk, tune_from).numpy()


def _live_vs_rest(logits: torch.Tensor) -> torch.Tensor:
    """The CNN's three logits as one binary logit: live (class 1) against both attack classes."""
    return logits[:, 1] - torch.logsumexp(logits[:, [0, 2]], dim=1)


def fine_tune(base: FrameCNN, clips: list[Clip], cfg: LivenessTrainConfig, seed: int) -> FrameCNN:
    """A copy of the CNNs whose layers from ``cfg.tune_from`` on are trained on single
    frames of ``clips`` (their :func:`trunks` computed), each CNN on its own live-vs-rest
    logit, anchored to the pretrained weights; batch norm keeps its statistics."""
    torch.manual_seed(seed)
    cnn = copy.deepcopy(base).eval()
    params = {k: p for k, p in cnn.named_parameters() if _tuned(k, cfg.tune_from)}
    for k, p in cnn.named_parameters():
        p.requires_grad_(k in params)
    anchor = {k: p.detach().clone() for k, p in params.items()}
    opt = torch.optim.AdamW(params.values(), lr=cfg.tune_lr, weight_decay=0.0)
    frames = Balanced([(c.spec.live, c.source, len(c.frames)) for c in clips], np.random.default_rng(seed))
    which = np.random.default_rng([seed, 1])  # its own stream: without exposure copies, the draws are as before
    for _ in range(cfg.tune_steps):
        picks, y = frames.draw(cfg.batch)
        variants = [clips[k].variant(which) for k, _ in picks]
        loss = cfg.tune_anchor * torch.stack([((p - anchor[k]) ** 2).sum() for k, p in params.items()]).sum()
        for i, net in enumerate(cnn.minifasnets()):
            h = torch.stack([v[i][f] for v, (_, f) in zip(variants, picks, strict=True)])
            loss = loss + F.binary_cross_entropy_with_logits(_live_vs_rest(net(h, cfg.tune_from)[1]), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in cnn.parameters():
        p.requires_grad_(False)
    return mix(base, cnn, cfg.tune_mix)


def mix(base: FrameCNN, tuned: FrameCNN, alpha: float) -> FrameCNN:
    """The weights ``alpha`` of the way from the pretrained CNNs to the fine-tuned ones.

    Why: fine-tuning on a few dozen sources gains on attacks like theirs and loses some
    of what the pretrained CNNs knew of people unlike them (the model card's live
    refusals); a point on the straight line between the two weight sets often keeps
    most of both (weight-space ensembling, "WiSE-FT", Wortsman et al., CVPR 2022), at
    no cost at run time. Batch norm keeps the pretrained statistics in both, so the two
    are comparable layer by layer."""
    if alpha == 1.0:
        return tuned
    out = copy.deepcopy(tuned)
    pre = base.state_dict()
    with torch.no_grad():
        for k, v in out.state_dict().items():
            if v.is_floating_point():
                v.copy_(pre[k] + alpha * (v - pre[k]))
    return out


def tuned_state(cnn: FrameCNN, tune_from: str) -> dict[str, torch.Tensor]:
    """The fine-tuned layers' tensors (a plain state dict of :class:`.FrameCNN` keys)."""
    return {k: v.clone() for k, v in cnn.state_dict().items() if _tuned(k, tune_from)}


@dataclass
class Scored:
    """The door's decision scores of one clip's presentations (see :func:`.presentation_scores`)."""

    source: str
    live: bool
    attack: str
    scores: list[float | None]


def score_clips(model: LivenessModel, clips: list[Clip], features: list[np.ndarray]) -> list[Scored]:
    """The texture's door scores of each clip's presentations (see :func:`.texture_scores`)."""
    return [
        Scored(c.source, c.spec.live, c.spec.attack, texture_scores(model, c.frames, f))
        for c, f in zip(clips, features, strict=True)
    ]


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


class Recipe:
    """The training of one split: fine-tune the CNNs' last layers; the clips'
    frozen-layer outputs computed once."""

    def __init__(self, clips: list[Clip], cfg: LivenessTrainConfig) -> None:
        self.clips, self.cfg = clips, cfg
        self.base = load_frame_cnn()
        self.start = cfg.tune_from or TUNABLE[0]  # frozen CNNs: outputs kept where the maps are smallest
        trunks(self.base, clips, self.start, exposures=cfg.tune_exposure if cfg.tune_from else 0, seed=cfg.seed)
        self.pretrained = [clip_features(self.base, c, self.start) for c in clips]
        self.model = make_model(MotionHead(), 0.5, 0.5, Path("-"))  # features given: its own CNN is unused

    def fit(self, train: list[int], seed: int) -> FrameCNN:
        clips = [self.clips[k] for k in train]
        return fine_tune(self.base, clips, self.cfg, seed) if self.cfg.tune_from else self.base

    def features(self, cnn: FrameCNN, k: int) -> np.ndarray:
        return self.pretrained[k] if cnn is self.base else clip_features(cnn, self.clips[k], self.start)

    def score(self, cnn: FrameCNN, ks: list[int]) -> list[Scored]:
        return score_clips(self.model, [self.clips[k] for k in ks], [self.features(cnn, k) for k in ks])


def cross_validate(recipe: Recipe, log: Callable[[str], None] | None = None) -> dict[str, list[Scored]]:
    """Held-out texture scores of every clip, each from CNNs fine-tuned without the
    clip's source: ``trained`` (the recipe) and ``pretrained`` (the CNNs as published)."""
    clips = recipe.clips
    sources = sorted({c.source for c in clips})
    out: dict[str, list[Scored]] = {"pretrained": [], "trained": []}
    for i, src in enumerate(sources):
        held = [k for k, c in enumerate(clips) if c.source == src]
        cnn = recipe.fit([k for k, c in enumerate(clips) if c.source != src], recipe.cfg.seed + i)
        out["trained"] += recipe.score(cnn, held)
        out["pretrained"] += recipe.score(recipe.base, held)
        if log:
            log(f"fold {i + 1}/{len(sources)}: held out {src} ({len(held)} clips)")
    return out


def cv_report(scored: dict[str, list[Scored]]) -> dict:
    """Each method at its own threshold for BPCER <= 2% on the held-out scores: pooled
    figures, per-source figures and the worst source."""
    report = {}
    for name, s in scored.items():
        thr = threshold_for_bpcer(s)
        sources = per_source(s, thr)
        worst = max(sources, key=lambda k: sources[k]["error"])
        report[name] = {
            "threshold": thr,
            "pooled": figures(s, thr),
            "sources": sources,
            "worst_source": worst,
            "worst_error": sources[worst]["error"],
        }
    return report


def train_texture(cfg: LivenessTrainConfig, log: Callable[[str], None] | None = None) -> tuple[FrameCNN, float, dict]:
    """The CNNs' fine-tuning: optionally cross-validated by source, then trained on every
    clip not held out. Returns the CNNs, the texture threshold and the report.

    The threshold is the cross-validated one when ``cv_by`` is set (the only scores
    of this recipe on sources it never saw); else it is chosen on ``val_sources``;
    with neither, training is refused, as a threshold from training clips means nothing.
    """
    if cfg.cv_by not in ("", "source"):
        raise AccessctlError(f"--cv-by {cfg.cv_by!r}: the only split is 'source'")
    if cfg.tune_from not in ("", *TUNABLE):
        raise AccessctlError(f"--tune-from {cfg.tune_from!r}: one of {', '.join(TUNABLE)}, or none")
    if not 0.0 <= cfg.tune_mix <= 1.0:
        raise AccessctlError(f"--tune-mix {cfg.tune_mix}: a fraction of the way to the fine-tuned weights, 0 to 1")
    if cfg.tune_exposure < 0:
        raise AccessctlError(f"--tune-exposure {cfg.tune_exposure}: a number of copies, 0 or more")
    clips = load_clips(cfg.clips, log)
    sources = {c.source for c in clips}
    unknown = set(cfg.val_sources) - sources
    if unknown:
        raise AccessctlError(f"validation sources not in the clips: {', '.join(sorted(unknown))}")
    if not cfg.cv_by and not cfg.val_sources:
        raise AccessctlError("choose how the threshold is set: --cv-by source, or --val-sources A,B")
    t0 = time.perf_counter()
    recipe = Recipe(clips, cfg)
    report: dict = {"clips": len(clips), "sources": len(sources)}
    if cfg.cv_by:
        report["cv"] = cv_report(cross_validate(recipe, log))
        threshold = report["cv"]["trained"]["threshold"]
    train_idx = [k for k, c in enumerate(clips) if c.source not in cfg.val_sources]
    cnn = recipe.fit(train_idx, cfg.seed)
    if cfg.val_sources:
        val = recipe.score(cnn, [k for k, c in enumerate(clips) if c.source in cfg.val_sources])
        if not cfg.cv_by:
            threshold = threshold_for_bpcer(val)
        report["validation"] = figures(val, threshold)
        report["validation_sources"] = sorted(cfg.val_sources)
    report["train_seconds"] = round(time.perf_counter() - t0, 1)
    report["train_sources"] = sorted({clips[k].source for k in train_idx})
    return cnn, threshold, report


def train(cfg: LivenessTrainConfig, motion: MotionConfig, log: Callable[[str], None] | None = None) -> dict:
    """The whole recipe: the CNNs' fine-tuning (the texture score and its threshold;
    skipped with ``cnn_from``, which keeps a model's), then the motion head on top
    (:func:`.motion.train`); the model is written to ``cfg.out``."""
    out = Path(cfg.out)
    texture: dict = {}
    extra: dict = {"config": asdict(cfg)}
    if cfg.cnn_from:
        base = Path(cfg.cnn_from)
        try:  # the kept CNNs' own training record goes with them
            kept = json.loads((base / "liveness.json").read_text(encoding="utf-8"))
            extra = {"config": kept.get("config", {}), "report": kept.get("report", {}), "texture_from": str(base)}
        except (OSError, ValueError):
            pass
    else:
        cnn, threshold, texture = train_texture(cfg, log)
        # the texture stage's result, with a motion head not yet trained: the motion stage reads it back
        save_model(
            make_model(MotionHead(), threshold, 0.5, out),
            out,
            {"stage": "texture"},
            tuned_state(cnn, cfg.tune_from) if cfg.tune_from else None,
        )
        load_liveness.cache_clear()
        base = out
        extra["report"] = texture
    result = train_motion(
        dataclasses.replace(motion, clips=cfg.clips, out=str(out), cnn_from=str(base)), log, extra=extra
    )
    return {"texture": texture, **result}
