"""The liveness model: pretrained CNNs on each frame, a GRU over the clip.

Split in two so the kiosk pays for the CNNs once per frame: :class:`FrameCNN` runs as
frames arrive and its outputs are kept in each track's rolling window;
:class:`SequenceHead` runs the GRU over the window (cheap) when a verdict is wanted.

The head is a correction on top of the pretrained CNNs, not a replacement: its output
is ``scale * mean_t(frame logit) + bias + gru_term``, and a fresh head (scale 1, bias
0, a zero last layer) is exactly the CNNs' own score averaged over the window. What
training adds has to beat that, measured across sources, or it is not shipped.
Model definitions only; weights: :mod:`.weights`.
"""

from __future__ import annotations

import torch
from torch import nn

from accessctl.liveness.features import N_CUES
from accessctl.liveness.minifasnet import EMBEDDING, LAYERS, LIVE_CLASS, MiniFASNet

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
        for net, x in zip(self.nets, inputs):
            e, logits = net(x, start)
            embs.append(e)
            probs.append(torch.softmax(logits, dim=1)[:, LIVE_CLASS])
        p = torch.stack(probs, 1)
        return torch.cat([_live_logit(p.mean(1, keepdim=True)), _live_logit(p)] + embs, dim=1)


class SequenceHead(nn.Module):
    def __init__(self, hidden: int = 8, proj: int = 0, dropout: float = 0.2) -> None:
        """``proj``: how many dimensions of the CNN embeddings the GRU sees (0: none,
        only the CNNs' live logits and the landmark cues)."""
        super().__init__()
        self.proj: nn.Module | None = nn.Linear(N_CNNS * EMBEDDING, proj) if proj else None
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(proj + 1 + N_CNNS + N_CUES, hidden, batch_first=True)
        self.out = nn.Linear(hidden, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.scale = nn.Parameter(torch.ones(()))
        self.bias = nn.Parameter(torch.zeros(()))

    def forward(self, features: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        """(B, T, FEATURE_DIM) and (B, T, N_CUES) -> (B,) logits, higher = live."""
        logits = features[..., : 1 + N_CNNS]
        parts = [logits / LOGIT_CLAMP, cues]
        if self.proj is not None:
            parts.insert(0, self.dropout(self.proj(features[..., 1 + N_CNNS:])))
        out, _ = self.gru(torch.cat(parts, dim=-1))
        base = logits[..., 0].mean(dim=1)
        return self.scale * base + self.bias + self.out(out.mean(dim=1)).squeeze(-1)
