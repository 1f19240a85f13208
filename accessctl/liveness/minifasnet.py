"""MiniFASNet, Minivision's pretrained per-frame anti-spoofing CNNs, as torch modules.

Architecture only (weights: :mod:`.weights`). The layer names follow the published
state dicts (Silent-Face-Anti-Spoofing, ``src/model_lib/MiniFASNet.py``, Apache-2.0)
so that those files load as they are; the code is ours. A MobileFaceNet-style
network: a strided stem, depthwise-separable residual stages, a 5x5 depthwise
"global" convolution for an 80x80 input, a 128-D embedding (``linear`` + ``bn``) and
three logits (``prob``), of which class 1 is a live face.

Two variants are shipped, each trained on its own crop of the detector's box:
MiniFASNetV2 on 2.7x the box, MiniFASNetV1SE (squeeze-excitation in the last block
of each stage) on 4.0x.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT = 80  # both shipped models take an 80x80 crop
LIVE_CLASS = 1
EMBEDDING = 128

# Channel plans ("keep" lists of the original): for each layer, how many channels
# pruning kept. V2 was pruned differently from V1 (and V1SE, which shares V1's plan).
_PLAN_V1 = [
    32,
    32,
    103,
    103,
    64,
    13,
    13,
    64,
    26,
    26,
    64,
    13,
    13,
    64,
    52,
    52,
    64,
    231,
    231,
    128,
    154,
    154,
    128,
    52,
    52,
    128,
    26,
    26,
    128,
    52,
    52,
    128,
    26,
    26,
    128,
    26,
    26,
    128,
    308,
    308,
    128,
    26,
    26,
    128,
    26,
    26,
    128,
    512,
    512,
]
_PLAN_V2 = [
    32,
    32,
    103,
    103,
    64,
    13,
    13,
    64,
    13,
    13,
    64,
    13,
    13,
    64,
    13,
    13,
    64,
    231,
    231,
    128,
    231,
    231,
    128,
    52,
    52,
    128,
    26,
    26,
    128,
    77,
    77,
    128,
    26,
    26,
    128,
    26,
    26,
    128,
    308,
    308,
    128,
    26,
    26,
    128,
    26,
    26,
    128,
    512,
    512,
]


# The convolutional layers in the order they run; then ``linear``, ``bn`` and ``prob``.
LAYERS = ("conv1", "conv2_dw", "conv_23", "conv_3", "conv_34", "conv_4", "conv_45", "conv_5", "conv_6_sep", "conv_6_dw")


class _ConvBN(nn.Module):
    """Convolution and batch norm, with a PReLU unless it is a linear (projection) layer."""

    def __init__(
        self, cin: int, cout: int, kernel: int = 1, stride: int = 1, padding: int = 0, groups: int = 1, act: bool = True
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.prelu: nn.Module = nn.PReLU(cout) if act else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(self.bn(self.conv(x)))


class _SE(nn.Module):
    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        mid = channels // reduction
        self.fc1 = nn.Conv2d(channels, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.fc2 = nn.Conv2d(mid, channels, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = x.mean(dim=(2, 3), keepdim=True)
        w = torch.sigmoid(self.bn2(self.fc2(torch.relu(self.bn1(self.fc1(w))))))
        return x * w


class _DepthWise(nn.Module):
    """Expand (1x1), depthwise 3x3, project (1x1, linear); residual when the shape stays."""

    def __init__(self, cin: int, mid: int, cout: int, stride: int, residual: bool, se: bool = False) -> None:
        super().__init__()
        self.conv = _ConvBN(cin, mid)
        self.conv_dw = _ConvBN(mid, mid, 3, stride, 1, groups=mid)
        self.project = _ConvBN(mid, cout, act=False)
        self.residual = residual
        self.se_module: nn.Module | None = _SE(cout) if se else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.conv_dw(self.conv(x)))
        if not self.residual:
            return y
        if self.se_module is not None:
            y = self.se_module(y)
        return x + y


class _Stage(nn.Module):
    def __init__(self, blocks: list[_DepthWise]) -> None:
        super().__init__()
        self.model = nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MiniFASNet(nn.Module):
    """Input (N, 3, 80, 80) float, **BGR, 0..255**; see :meth:`features`."""

    def __init__(self, plan: list[int], se: bool) -> None:
        super().__init__()
        k = plan
        self.conv1 = _ConvBN(3, k[0], 3, 2, 1)
        self.conv2_dw = _ConvBN(k[0], k[1], 3, 1, 1, groups=k[1])
        self.conv_23 = _DepthWise(k[1], k[2], k[4], stride=2, residual=False)

        def stage(first: int, n: int) -> _Stage:
            # Block i expands plan[first + 3i] -> plan[first + 3i + 1] and projects back to
            # plan[first + 3i + 3]; with SE, only a stage's last block has it.
            blocks = [
                _DepthWise(k[first + 3 * i], k[first + 3 * i + 1], k[first + 3 * i + 3], 1, True, se=se and i == n - 1)
                for i in range(n)
            ]
            return _Stage(blocks)

        self.conv_3 = stage(4, 4)
        self.conv_34 = _DepthWise(k[16], k[17], k[19], stride=2, residual=False)
        self.conv_4 = stage(19, 6)
        self.conv_45 = _DepthWise(k[37], k[38], k[40], stride=2, residual=False)
        self.conv_5 = stage(40, 2)
        self.conv_6_sep = _ConvBN(k[46], k[47])
        self.conv_6_dw = _ConvBN(k[47], k[48], 5, groups=k[48], act=False)  # 5x5 is the whole map at 80x80
        self.linear = nn.Linear(512, EMBEDDING, bias=False)
        self.bn = nn.BatchNorm1d(EMBEDDING)
        self.prob = nn.Linear(EMBEDDING, 3, bias=False)

    def layers(self, start: str = LAYERS[0], stop: str | None = None) -> list[nn.Module]:
        """The convolutional layers from ``start`` up to (not including) ``stop``, in order."""
        names = list(LAYERS)
        return [getattr(self, n) for n in names[names.index(start) : names.index(stop) if stop else None]]

    def embedding(self, x: torch.Tensor, start: str = LAYERS[0]) -> torch.Tensor:
        """``x`` is the input, or with ``start`` the output of the layer before it (training
        fine-tunes the last layers on the frozen ones' outputs, computed once)."""
        for layer in self.layers(start):
            x = layer(x)
        return self.bn(self.linear(x.flatten(1)))

    def forward(self, x: torch.Tensor, start: str = LAYERS[0]) -> tuple[torch.Tensor, torch.Tensor]:
        """The 128-D embedding and the three class logits (``start``: see :meth:`embedding`)."""
        e = self.embedding(x, start)
        return e, self.prob(e)


def minifasnet_v2() -> MiniFASNet:
    return MiniFASNet(_PLAN_V2, se=False)


def minifasnet_v1se() -> MiniFASNet:
    return MiniFASNet(_PLAN_V1, se=True)
