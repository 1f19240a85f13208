"""Encoders other than the pretrained one: trained runs installed for the gallery to use.

``accessctl encoder train`` writes a run folder (``best.pt``, ``config.json`` and, for
the binary loss, ``head.pt``). Installing copies those files into the data folder under
the run's encoder id, so the gallery never depends on a training folder that may be
moved or deleted. The pair-classification head of any encoder (the pretrained one
included) lives in the same folder as ``head.pt``.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from accessctl import config
from accessctl.errors import EncoderError

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-")


@dataclass(frozen=True)
class EncoderInfo:
    encoder_id: str
    arch: str
    normalize: bool
    threshold: float  # the distance threshold chosen when it was trained
    folder: Path


def encoders_dir() -> Path:
    return config.data_dir() / "encoders"


def encoder_folder(encoder_id: str) -> Path:
    if not encoder_id or set(encoder_id) - _ID_CHARS:
        raise EncoderError(f"{encoder_id!r} is not a valid encoder id")
    return encoders_dir() / encoder_id


def _read_info(folder: Path, weights: str) -> EncoderInfo:
    try:
        doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        info = EncoderInfo(
            str(doc["encoder_id"]), str(doc["arch"]), bool(doc["normalize"]), float(doc["threshold"]), folder
        )
    except FileNotFoundError:
        raise EncoderError(f"{folder}: no config.json (is this a finished `accessctl encoder train` run?)") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EncoderError(f"{folder}/config.json is damaged or from an unfinished run ({exc})") from None
    if not (folder / weights).is_file():
        raise EncoderError(f"{folder}: no {weights}")
    encoder_folder(info.encoder_id)  # validates the id
    return info


def read_run(run: str | Path) -> EncoderInfo:
    """What a finished training run holds, checked before anything is installed."""
    return _read_info(Path(run), "best.pt")


def installed(encoder_id: str) -> EncoderInfo:
    folder = encoder_folder(encoder_id)
    if not folder.is_dir():
        raise EncoderError(f"encoder {encoder_id!r} is not installed (install it with `accessctl encoder use RUN_DIR`)")
    return _read_info(folder, "weights.pt")


def install(run: str | Path) -> EncoderInfo:
    """Copy a training run's weights (and head) into the data folder; idempotent."""
    info = read_run(run)
    run = Path(run)
    folder = config.private_dir(encoder_folder(info.encoder_id))
    config.write_private(folder / "weights.pt", lambda tmp: shutil.copyfile(run / "best.pt", tmp))
    if (run / "head.pt").is_file():
        config.write_private(folder / "head.pt", lambda tmp: shutil.copyfile(run / "head.pt", tmp))
    doc = {
        "encoder_id": info.encoder_id,
        "arch": info.arch,
        "normalize": info.normalize,
        "threshold": info.threshold,
        "source": str(run.resolve()),
    }
    config.write_private(folder / "config.json", json.dumps(doc, indent=1))
    return installed(info.encoder_id)


def installed_state_dict(encoder_id: str) -> tuple[EncoderInfo, dict[str, torch.Tensor]]:
    info = installed(encoder_id)
    try:
        state = torch.load(info.folder / "weights.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise EncoderError(f"{info.folder / 'weights.pt'} is damaged ({exc})") from None
    return info, state
