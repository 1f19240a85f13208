"""dlib's 128-D face metric ResNet as a torch module (definition only; see weights.py).

The network (from dlib's ``dnn_face_recognition_ex.cpp``) is a ResNet-34-like stack of
29 convolutions on a 150x150 RGB chip. Two dlib habits are reproduced exactly because
each moves descriptors past the 0.6 match threshold when got wrong: strided
convolutions and pools have no padding, and a residual sum of two different-sized
tensors pads the smaller one with zeros at the end (bottom/right, extra channels last).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from accessctl.identity.dlib_format import INPUT_MEAN


def input_mean() -> torch.Tensor:
    return torch.tensor(INPUT_MEAN).view(1, 3, 1, 1)


class Affine(nn.Module):
    """Per-channel scale and shift (dlib's ``affine`` layer: a frozen batch norm)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None  # every convolution here has one (_conv)
    return conv.bias


def _conv(cin: int, cout: int, k: int, stride: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2 if stride == 1 else 0, bias=True)


def dlib_add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a + b where the smaller tensor is zero-padded at the end of each dimension."""
    if a.shape == b.shape:
        return a + b
    c, h, w = (max(a.shape[i], b.shape[i]) for i in (1, 2, 3))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class Residual(nn.Module):
    """relu(shortcut(x) (+) block(x)); with ``down`` the shortcut is a 2x2 average pool."""

    def __init__(self, cin: int, cout: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.conv1 = _conv(cin, cout, 3, 2 if down else 1)
        self.affine1 = Affine(cout)
        self.conv2 = _conv(cout, cout, 3, 1)
        self.affine2 = Affine(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.affine2(self.conv2(F.relu(self.affine1(self.conv1(x)))))
        shortcut = F.avg_pool2d(x, 2, 2) if self.down else x
        return F.relu(dlib_add(shortcut, y))


# (output channels, downsample first) for each residual unit, in forward order.
LAYOUT: list[tuple[int, bool]] = (
    [(32, False)] * 3
    + [(64, True)]
    + [(64, False)] * 3
    + [(128, True)]
    + [(128, False)] * 2
    + [(256, True)]
    + [(256, False)] * 2
    + [(256, True)]
)


class DlibResNet(nn.Module):
    """Maps a 150x150 RGB face chip to a 128-D descriptor (not L2-normalised)."""

    embedding_dim = 128
    input_size = 150

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = _conv(3, 32, 7, 2)
        self.affine1 = Affine(32)
        units, cin = [], 32
        for cout, down in LAYOUT:
            units.append(Residual(cin, cout, down))
            cin = cout
        self.layers = nn.Sequential(*units)
        self.fc = nn.Linear(256, self.embedding_dim, bias=False)

    @staticmethod
    def preprocess(chips: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC RGB chips -> the float NCHW input dlib feeds its network."""
        return (DlibResNet.preprocess_raw(chips) - input_mean().to(chips.device)) / 256.0

    @staticmethod
    def preprocess_raw(chips: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC RGB chips -> float NCHW 0-255, the input of :meth:`fused` models."""
        return chips.permute(0, 3, 1, 2).float()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.affine1(self.conv1(x)))
        x = F.max_pool2d(x, 3, 2)
        x = self.layers(x)
        x = x.mean(dim=(2, 3))
        return self.fc(x)

    def fused(self) -> "DlibResNet":
        """A copy for inference that takes raw 0-255 RGB floats (``preprocess_raw``).

        Every affine is folded into the convolution before it, and the input
        normalisation into the first convolution (exact: it has no padding, so no
        zero-padded border would see a different value). Same outputs to float
        rounding, a third fewer memory passes.
        """
        model = copy.deepcopy(self).eval()
        with torch.no_grad():
            w = model.conv1.weight
            _bias(model.conv1).sub_((w * (input_mean() / 256.0)).sum(dim=(1, 2, 3)))
            w.div_(256.0)
        pairs: list[tuple[nn.Conv2d, str, nn.Module]] = [(model.conv1, "affine1", model)]
        for unit in model.layers:
            assert isinstance(unit, Residual)
            pairs += [(unit.conv1, "affine1", unit), (unit.conv2, "affine2", unit)]
        with torch.no_grad():
            for conv, name, owner in pairs:
                aff = getattr(owner, name)
                conv.weight.mul_(aff.weight.view(-1, 1, 1, 1))
                _bias(conv).mul_(aff.weight).add_(aff.bias)
                setattr(owner, name, nn.Identity())
        return model
