"""The liveness model: a small CNN on each frame's context crop, a GRU over the clip.

Split in two so the kiosk pays for the CNN once per frame: :meth:`frame_features`
runs as frames arrive and its outputs are kept in each track's rolling window;
:meth:`clip_logit` runs the GRU over the window (cheap) when a verdict is wanted.
The geometric cues of :mod:`.features` join the CNN features at the GRU's input, so
the GRU weighs texture and motion together over time; neither alone is trusted.
Model definition only; weights are a plain state dict (see ``weights.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .features import CROP, N_CUES

# Per-channel mean and spread of face crops (0..255), fixed so that a checkpoint
# carries no data statistics of its own.
_MEAN = (128.0, 110.0, 100.0)
_STD = 64.0


def _block(cin: int, cout: int) -> list[nn.Module]:
    return [
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, groups=cout, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    ]


class LivenessNet(nn.Module):
    feature_dim = 64

    def __init__(self, width: int = 16, hidden: int = 48, dropout: float = 0.3) -> None:
        super().__init__()
        # Full resolution first layer (stride 1): halftone dots and moire live at the
        # pixel scale and vanish after a strided convolution.
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        chans = [width, width * 2, width * 4, width * 4, self.feature_dim // 2]
        layers: list[nn.Module] = []
        for cin, cout in zip(chans, chans[1:]):
            layers += _block(cin, cout)
        self.cnn = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(self.feature_dim + N_CUES, hidden, batch_first=True)
        self.frame_head = nn.Linear(self.feature_dim, 1)  # auxiliary per-frame score (training only)
        self.head = nn.Linear(hidden, 1)
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1))

    def frame_features(self, crops: torch.Tensor) -> torch.Tensor:
        """(N, CROP, CROP, 3) uint8 -> (N, feature_dim)."""
        x = (crops.permute(0, 3, 1, 2).float() - self.mean) / _STD
        x = self.cnn(self.stem(x))
        return torch.cat([x.mean(dim=(2, 3)), x.amax(dim=(2, 3))], 1)  # how much, and how strong at its peak

    def clip_logit(self, features: torch.Tensor, cues: torch.Tensor) -> torch.Tensor:
        """(B, T, feature_dim) and (B, T, N_CUES) -> (B,) logits, higher = live."""
        out, _ = self.gru(torch.cat([self.dropout(features), cues], dim=-1))
        return self.head(out.mean(dim=1)).squeeze(-1)

    def forward(self, crops: torch.Tensor, cues: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, CROP, CROP, 3) uint8 and (B, T, N_CUES) -> clip logits (B,), frame logits (B, T)."""
        b, t = crops.shape[:2]
        f = self.frame_features(crops.reshape(b * t, CROP, CROP, 3))
        frame = self.frame_head(f).view(b, t)
        return self.clip_logit(f.view(b, t, -1), cues), frame


def probability(logit: torch.Tensor) -> torch.Tensor:
    return F.sigmoid(logit)
