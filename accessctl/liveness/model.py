"""The liveness model: pretrained CNNs on each frame, a GRU over the face's recent steps.

Two questions, two parts. :class:`FrameCNN` asks how each frame looks (the texture of
a print or a screen): it runs as frames arrive, and its combined live logit averaged
over a short window (:func:`texture_logit`) is the texture score. :class:`MotionHead`
asks how the face moved: a GRU over the steps of the face's last second (the CNNs'
logits, landmark and dense motion cues per step, :func:`step_inputs`). A face is live
when both say so; see :mod:`accessctl.liveness`. Model definitions only; weights:
:mod:`.weights`.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from accessctl.liveness.features import N_CUES
from accessctl.liveness.minifasnet import EMBEDDING, LAYERS, LIVE_CLASS, MiniFASNet
from accessctl.liveness.motion import N_STEP

N_CNNS = 2
# Per frame: the combined live logit, each CNN's live logit, each CNN's embedding.
FEATURE_DIM = 1 + N_CNNS + N_CNNS * EMBEDDING
LOGIT_CLAMP = 10.0  # one overconfident frame must not outvote a window


def _live_logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-6, 1 - 1e-6)
    return (torch.log(p) - torch.log1p(-p)).clamp(-LOGIT_CLAMP, LOGIT_CLAMP)


class FrameCNN(nn.Module):
    """Both MiniFASNets on a frame's two crops -> (N, FEATURE_DIM).

    The combined score is the original code's rule: the mean of the two models' P(live).
    """

    def __init__(self, v2: MiniFASNet, v1se: MiniFASNet) -> None:
        super().__init__()
        self.nets = nn.ModuleList([v2, v1se])

    def minifasnets(self) -> list[MiniFASNet]:
        return [n for n in self.nets if isinstance(n, MiniFASNet)]

    @staticmethod
    def inputs(crops: torch.Tensor) -> list[torch.Tensor]:
        """(N, N_CNNS, 80, 80, 3) BGR uint8 crops -> each net's (N, 3, 80, 80) input."""
        x = crops.permute(0, 1, 4, 2, 3).float()  # 0..255, no normalisation: the models' convention
        return [x[:, i] for i in range(N_CNNS)]

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, N_CNNS, 80, 80, 3) BGR uint8 -> features."""
        return self.from_inputs(self.inputs(crops))

    def from_inputs(self, inputs: list[torch.Tensor], start: str = LAYERS[0]) -> torch.Tensor:
        """Features from each net's input, or (``start``) from the outputs of each net's
        layers before that one (training fine-tunes the last layers on those, computed once)."""
        embs, probs = [], []
        for net, x in zip(self.nets, inputs, strict=True):
            e, logits = net(x, start)
            embs.append(e)
            probs.append(torch.softmax(logits, dim=1)[:, LIVE_CLASS])
        p = torch.stack(probs, 1)
        return torch.cat([_live_logit(p.mean(1, keepdim=True)), _live_logit(p)] + embs, dim=1)


class MotionHead(nn.Module):
    """The GRU over a face's recent steps: does it move like a head?

    Each step (a frame about :data:`.features.STEP_S` after the one before) is the
    CNNs' live logits, the landmark cues and the dense motion cues of :mod:`.motion`
    (:func:`step_inputs`). The GRU reads a face's history, up to about a second, and
    its last state gives the logit of "evidence of life so far": trained on live
    faces against pictures animated every way a hand, a stand, a screen or a program
    would, it stays low until the face has done something only a head does, so a low
    score means "no evidence yet", not "a photo". Refusing photos and screens on how
    they look is the CNNs' part (the texture score), not this head's.

    Inputs are standardised by a fixed mean and scale computed on the training data,
    and multiplied by ``use`` (1 for an input the head reads, 0 for one it was trained
    without): buffers saved with the weights in the plain state dict.
    """

    mean: torch.Tensor
    scale: torch.Tensor
    use: torch.Tensor

    def __init__(self, hidden: int = 16, inputs: int | None = None) -> None:
        super().__init__()
        n = STEP_INPUTS if inputs is None else inputs
        self.register_buffer("mean", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))
        self.register_buffer("use", torch.ones(n))
        self.gru = nn.GRU(n, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)

    def forward(self, steps: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, STEP_INPUTS) -> (B,) logits, higher = live. ``lengths``: how many of
        each row's steps are real (the rest padding at the end); default all."""
        x = (steps - self.mean) / self.scale * self.use
        if lengths is None:
            _, h = self.gru(x)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            _, h = self.gru(packed)
        return self.out(h[-1]).squeeze(-1)


class MotionVote(nn.Module):
    """Motion heads trained on different draws of attacks, each at its own threshold:
    the face moved like a head only when every head says so.

    Heads trained on different pictures and families fail on different pictures (one
    granted a photo wobbled in the hand that another refused; the other granted
    animated pictures of people the first had never seen), so requiring all of them
    closes what each leaves open, at the price of live faces that only one would
    take (asked to turn their head instead). The output is a logit whose zero is
    where the least convinced head sits at its own threshold: the vote's threshold
    is P = 0.5. ``offsets`` (each head's threshold as a logit) are saved with the
    weights.
    """

    offsets: torch.Tensor

    def __init__(self, heads: list[MotionHead], thresholds: list[float]) -> None:
        super().__init__()
        if len(heads) != len(thresholds) or not heads:
            raise ValueError("a vote needs one threshold per head, and at least one head")
        self.heads = nn.ModuleList(heads)
        self.register_buffer("offsets", threshold_logits(thresholds))

    def forward(self, steps: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        margins = [head(steps, lengths) - self.offsets[i] for i, head in enumerate(self.heads)]
        return torch.stack(margins, -1).min(-1).values


def threshold_logits(thresholds: list[float]) -> torch.Tensor:
    """Probabilities as the logits a vote's heads are measured against."""
    t = torch.tensor(thresholds, dtype=torch.float64)
    return torch.log(t / (1 - t)).float()


def texture_logit(features: torch.Tensor) -> torch.Tensor:
    """(..., T, FEATURE_DIM) -> (...,) the CNNs' combined live logit averaged over the window."""
    return features[..., 0].mean(dim=-1)


# Per step: the combined and per-CNN live logits (scaled), the time since the step
# before in steps (0: none), the landmark cues and the dense motion cues.
STEP_INPUTS = 1 + N_CNNS + 1 + N_CUES + N_STEP


def step_inputs(feature: np.ndarray, dt: float, cues: np.ndarray | None, dense: np.ndarray | None) -> np.ndarray:
    """One step's head input from its CNN ``feature`` (FEATURE_DIM) and, when the step
    has a step before it (``dt`` steps earlier), its landmark ``cues`` (N_CUES) and
    ``dense`` motion cues (N_STEP); without one those are zero, and so is ``dt``."""
    out = np.zeros(STEP_INPUTS, np.float32)
    out[: 1 + N_CNNS] = np.asarray(feature[: 1 + N_CNNS], np.float32) / LOGIT_CLAMP
    if cues is not None and dense is not None:
        out[1 + N_CNNS] = dt
        out[2 + N_CNNS : 2 + N_CNNS + N_CUES] = cues
        out[2 + N_CNNS + N_CUES :] = dense
    return out
