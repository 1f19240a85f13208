"""Moving a gallery to another encoder: every template re-encoded from its stored face.

Kept out of the command line so the rule (all or nothing, the threshold that comes
with the new encoder, a trained run installed only once it is validated) has one home.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from accessctl.config import Settings, check_settings
from accessctl.errors import AccessctlError
from accessctl.identity.encoders import (
    BUILTIN,
    load_encoder,
    load_run_encoder,
)
from accessctl.identity.installed import EncoderInfo, install, read_run
from accessctl.storage.gallery import Gallery
from accessctl.thresholds import check_trained_threshold, default_threshold


@dataclass(frozen=True)
class EncoderChoice:
    """What ``encoder use NAME`` would switch to."""

    name: str  # as given: a built-in name or a training run's folder
    encoder_id: str
    threshold: float  # a built-in's default, or the run's own (chosen on its training people)
    run: EncoderInfo | None  # None: a built-in encoder


def choose_encoder(name: str) -> EncoderChoice:
    if name in BUILTIN:
        return EncoderChoice(name, BUILTIN[name], default_threshold(BUILTIN[name]), None)
    info = read_run(name)
    return EncoderChoice(name, info.encoder_id, info.threshold, info)


def check_switchable(gallery: Gallery) -> None:
    """Refuses a gallery with people whose stored face is unknown: they cannot be re-encoded."""
    missing = gallery.without_chips()
    if missing:
        raise AccessctlError(
            f"{len(missing)} people were enrolled without a stored face (imported from an old export): "
            + ", ".join(p.employee_id for p in missing[:10])
            + "; re-enroll or remove them first"
        )


def switch_encoder(gallery: Gallery, choice: EncoderChoice, settings: Settings) -> int:
    """Re-encodes everyone with ``choice`` in one transaction and sets ``settings``'
    threshold to match (the caller saves them); returns the templates re-encoded.

    A built-in encoder runs at its own default; a run at the threshold it was trained
    with, refused when that threshold would not separate the gallery's own people.
    """
    check_switchable(gallery)
    encoder = load_encoder(choice.encoder_id) if choice.run is None else load_run_encoder(choice.name)
    settings.match.threshold, settings.match.encoder = (
        (0.0, "") if choice.run is None else (round(choice.threshold, 4), choice.encoder_id)
    )
    check_settings(settings)  # the configuration it will write, before anything is written
    check = None
    if choice.run is not None:
        unit = bool(choice.run.normalize)

        def check(embeddings: np.ndarray, person_ids: np.ndarray) -> None:
            check_trained_threshold(choice.threshold, embeddings, person_ids, unit=unit)
            install(choice.name)  # validated, before the gallery's write: a failed write leaves only unused files

    return gallery.reencode(choice.encoder_id, encoder.encode, check)
