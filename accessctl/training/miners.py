"""Online triplet mining: choosing (anchor, positive, negative) inside each P x K batch.

Random triplets are almost all easy (loss 0) once training has started, so the batch
is mined for the informative ones (Schroff et al., FaceNet; Hermans et al., "In
Defense of the Triplet Loss"). Every miner takes the batch's pairwise squared
distances and labels and returns index tensors ``(a, p, n)``. A batch where an anchor
has no other image of its person (no valid positive) contributes no triplet for it.
"""

from __future__ import annotations

import torch


def _masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
    return same & ~eye, ~same  # positive pairs (not self), negative pairs


def batch_all(sq_dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every valid triplet: a and p the same person (a != p), n another person."""
    pos, neg = _masks(labels)
    valid = pos[:, :, None] & neg[:, None, :]
    a, p, n = valid.nonzero(as_tuple=True)
    return a, p, n


def batch_hard(sq_dist: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One triplet per anchor: its farthest positive and its closest negative."""
    pos, neg = _masks(labels)
    has = pos.any(dim=1) & neg.any(dim=1)
    d = sq_dist.detach()
    hardest_p = torch.where(pos, d, torch.full_like(d, -torch.inf)).argmax(dim=1)
    hardest_n = torch.where(neg, d, torch.full_like(d, torch.inf)).argmin(dim=1)
    a = has.nonzero(as_tuple=True)[0]
    return a, hardest_p[a], hardest_n[a]


def semi_hard(
    sq_dist: torch.Tensor, labels: torch.Tensor, margin: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For each positive pair, the closest negative that is still farther than the positive
    but within the margin: d(a,p) < d(a,n) < d(a,p) + margin.

    Pairs with no such negative contribute no triplet (their negatives are either
    already past the margin, loss 0, or harder than the positive, which early in
    training collapses the embedding).
    """
    pos, neg = _masks(labels)
    d = sq_dist.detach()
    a, p = pos.nonzero(as_tuple=True)
    if a.numel() == 0:
        empty = torch.zeros(0, dtype=torch.long, device=labels.device)
        return empty, empty, empty
    d_ap = d[a, p][:, None]
    d_an = d[a]  # (pairs, B)
    window = neg[a] & (d_an > d_ap) & (d_an < d_ap + margin)
    candidate = torch.where(window, d_an, torch.full_like(d_an, torch.inf))
    n = candidate.argmin(dim=1)
    keep = window.any(dim=1)
    return a[keep], p[keep], n[keep]
