"""A liveness model on disk and in memory: its record (:class:`LivenessModel`), loading
(every file checked by SHA-256 first) and saving (plain state dicts, byte-stable)."""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from accessctl.errors import AccessctlError
from accessctl.liveness import minifasnet as minifasnet_code
from accessctl.liveness import model as model_code
from accessctl.liveness.features import (
    CNN_SCALES,
    STEP_S,
    WINDOW,
)
from accessctl.liveness.minifasnet import INPUT
from accessctl.liveness.model import FEATURE_DIM, FrameCNN, MotionHead, MotionVote, threshold_logits
from accessctl.liveness.verdict import EVIDENCE_S, HISTORY
from accessctl.liveness.weights import check_frame_cnn_files, checked_state, load_frame_cnn, shipped_dir
from accessctl.torchscript import frozen, trace_for_inference

WEIGHTS_FILE = "liveness.pt"
META_FILE = "liveness.json"
TUNED_FILE = "cnn_tuned.pt"  # the CNNs' fine-tuned last layers, when the model has them
PRETRAINED = "pretrained"  # the CNN id of the MiniFASNets as published
FORMAT = 2  # liveness.json's layout: 2 = texture threshold and a motion head (or heads that vote)


@dataclass(frozen=True)
class LivenessModel:
    motion: MotionHead | MotionVote = field(repr=False)
    threshold: float  # texture: the CNNs' P(live) at or above which a face looks live
    motion_threshold: float  # the motion P(live) at or above which a face moved like a head (a vote: 0.5)
    window: int  # texture window, frames step_s apart
    step_s: float
    source: Path
    cnn: torch.nn.Module = field(repr=False)  # FrameCNN, traced for the kiosk
    cnn_id: str = PRETRAINED  # which CNN weights: PRETRAINED, or the SHA-256 of the fine-tuned layers
    history: int = HISTORY
    evidence_s: float = EVIDENCE_S


def _cnn_example() -> torch.Tensor:
    return torch.zeros(1, len(CNN_SCALES), INPUT, INPUT, 3, dtype=torch.uint8)


def traced_cnn(cnn: FrameCNN) -> torch.nn.Module:
    """Both CNNs as one frozen TorchScript trace."""
    return trace_for_inference(cnn, _cnn_example())


@functools.lru_cache(maxsize=4)
def frame_cnn(tuned: tuple[Path, str] | None = None) -> torch.nn.Module:
    """The traced CNNs, pretrained or with fine-tuned last layers (a file and its
    SHA-256): every file checked, then the trace made once and kept (see
    :func:`~accessctl.torchscript.frozen`)."""
    made_of = check_frame_cnn_files(tuned=tuned)
    code = (minifasnet_code, model_code)
    return frozen("liveness-cnn", lambda: load_frame_cnn(tuned=tuned), _cnn_example(), made_of, code)


def frame_features(crops: np.ndarray, cnn: torch.nn.Module | None = None, batch: int = 64) -> np.ndarray:
    """(N, 2, 80, 80, 3) crops -> (N, FEATURE_DIM) per-frame features (default: the pretrained CNNs)."""
    cnn = cnn if cnn is not None else frame_cnn()
    out = [np.zeros((0, FEATURE_DIM), np.float32)]
    with torch.inference_mode():
        for i in range(0, len(crops), batch):
            out.append(cnn(torch.from_numpy(np.ascontiguousarray(crops[i : i + batch]))).numpy())
    return np.concatenate(out)


def make_model(
    motion: MotionHead | MotionVote,
    threshold: float,
    motion_threshold: float,
    source: Path,
    tuned: tuple[Path, str] | None = None,
    evidence_s: float = EVIDENCE_S,
) -> LivenessModel:
    return LivenessModel(
        motion.eval(),
        threshold,
        motion_threshold,
        WINDOW,
        STEP_S,
        source,
        frame_cnn(tuned),
        tuned[1] if tuned else PRETRAINED,
        HISTORY,
        evidence_s,
    )


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
        votes = [(int(v["hidden"]), float(v["threshold"])) for v in meta["motion"].get("votes", [])]
        tuned = (folder / TUNED_FILE, str(meta["cnn"]["sha256"])) if meta.get("cnn") else None
    except FileNotFoundError as exc:
        raise AccessctlError(f"no liveness model in {folder} ({Path(exc.filename).name} missing)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise AccessctlError(f"the liveness model in {folder} does not load: {META_FILE} is damaged ({exc})") from None
    if (
        not 0.0 < threshold < 1.0
        or not 0.0 < motion_threshold < 1.0
        or window != WINDOW
        or step_s != STEP_S
        or history != HISTORY
        or not 0.2 <= evidence_s <= 10.0
    ):
        raise AccessctlError(f"the liveness model in {folder} does not load: a threshold, window or time out of range")
    if any(not 0.0 < t < 1.0 for _, t in votes):
        raise AccessctlError(f"the liveness model in {folder} does not load: a vote's threshold out of range")
    head = MotionVote([MotionHead(h) for h, _ in votes], [t for _, t in votes]) if votes else MotionHead(hidden)
    try:
        head.load_state_dict(checked_state(folder / WEIGHTS_FILE, digest))
    except RuntimeError as exc:
        raise AccessctlError(f"the liveness model in {folder} does not load: {exc}") from None
    if isinstance(head, MotionVote):
        if not torch.allclose(head.offsets, threshold_logits([t for _, t in votes]), atol=1e-4):
            raise AccessctlError(
                f"the liveness model in {folder} does not load: its heads' thresholds in "
                f"{META_FILE} are not the ones in {WEIGHTS_FILE}"
            )
    return make_model(head, threshold, motion_threshold, folder, tuned, evidence_s)


def _save_state(state: dict[str, torch.Tensor], path: str) -> None:
    """Through an open file: saved by path, torch names the archive inside after the
    (temporary) file, so the same weights would get another SHA-256 each time."""
    with open(path, "wb") as f:
        torch.save(state, f)


def save_model(
    model: LivenessModel, out: Path, extra: dict, tuned: dict[str, torch.Tensor] | Path | None = None
) -> None:
    """``liveness.pt`` (the motion head, a plain state dict), ``cnn_tuned.pt`` (the
    fine-tuned CNN layers, a plain state dict of :class:`.FrameCNN` keys, if any) and
    ``liveness.json`` (thresholds, window, digests)."""
    from accessctl import config

    config.private_dir(out)
    config.write_private(out / WEIGHTS_FILE, lambda tmp: _save_state(model.motion.state_dict(), tmp))
    cnn = None
    layers: dict[str, torch.Tensor] | None = None
    if isinstance(tuned, Path):  # a model's own file of them, copied byte for byte: its SHA-256 is kept
        source = tuned
        config.write_private(out / TUNED_FILE, lambda tmp: shutil.copyfile(source, tmp))
        layers = torch.load(out / TUNED_FILE, map_location="cpu", weights_only=True)
    elif tuned:
        layers = tuned
        config.write_private(out / TUNED_FILE, lambda tmp: _save_state(tuned, tmp))
    if layers:
        cnn = {"sha256": config.sha256_file(out / TUNED_FILE), "layers": sorted({k.split(".")[2] for k in layers})}
    else:
        (out / TUNED_FILE).unlink(missing_ok=True)
    meta = {
        "format": FORMAT,
        "threshold": model.threshold,
        "window": model.window,
        "step_s": model.step_s,
        "motion": {
            "threshold": model.motion_threshold,
            "history": model.history,
            "evidence_s": model.evidence_s,
            **_heads_meta(model.motion),
        },
        "sha256": config.sha256_file(out / WEIGHTS_FILE),
        "cnn": cnn,
        **extra,
    }
    config.write_private(out / META_FILE, json.dumps(meta, indent=1))


def _heads_meta(motion: MotionHead | MotionVote) -> dict:
    if isinstance(motion, MotionHead):
        return {"hidden": motion.gru.hidden_size}
    heads = [h for h in motion.heads if isinstance(h, MotionHead)]
    offsets = motion.offsets.double()
    return {
        "hidden": heads[0].gru.hidden_size,
        "votes": [
            {"hidden": h.gru.hidden_size, "threshold": float(torch.sigmoid(o))}
            for h, o in zip(heads, offsets, strict=True)
        ],
    }


def vote_model(folders: list[Path], out: Path, evidence_s: float) -> LivenessModel:
    """One model whose motion heads vote (see :class:`.MotionVote`), from models trained
    on the same CNNs; written to ``out`` with where each head came from."""
    models = [load_liveness(f) for f in folders]
    first = models[0]
    metas = [json.loads((Path(f) / META_FILE).read_text(encoding="utf-8")) for f in folders]
    tuned = [
        checked_state(Path(f) / TUNED_FILE, str(m["cnn"]["sha256"])) if m.get("cnn") else None
        for f, m in zip(folders, metas, strict=True)
    ]
    if any(m.threshold != first.threshold or not _same_layers(t, tuned[0]) for m, t in zip(models, tuned, strict=True)):
        raise AccessctlError("the models of a vote must share their CNNs and texture threshold (train with --cnn-from)")
    heads = [m.motion for m in models]
    if not all(isinstance(h, MotionHead) for h in heads):
        raise AccessctlError("a vote is made of single motion heads, not of other votes")
    vote = MotionVote([h for h in heads if isinstance(h, MotionHead)], [m.motion_threshold for m in models])
    # the first model's record with the vote in place of its head: its traced CNNs are the vote's
    model = dataclasses.replace(first, motion=vote.eval(), motion_threshold=0.5, evidence_s=evidence_s, source=out)
    extra = {
        "votes_from": [
            {
                "folder": str(f),
                "motion_threshold": m.motion_threshold,
                "evidence_s": m.evidence_s,
                "sha256": meta["sha256"],
                "motion_config": meta.get("motion_config"),
                "motion_report": meta.get("motion_report"),
            }
            for f, m, meta in zip(folders, models, metas, strict=True)
        ],
        **{k: metas[0][k] for k in ("config", "report", "texture_from") if k in metas[0]},
    }
    save_model(model, out, extra, Path(folders[0]) / TUNED_FILE if tuned[0] is not None else None)
    return load_liveness.__wrapped__(out)


def _same_layers(a: dict[str, torch.Tensor] | None, b: dict[str, torch.Tensor] | None) -> bool:
    """The same fine-tuned CNN layers (or none): by value, since files of the same
    weights saved by older versions differ in their bytes."""
    if a is None or b is None:
        return a is b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
