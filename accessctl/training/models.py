"""The encoder as trained: an architecture plus its input normalisation.

The architectures themselves are in :mod:`accessctl.identity.architectures` (the kiosk
loads trained runs without importing training code). Checkpoints are plain state
dicts (see trainer.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from accessctl.identity.architectures import SmallFaceNet, build
from accessctl.identity.resnet import DlibResNet


class Embedder(nn.Module):
    """An architecture plus the input normalisation and optional L2 normalisation."""

    def __init__(self, arch: str, normalize: bool) -> None:
        super().__init__()
        self.arch = arch
        self.normalize = normalize
        self.net: SmallFaceNet | DlibResNet = build(arch)

    def forward(self, chips_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        e = self.net(DlibResNet.preprocess(chips_uint8_nhwc))
        return F.normalize(e, dim=1) if self.normalize else e
