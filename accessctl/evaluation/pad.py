"""Presentation attack detection figures (ISO/IEC 30107-3): APCER per attack, BPCER, ACER.

Scores are P(live) per presentation; a presentation with no face is an error for its
own label, never dropped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from accessctl.errors import AccessctlError


def _pad_scores(scores: Sequence[float | None], live: np.ndarray) -> np.ndarray:
    """Clip scores with a missing face made an error for the clip's own label:
    a live clip scores 0 (refused), an attack 1 (accepted)."""
    return np.array(
        [(0.0 if is_live else 1.0) if s is None else float(s) for s, is_live in zip(scores, live, strict=True)]
    )


def threshold_at_eer(scores: Sequence[float | None], live: Sequence[bool]) -> float:
    """The P(live) threshold where attacks accepted and live clips refused balance.

    Where a range of thresholds balances them equally well (separable clips), the
    middle of that range in log-odds: its ends sit on one clip each.
    """
    is_live = np.asarray(live, bool)
    s = _pad_scores(scores, is_live)
    if is_live.all() or not is_live.any():
        raise AccessctlError("choosing a threshold needs both live and attack clips")
    logit = np.log(np.clip(s, 1e-6, 1 - 1e-6) / (1 - np.clip(s, 1e-6, 1 - 1e-6)))
    u = np.unique(logit)
    candidates = np.sort(np.concatenate([u, (u[:-1] + u[1:]) / 2]))

    def gap(t: float) -> float:
        return abs(float((logit[~is_live] >= t).mean()) - float((logit[is_live] < t).mean()))

    gaps = np.array([gap(t) for t in candidates])
    top = np.flatnonzero(np.isclose(gaps, gaps.min()))
    runs = np.split(top, np.flatnonzero(np.diff(top) > 1) + 1)
    widest = max(runs, key=lambda r: candidates[r[-1]] - candidates[r[0]])
    lo = candidates[widest[0] - 1] if widest[0] > 0 else candidates[widest[0]]  # the range is open below
    t = (lo + candidates[widest[-1]]) / 2
    return float(1 / (1 + np.exp(-t)))


def pad_metrics(scores: Sequence[float | None], live: Sequence[bool], attacks: Sequence[str], threshold: float) -> dict:
    """APCER per attack type, BPCER, ACER, AUC and EER of clip-level P(live) scores.

    ACER is the mean of the worst attack type's APCER and the BPCER. A clip in which no
    face was found counts as an error for its label, never silently dropped.
    """
    is_live = np.asarray(live, bool)
    s = _pad_scores(scores, is_live)
    accepted = s >= threshold
    kinds = np.asarray(attacks)
    apcer = {str(a): float(accepted[(kinds == a) & ~is_live].mean()) for a in sorted(set(kinds[~is_live]))}
    bpcer = float((~accepted[is_live]).mean()) if is_live.any() else 0.0
    worst = max(apcer.values()) if apcer else 0.0
    auc = eer = float("nan")
    if is_live.any() and (~is_live).any():
        g, i = s[is_live], s[~is_live]
        auc = float(((g[:, None] > i[None, :]).mean() + 0.5 * (g[:, None] == i[None, :]).mean()))
        ts = np.unique(s)
        far = np.array([(i >= t).mean() for t in ts])
        frr = np.array([(g < t).mean() for t in ts])
        k = int(np.argmin(np.abs(far - frr)))
        eer = float((far[k] + frr[k]) / 2)
    return {
        "clips": int(len(s)),
        "no_face": int(sum(x is None for x in scores)),
        "bpcer": bpcer,
        "apcer": apcer,
        "acer": (worst + bpcer) / 2,
        "auc": auc,
        "eer": eer,
        "threshold": float(threshold),
    }
