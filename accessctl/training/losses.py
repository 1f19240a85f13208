"""The Siamese losses of the product's design, on batches of embeddings.

- triplet: max(||f(A)-f(P)||^2 - ||f(A)-f(N)||^2 + alpha, 0) over mined triplets;
- contrastive (Hadsell et al. 2006): same person d^2, different max(m - d, 0)^2;
- binary: logistic regression on |f(x1) - f(x2)| (and optionally its square), i.e.
  verification as a two-class problem over pairs;
- identity (optional, beside any of the three): which of the training people a face is,
  by cosine softmax. Not a verification loss: it gives every face a target that all of
  its person's faces share, which a set of 30 people otherwise gives only through pairs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from accessctl.identity.architectures import BinaryHead
from accessctl.training import miners


def pairwise_sq_dist(emb: torch.Tensor) -> torch.Tensor:
    """(B, B) squared Euclidean distances, exact and differentiable (no sqrt of 0)."""
    diff = emb[:, None, :] - emb[None, :, :]
    return (diff * diff).sum(dim=-1)


def triplet_loss(
    emb: torch.Tensor, labels: torch.Tensor, margin: float, mining: str = "semi-hard"
) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean triplet loss over the triplets the miner picks; batch-all averages over the
    active (non-zero) triplets only, so easy ones do not dilute the gradient."""
    d = pairwise_sq_dist(emb)
    if mining == "batch-all":
        a, p, n = miners.batch_all(d, labels)
    elif mining == "batch-hard":
        a, p, n = miners.batch_hard(d, labels)
    elif mining == "semi-hard":
        a, p, n = miners.semi_hard(d, labels, margin)
    else:
        raise ValueError(f"unknown mining {mining!r}; use batch-all, batch-hard or semi-hard")
    if a.numel() == 0:
        return emb.sum() * 0.0, {"triplets": 0.0, "active": 0.0}
    losses = F.relu(d[a, p] - d[a, n] + margin)
    active = losses > 1e-12
    if mining == "batch-all":
        loss = losses[active].mean() if active.any() else losses.sum() * 0.0
    else:
        loss = losses.mean()
    return loss, {"triplets": float(a.numel()), "active": float(active.float().mean())}


def contrastive_loss(emb: torch.Tensor, labels: torch.Tensor, margin: float) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean over all pairs i < j of the batch."""
    d2 = pairwise_sq_dist(emb)
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=emb.device)
    same = labels[i] == labels[j]
    d2_ij = d2[i, j]
    d_ij = torch.sqrt(d2_ij + 1e-12)
    loss = torch.where(same, d2_ij, F.relu(margin - d_ij) ** 2)
    return loss.mean(), {"pairs": float(i.numel())}


def binary_loss(emb: torch.Tensor, labels: torch.Tensor, head: BinaryHead) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy of the head over all pairs of the batch, the two classes weighted equally."""
    i, j = torch.triu_indices(len(labels), len(labels), offset=1, device=emb.device)
    target = (labels[i] == labels[j]).float()
    logits = head(emb[i], emb[j])
    n_pos = target.sum().clamp(min=1)
    n_neg = (1 - target).sum().clamp(min=1)
    weight = torch.where(target > 0, 0.5 / n_pos, 0.5 / n_neg)
    loss = (F.binary_cross_entropy_with_logits(logits, target, reduction="none") * weight).sum()
    return loss, {"pairs": float(i.numel())}


LossFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class IdentityHead(nn.Module):
    """Cosine-softmax classifier over the training people: logits = scale * cos(f, w_c).

    On the unit sphere, like the distances the gallery uses; used in training only and
    thrown away after (the people it knows are not the ones the encoder will meet).
    """

    def __init__(self, dim: int, people: int, scale: float = 16.0) -> None:
        super().__init__()
        self.scale = scale
        self.weight = nn.Parameter(nn.Linear(dim, people, bias=False).weight.detach())

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.scale * F.normalize(emb, dim=1) @ F.normalize(self.weight, dim=1).t()


def identity_loss(emb: torch.Tensor, labels: torch.Tensor, head: IdentityHead) -> tuple[torch.Tensor, dict[str, float]]:
    """Mean cross-entropy of the person each face belongs to."""
    logits = head(emb)
    return F.cross_entropy(logits, labels.long()), {"accuracy": float((logits.argmax(1) == labels).float().mean())}
