"""Every threshold's one home: the match threshold (its per-encoder default and safe
ceiling, a site's override in ``[match]``, a trained encoder's own) and the liveness
threshold (the shipped model's, a site's override in ``[liveness]``).

The encoder owns its scale: distances of two encoders are not comparable, so a
default and a ceiling belong to an encoder id, and a threshold chosen for one encoder
is never used for another.
"""

from __future__ import annotations

import math
from typing import Any

from accessctl.config import PRETRAINED_ENCODER_ID, SFACE_ENCODER_ID, Settings
from accessctl.errors import AccessctlError

# The distance threshold each built-in encoder runs at while [match] threshold is 0
# (not set). Chosen for a door on the shared pair lists (README, "Identity figures"):
# the lowest false-accept rate that keeps single-photo false rejects reasonable. SFace
# at its authors' 1.1287 let 4.4% of different-person pairs of laptop-webcam frames
# match (32% of strangers 1:N against 13 people); at 1.0: 0.18% of pairs, 1.5% 1:N,
# 0% on ORL and NUAA's East-Asian subjects. dlib keeps its own 0.6 so that old
# galleries work as before: it is not safe for everyone (74% of NUAA's different-person
# pairs match at 0.6) and `accessctl encoder use sface` switches.
DEFAULT_THRESHOLD = {PRETRAINED_ENCODER_ID: 0.6, SFACE_ENCODER_ID: 1.0}
# The largest match threshold each built-in encoder may run at: past it, different
# people start to match each other. dlib at 0.63 accepts about 4% of ORL's
# different-person pairs (1.9% at 0.6, 22% at 0.7); SFace at 1.10 2% of the webcam
# pairs (0.06% of ORL's). One bad setting must not let a stranger in as somebody.
SAFE_THRESHOLD = {PRETRAINED_ENCODER_ID: 0.63, SFACE_ENCODER_ID: 1.10}


def default_threshold(encoder_id: str) -> float:
    """The distance threshold a built-in encoder runs at while ``[match] threshold`` is 0."""
    return DEFAULT_THRESHOLD[encoder_id]


def check_threshold(threshold: float, encoder_id: str) -> None:
    """Refuse, by name, a match threshold above the encoder's safe ceiling."""
    ceiling = SAFE_THRESHOLD.get(encoder_id)
    if not threshold > 0 or (ceiling is not None and threshold > ceiling):
        raise AccessctlError(
            f"[match] threshold {threshold:g} is above {ceiling:g}, the most encoder "
            f"{encoder_id} may run at (strangers would match); lower it or run `accessctl calibrate`"
            if ceiling is not None
            else f"[match] threshold {threshold:g} must be above 0"
        )


def check_trained_threshold(threshold: float, embeddings: Any, person_ids: Any, *, unit: bool) -> None:
    """Refuse a trained encoder's threshold that would let strangers in, measured on the
    gallery's own templates under that encoder (a trained space has no fixed ceiling).

    Refused: not a positive finite number; on the unit sphere, above sqrt(2) (orthogonal
    descriptors would match); at or above the largest distance any two templates can
    have (twice the largest norm: everyone matches everyone); at or above the distance
    between the two closest templates of different enrolled people (they would match
    each other)."""
    import numpy as np

    why = None
    e = np.asarray(embeddings, np.float64)
    if not (np.isfinite(threshold) and threshold > 0):
        why = "it is not a positive number"
    elif unit and threshold > math.sqrt(2):
        why = f"above {math.sqrt(2):.4f}, where unrelated unit descriptors match"
    elif len(e) and threshold >= 2 * float(np.linalg.norm(e, axis=1).max()):
        why = "every template would match every face"
    elif len(set(person_ids.tolist())) >= 2:
        d = np.linalg.norm(e[:, None] - e[None], axis=2)
        d[person_ids[:, None] == person_ids[None]] = np.inf
        closest = float(d.min())
        if threshold >= closest:
            why = f"two different enrolled people are only {closest:.4f} apart under this encoder"
    if why:
        raise AccessctlError(f"threshold {threshold:g} refused: {why}; nothing was changed")


def match_threshold(settings: Settings, encoder_id: str) -> float:
    """The distance threshold a gallery of ``encoder_id`` runs at under ``settings``.

    Distances of two encoders are on different scales, so a threshold set for one is
    never used for another: 0 means the encoder's own default, and a threshold that
    names the encoder it was chosen for ([match] encoder, written by `calibrate` and
    `encoder use`) is refused for any other. Fails closed, with one line saying why.
    """
    m = settings.match
    if m.threshold == 0:
        default = DEFAULT_THRESHOLD.get(encoder_id)
        if default is None:
            raise AccessctlError(
                f"[match] threshold is not set for encoder {encoder_id}; "
                "run `accessctl calibrate` or `accessctl encoder use` again"
            )
        return default
    if m.encoder and m.encoder != encoder_id:
        raise AccessctlError(
            f"[match] threshold {m.threshold:g} was chosen for encoder {m.encoder}, but the gallery "
            f"uses {encoder_id}; run `accessctl calibrate`, or set the threshold to 0 for the default"
        )
    check_threshold(m.threshold, encoder_id)
    return m.threshold


def liveness_threshold(settings: Settings, model_threshold: float) -> float:
    """The P(live) at or above which a face is live: ``[liveness] threshold``, or the
    model's own (``model_threshold``, chosen on cross-source scores) while it is 0."""
    return settings.liveness.threshold or model_threshold
