"""Training the Siamese encoder on a site's own faces.

Checkpoints are plain state dicts: ``last.pt`` (model, head, optimiser, epoch; for
resuming), ``best.pt`` (the encoder weights alone, the epoch with the best validation
figure) and ``config.json`` (the training configuration, the history of validation
figures, and the distance threshold chosen on the training people). Randomness is
seeded per epoch from ``seed``, so a resumed run continues exactly as an unbroken one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from accessctl.config import write_private
from accessctl.errors import AccessctlError
from accessctl.evaluation.verification import (
    cross_validated_accuracy,
    verification_metrics,
)
from accessctl.identity.architectures import BinaryHead, SmallFaceNet
from accessctl.identity.pairhead import fit_head
from accessctl.training.data import FaceSet, PKSampler, augment, load_face_folder
from accessctl.training.losses import (
    IdentityHead,
    binary_loss,
    contrastive_loss,
    identity_loss,
    triplet_loss,
)
from accessctl.training.models import Embedder

LOSSES = ("triplet", "contrastive", "binary")
MININGS = ("semi-hard", "batch-hard", "batch-all")


@dataclass
class TrainConfig:
    data: str
    out: str
    arch: str = "dlib-resnet"
    init: str = "pretrained"  # or "random"
    loss: str = "triplet"
    mining: str = "semi-hard"
    margin: float | None = None  # triplet 0.2 (squared distances), contrastive 1.0
    normalize: bool | None = None  # L2-normalise embeddings; default: from random weights, triplet/contrastive
    epochs: int = 20
    steps_per_epoch: int = 0  # 0 = one pass over the training images
    p: int = 8
    k: int = 4
    lr: float = 0.0  # 0 = 1e-3 from random weights, 2e-5 when fine-tuning
    weight_decay: float = 5e-4
    whiten: bool = True  # fit the small net's within-class whitening at the end (models.Whitening)
    id_weight: float = 0.0  # weight of the auxiliary identity loss (losses.identity_loss); 0 = off
    val_people: int = 0  # people held out for the per-epoch pair evaluation (choosing the epoch)
    test_people: int = 0  # people held out from training and from every choice; measured once, at the end
    patience: int = 5  # epochs without improvement before stopping early
    seed: int = 0
    split_seed: int | None = None  # which people are held out; None = seed (see split_people)
    device: str = "cpu"  # where the training steps run ("cuda" on a machine with a GPU); the rest runs on the CPU
    history: list[dict] = field(default_factory=list)

    def resolved(self) -> "TrainConfig":
        c = dataclasses.replace(self)
        if c.loss not in LOSSES:
            raise AccessctlError(f"unknown loss {c.loss!r}; choose from {', '.join(LOSSES)}")
        if c.mining not in MININGS:
            raise AccessctlError(f"unknown mining {c.mining!r}; choose from {', '.join(MININGS)}")
        if c.init not in ("pretrained", "random"):
            raise AccessctlError("init must be 'pretrained' or 'random'")
        if c.init == "pretrained" and c.arch != "dlib-resnet":
            raise AccessctlError("only the dlib-resnet architecture has pretrained weights")
        if c.id_weight < 0:
            raise AccessctlError("the identity loss weight cannot be negative")
        if c.device != "cpu" and not (c.device.startswith("cuda") and torch.cuda.is_available()):
            raise AccessctlError(
                f"device {c.device!r} is not available here; use cpu"
                + ("" if torch.cuda.is_available() else " (no CUDA GPU found)")
            )
        if c.epochs < 0:
            raise AccessctlError("epochs must be 0 (measure the starting weights) or more")
        if c.margin is None:
            c.margin = 1.0 if c.loss == "contrastive" else 0.2
        if c.normalize is None:
            # On the unit sphere |f1 - f2| is too small a signal for the binary head to
            # learn from at the start (ORL from random weights: 68% normalised, 87% not).
            c.normalize = c.init == "random" and c.loss != "binary"
        if not c.lr:
            c.lr = 2e-5 if c.init == "pretrained" else 1e-3
        return c


@dataclass(frozen=True)
class Progress:
    """One training step (``record`` None) or one finished, checkpointed epoch (its history record)."""

    epoch: int
    epochs: int
    step: int
    steps: int
    loss: float
    record: dict | None = None

    def __str__(self) -> str:
        if self.record is not None:
            return f"epoch {self.epoch}: {json.dumps(self.record)}"
        return f"epoch {self.epoch}/{self.epochs} step {self.step}/{self.steps} loss {self.loss:.4f}"


@dataclass
class TrainResult:
    out: Path
    epochs_run: int
    best_epoch: int
    best: dict
    threshold: float
    images_per_second: float


def split_people(faces: FaceSet, val_people: int, seed: int) -> tuple[FaceSet, FaceSet | None]:
    """Hold out whole people (never images of a training person) for validation.

    The seed that picks them can be set apart from the training's (``split_seed``):
    with the same people held out and other random streams, the spread of a figure
    from one run to the next shows which differences between settings are real.
    """
    if val_people <= 0:
        return faces, None
    if val_people == 1:
        raise AccessctlError("hold out at least 2 people: one person alone gives no different-person pairs")
    if val_people >= len(faces.people) - 1:
        raise AccessctlError(f"cannot hold out {val_people} of {len(faces.people)} people")
    order = np.random.default_rng(seed).permutation(len(faces.people))
    val = sorted(faces.people[i] for i in order[:val_people])
    train = [p for p in faces.people if p not in val]
    return faces.subset(train), faces.subset(val)


@torch.inference_mode()
def embed(model: Embedder, chips: np.ndarray, batch: int = 64) -> torch.Tensor:
    """Embeddings on the CPU, wherever the model is."""
    model.eval()
    device = next(model.parameters()).device
    out = [model(torch.from_numpy(chips[i : i + batch]).to(device)).cpu() for i in range(0, len(chips), batch)]
    return torch.cat(out)


def balanced_pairs(labels: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every same-person pair and as many different-person pairs, drawn with a fixed seed.

    Balanced like the usual verification benchmarks: on all pairs of ten people, nine in
    ten are impostors and refusing everyone would score 90%.
    """
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    genuine = np.flatnonzero(same)
    impostor = np.flatnonzero(~same)
    pick = np.random.default_rng(seed).choice(impostor, size=min(len(genuine), len(impostor)), replace=False)
    keep = np.sort(np.concatenate([genuine, pick]))
    return i[keep], j[keep]


def pair_scores(emb: torch.Tensor, labels: np.ndarray, head: BinaryHead | None) -> tuple[np.ndarray, np.ndarray]:
    """Distance-like score (lower = same person) and label of the balanced pairs."""
    i_np, j_np = balanced_pairs(labels)
    i, j = torch.from_numpy(i_np), torch.from_numpy(j_np)
    if head is not None:
        device = next(head.parameters()).device
        with torch.inference_mode():
            score = -head(emb[i].to(device), emb[j].to(device)).cpu()
    else:
        score = (emb[i] - emb[j]).norm(dim=1)
    return score.numpy().astype(np.float64), labels[i_np] == labels[j_np]


def pair_figures(
    emb: torch.Tensor,
    labels: np.ndarray,
    head: BinaryHead | None,
    threshold: float | None,
    *,
    cross_validate: bool = False,
) -> dict:
    """Figures of the balanced pairs at ``threshold``; None: at the best threshold for
    these pairs (where accuracy is, by definition, the best accuracy). ``cross_validate``
    adds ``accuracy_10fold`` (evaluate.cross_validated_accuracy) for the final figures."""
    scores, same = pair_scores(emb, labels, head)
    m = verification_metrics(scores, same, np.zeros(len(scores), bool), 0.0 if threshold is None else threshold)
    accuracy = m["best_accuracy"] if threshold is None else m["accuracy"]
    fig = {
        "pairs": int(len(scores)),
        "accuracy": accuracy,
        "best_accuracy": m["best_accuracy"],
        "best_threshold": m["best_threshold"],
        "eer": m["eer"],
    }
    if cross_validate:
        fig["accuracy_10fold"] = cross_validated_accuracy(scores, same)
    return fig


def evaluate_split(model: Embedder, faces: FaceSet, head: BinaryHead | None, threshold: float | None) -> dict:
    return pair_figures(embed(model, faces.chips), faces.labels, head, threshold)


def training_threshold(model: Embedder, faces: FaceSet, seed: int, views: int = 3) -> float:
    """The distance threshold a run ships with, chosen on the training people alone.

    Not on their faces as trained on: a net that has learnt those faces puts them closer
    together than any new face, and a threshold between them is too strict for people
    it never saw. Faces augmented the way training augments them (shifted, blurred, part
    hidden) are a fair stand-in for new ones: on ORL from random weights (30 people to
    train on, 10 unseen; triplet and contrastive, 3 splits) accuracy on the unseen people
    at the threshold rose from 75-89% (mean 81%) to 82-91% (mean 87%).
    """
    rng = np.random.default_rng([seed, 1 << 20])
    chosen = [
        pair_figures(embed(model, augment(faces.chips, rng)), faces.labels, None, None)["best_threshold"]
        for _ in range(views)
    ]
    return float(np.mean(chosen))


def fit_whitening(
    model: Embedder, faces: FaceSet, seed: int, head: BinaryHead | None, views: int = 5
) -> BinaryHead | None:
    """Fit the net's within-class whitening on the training people (augmented views,
    as in training_threshold, so it models how a person's new faces vary); a binary head
    learnt on the unwhitened embeddings no longer fits them and is refitted, on the
    same views' balanced pairs, whitened. Returns the head to keep."""
    if not isinstance(model.net, SmallFaceNet):
        raise ValueError("only the small net has a whitening layer to fit")
    whitening = model.net.whitening
    whitening.active.fill_(0.0)
    rng = np.random.default_rng([seed, 1 << 21])
    emb = torch.cat([embed(model, augment(faces.chips, rng)) for _ in range(views)])
    labels = np.tile(faces.labels, views)
    whitening.fit(emb, torch.from_numpy(labels), prenorm=model.normalize)
    if head is None:
        return None
    white = whitening(emb).numpy()  # what the net now gives for these views, without a second pass
    i, j = balanced_pairs(labels, seed)
    return fit_head(white[i], white[j], labels[i] == labels[j], seed=seed)


def _on_cpu(obj: object) -> object:
    """A state (a module's, or the optimiser's nested one) with every tensor on the CPU:
    checkpoints load, and runs resume, on any machine whatever device trained them."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _on_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_on_cpu(v) for v in obj)
    return obj


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return _on_cpu(module.state_dict())  # type: ignore[return-value]


def train(
    cfg: TrainConfig,
    *,
    resume: bool = False,
    progress: Callable[[Progress], None] | None = None,
    faces: FaceSet | None = None,
) -> TrainResult:
    """Train (or fine-tune) an encoder as ``cfg`` says; returns where the results are."""
    cfg = cfg.resolved()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    torch.manual_seed(cfg.seed)
    faces = faces or load_face_folder(cfg.data)
    split_seed = cfg.seed if cfg.split_seed is None else cfg.split_seed
    rest, test_set = split_people(faces, cfg.test_people, split_seed)
    train_set, val_set = split_people(rest, cfg.val_people, split_seed)

    model = _new_model(cfg)
    head = BinaryHead(model.net.embedding_dim) if cfg.loss == "binary" else None
    id_head = IdentityHead(model.net.embedding_dim, len(train_set.people)) if cfg.id_weight else None
    modules = [m for m in (model, head, id_head) if m is not None]
    for module in modules:
        module.to(cfg.device)
    opt = torch.optim.AdamW([p for m in modules for p in m.parameters()], lr=cfg.lr, weight_decay=cfg.weight_decay)

    start_epoch, best_metric, best_epoch, stale = 0, -math.inf, -1, 0
    last = out / "last.pt"
    if resume:
        start_epoch, best_metric, best_epoch, stale = _resume(cfg, last, model, head, id_head, opt)

    batch = cfg.p * cfg.k
    steps = cfg.steps_per_epoch or max(1, math.ceil(len(train_set.chips) / batch))
    base_threshold = 0.6 if not cfg.normalize else 1.0
    seen, train_time = 0, 0.0
    before: dict | None = None
    if cfg.init == "pretrained" and not resume:
        before, best_metric = _starting_point(
            cfg, model, head, train_set, val_set, test_set, base_threshold, best_metric
        )
    epoch = start_epoch - 1
    for epoch in range(start_epoch, cfg.epochs):
        # Cosine decay from lr to lr/20, a function of the epoch alone so a resumed run
        # needs no scheduler state.
        for group in opt.param_groups:
            group["lr"] = cfg.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * epoch / max(cfg.epochs, 1))))
        t0 = time.perf_counter()
        losses = _epoch(cfg, epoch, steps, model, head, id_head, opt, train_set, progress)
        seen += steps * batch
        train_time += time.perf_counter() - t0
        record: dict[str, Any] = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
        metric = float(epoch)  # with no validation people, nothing to choose by: the last epoch is the result
        if val_set is not None:
            record["val"] = evaluate_split(model, val_set, head, base_threshold)
            metric = record["val"]["best_accuracy"] - record["val"]["eer"] * 1e-3
        cfg.history.append(record)
        if metric > best_metric:
            best_metric, best_epoch, stale = metric, epoch, 0
            _save_best(out, model, head)
        else:
            stale += 1
        ck = {
            "model": _state(model.net),
            "optimizer": _on_cpu(opt.state_dict()),
            "epoch": epoch,
            "best_metric": best_metric,
            "best_epoch": best_epoch,
            "stale": stale,
        }
        ck.update({name: _state(m) for name, m in (("head", head), ("id_head", id_head)) if m is not None})
        torch.save(ck, last)
        _write_config(out, cfg, extra={})
        if progress:
            progress(Progress(epoch + 1, cfg.epochs, steps, steps, record["loss"], record))
        if stale >= cfg.patience:
            break

    for m in (model, head):
        if m is not None:
            m.cpu()
    # Final figures with the best weights: the threshold is chosen on the training people
    # (see training_threshold) and applied, untouched, to the people the encoder never saw.
    if cfg.epochs == 0 and not resume:
        # Nothing to train: the figures of the starting weights, the baseline training
        # has to beat (a random net already tells many faces apart).
        _save_best(out, model, head)
    _load_best(out, model, head)
    unwhitened: dict[str, dict] = {}
    if cfg.whiten and getattr(model.net, "whitening", None) is not None:
        unwhitened, head = _whiten(cfg, model, head, train_set, {"val": val_set, "test": test_set})
    threshold = training_threshold(model, train_set, cfg.seed)
    best = _final_figures(model, head, threshold, train_set, {"val": val_set, "test": test_set})
    best.update({f"{name}_unwhitened": figures for name, figures in unwhitened.items()})
    if before is not None:
        best["before"] = before
    encoder_id = f"{cfg.arch}-{hashlib.sha256((out / 'best.pt').read_bytes()).hexdigest()[:12]}"
    _write_config(
        out, cfg, extra={"encoder_id": encoder_id, "threshold": threshold, "best_epoch": best_epoch + 1, "final": best}
    )
    ips = seen / train_time if train_time else 0.0
    return TrainResult(out, epoch + 1 - start_epoch, best_epoch + 1, best, threshold, ips)


def _starting_point(
    cfg: TrainConfig,
    model: Embedder,
    head: BinaryHead | None,
    train_set: FaceSet,
    val_set: FaceSet | None,
    test_set: FaceSet | None,
    base_threshold: float,
    best_metric: float,
) -> tuple[dict, float]:
    """Figures of the pretrained starting point, measured the way the final ones are;
    and the starting point is a candidate for best.pt, so fine-tuning that does not
    help on the held-out people leaves the pretrained weights in place."""
    start_threshold = training_threshold(model, train_set, cfg.seed)
    before = {"train": evaluate_split(model, train_set, None, start_threshold)}
    if test_set is not None:
        before["test"] = evaluate_split(model, test_set, None, start_threshold)
    if val_set is not None:
        val_emb = embed(model, val_set.chips)
        before["val"] = pair_figures(val_emb, val_set.labels, None, start_threshold)
        if head is None:
            v = pair_figures(val_emb, val_set.labels, None, base_threshold)
            cfg.history.append({"epoch": 0, "val": v})
            best_metric = v["best_accuracy"] - v["eer"] * 1e-3
            torch.save(_state(model.net), Path(cfg.out) / "best.pt")  # no head to save: head is None
    return before, best_metric


def _whiten(
    cfg: TrainConfig, model: Embedder, head: BinaryHead | None, train_set: FaceSet, held_out: dict[str, FaceSet | None]
) -> tuple[dict[str, dict], BinaryHead | None]:
    """Fit the whitening to the best weights and save them; the held-out figures
    without it first, so each run shows what the whitening did."""
    net: Any = model.net  # an architecture with a whitening layer (the caller checked)
    net.whitening.active.fill_(0.0)
    unwhitened = {
        name: pair_figures(embed(model, faces.chips), faces.labels, None, None, cross_validate=True)
        for name, faces in held_out.items()
        if faces is not None
    }
    head = fit_whitening(model, train_set, cfg.seed, head)
    _save_best(Path(cfg.out), model, head)
    return unwhitened, head


def _epoch(
    cfg: TrainConfig,
    epoch: int,
    steps: int,
    model: Embedder,
    head: BinaryHead | None,
    id_head: IdentityHead | None,
    opt: torch.optim.Optimizer,
    train_set: FaceSet,
    progress: Callable[[Progress], None] | None,
) -> list[float]:
    """One epoch's steps, its randomness a function of the seed and the epoch alone
    (dropout masks too), so a resumed run goes on exactly; the losses."""
    rng = np.random.default_rng([cfg.seed, epoch])
    torch.manual_seed(int(rng.integers(1 << 62)))
    sampler = PKSampler(train_set.labels, cfg.p, cfg.k, seed=int(rng.integers(1 << 31)))
    model.train()
    losses: list[float] = []
    for step in range(steps):
        ix = sampler.batch()
        x = torch.from_numpy(augment(train_set.chips[ix], rng)).to(cfg.device)
        y = torch.from_numpy(train_set.labels[ix]).to(cfg.device)
        loss = _loss(cfg, model(x), y, head, id_head)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if progress:
            progress(Progress(epoch + 1, cfg.epochs, step + 1, steps, float(np.mean(losses))))
    return losses


def _save_best(out: Path, model: Embedder, head: BinaryHead | None) -> None:
    torch.save(_state(model.net), out / "best.pt")
    if head is not None:
        torch.save(_state(head), out / "head.pt")


def _load_best(out: Path, model: Embedder, head: BinaryHead | None) -> None:
    model.net.load_state_dict(torch.load(out / "best.pt", map_location="cpu", weights_only=True))
    if head is not None:
        head.load_state_dict(torch.load(out / "head.pt", map_location="cpu", weights_only=True))


def _new_model(cfg: TrainConfig) -> Embedder:
    model = Embedder(cfg.arch, bool(cfg.normalize))
    if cfg.init == "pretrained":
        from accessctl.identity.weights import pretrained_state_dict

        model.net.load_state_dict(pretrained_state_dict())
    return model


def _resume(
    cfg: TrainConfig,
    last: Path,
    model: Embedder,
    head: BinaryHead | None,
    id_head: IdentityHead | None,
    opt: torch.optim.Optimizer,
) -> tuple[int, float, int, int]:
    """The run's state from its last checkpoint: the next epoch, the best metric and
    epoch so far, and the epochs since it improved."""
    if not last.is_file():
        raise AccessctlError(f"nothing to resume: {last} does not exist")
    ck = torch.load(last, map_location="cpu", weights_only=True)
    model.net.load_state_dict(ck["model"])
    if head is not None and "head" in ck:
        head.load_state_dict(ck["head"])
    if id_head is not None and "id_head" in ck:
        id_head.load_state_dict(ck["id_head"])
    opt.load_state_dict(ck["optimizer"])
    cfg.history = json.loads((last.parent / "config.json").read_text()).get("history", [])
    return int(ck["epoch"]) + 1, float(ck["best_metric"]), int(ck["best_epoch"]), int(ck["stale"])


def _loss(
    cfg: TrainConfig, emb: torch.Tensor, y: torch.Tensor, head: BinaryHead | None, id_head: IdentityHead | None
) -> torch.Tensor:
    if cfg.loss == "triplet":
        loss, _ = triplet_loss(emb, y, float(cfg.margin or 0.0), cfg.mining)
    elif cfg.loss == "contrastive":
        loss, _ = contrastive_loss(emb, y, float(cfg.margin or 0.0))
    else:
        assert head is not None  # the binary loss has its head
        loss, _ = binary_loss(emb, y, head)
    if id_head is not None:
        loss = loss + cfg.id_weight * identity_loss(emb, y, id_head)[0]
    return loss


def _final_figures(
    model: Embedder, head: BinaryHead | None, threshold: float, train_set: FaceSet, held_out: dict[str, FaceSet | None]
) -> dict[str, Any]:
    """The distance threshold is what the gallery uses, whatever the loss, chosen on the
    training people and applied untouched to the held-out ones; the binary head's own
    figures are at P(same) = 0.5 (logit 0), its natural operating point."""
    best: dict[str, Any] = {"train": evaluate_split(model, train_set, None, threshold)}
    for name, faces in held_out.items():
        if faces is not None:
            emb = embed(model, faces.chips)
            best[name] = pair_figures(emb, faces.labels, None, threshold, cross_validate=True)
            best[f"{name}_people"] = faces.people
            if head is not None:
                best[f"{name}_binary"] = pair_figures(emb, faces.labels, head, 0.0, cross_validate=True)
    return best


def _write_config(out: Path, cfg: TrainConfig, extra: dict) -> None:
    path = out / "config.json"
    doc = dataclasses.asdict(cfg)
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            doc = {**{k: v for k, v in old.items() if k not in doc}, **doc}
        except ValueError:
            pass
    doc.update(extra)
    write_private(path, json.dumps(doc, indent=1))
