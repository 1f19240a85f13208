"""Verification as binary classification: P(same person | f1, f2) from a trained head.

The alternative to thresholding ||f1 - f2||: a logistic regression on |f1 - f2| and
(f1 - f2)^2, which can weigh the 128 dimensions unequally (the Siamese "binary"
formulation). It is fitted on the site's own pairs, per encoder, and kept beside that
encoder's weights. A face is accepted when the probability reaches ``min_probability``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from accessctl import config
from accessctl.errors import AccessctlError, EncoderError
from accessctl.identity.architectures import BinaryHead
from accessctl.identity.installed import encoder_folder

HEAD_FILE = "head.pt"


def head_path(encoder_id: str) -> Path:
    return encoder_folder(encoder_id) / HEAD_FILE


def load_head(encoder_id: str) -> BinaryHead:
    """The fitted head of an installed encoder; a clear error when there is none."""
    path = head_path(encoder_id)
    if not path.is_file():
        raise EncoderError(
            f"no binary verification head for encoder {encoder_id!r}; fit one on your own pairs with "
            "`accessctl encoder fit-head --pairs PAIRS.csv`"
        )
    return load_head_file(path)


def load_head_file(path: Path) -> BinaryHead:
    if not path.is_file():
        raise EncoderError(f"{path}: no binary verification head (train with --loss binary)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        inputs = state["linear.weight"].shape[1]
        head = BinaryHead(inputs // 2 if inputs == 256 else inputs, squared=inputs == 256)
        head.load_state_dict(state)
    except Exception as exc:  # a damaged file raises many types
        raise EncoderError(f"{path} is damaged ({exc})") from None
    return head.eval()


def save_head(encoder_id: str, head: BinaryHead) -> Path:
    path = head_path(encoder_id)
    config.private_dir(path.parent)
    config.write_private(path, lambda tmp: torch.save(head.state_dict(), tmp))
    return path


def same_probability(head: BinaryHead, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """P(same person) for each row pair of two (N, 128) descriptor arrays."""
    ta = torch.from_numpy(np.asarray(a, np.float32).reshape(-1, head.linear.in_features // (2 if head.squared else 1)))
    tb = torch.from_numpy(np.asarray(b, np.float32).reshape(ta.shape))
    with torch.inference_mode():
        return torch.sigmoid(head(ta, tb)).numpy().astype(np.float64)


def fit_head(a: np.ndarray, b: np.ndarray, same: np.ndarray, *, l2: float = 1e-4, seed: int = 0) -> BinaryHead:
    """Logistic regression on the pair features, both classes weighted equally.

    Full-batch L-BFGS: a convex problem over a few thousand pairs, solved in seconds,
    with a little L2 so that perfectly separable site data still gives finite weights.
    """
    same = np.asarray(same, bool)
    if same.all() or not same.any():
        raise AccessctlError("fitting the head needs both same-person and different-person pairs")
    torch.manual_seed(seed)
    head = BinaryHead(a.shape[1])
    fa, fb = torch.from_numpy(np.asarray(a, np.float32)), torch.from_numpy(np.asarray(b, np.float32))
    target = torch.from_numpy(same.astype(np.float32))
    weight = torch.where(target > 0, 0.5 / target.sum(), 0.5 / (1 - target).sum())
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (F.binary_cross_entropy_with_logits(head(fa, fb), target, reduction="none") * weight).sum()
        loss = loss + l2 * head.linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return head.eval()
