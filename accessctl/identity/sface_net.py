"""SFace's network (OpenCV Zoo's ``face_recognition_sface_2021dec``) as a torch module:
the definition only; the weights come from the shipped ONNX file (``sface.py``).

A MobileNet-like stack on a 112x112 RGB chip: a 3x3 convolution, then thirteen
depthwise-3x3 + pointwise-1x1 pairs (four of them halving the size), each convolution
followed by a batch norm and a PReLU; then a batch norm, a fully connected layer over
the whole 7x7x1024 map (not a pooled vector: where on the face a feature is matters)
and a last batch norm. Its graph in ONNX names each layer ``conv_<k>[_dw]``; the
module keeps those names so that the mapping is one line per tensor.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

CHIP = 112
MAP = CHIP // 16  # the side of the last feature map (7), which the fully connected layer reads whole
# (input channels, output channels, stride of the depthwise convolution), units 2 to 14
LAYOUT: list[tuple[int, int, int]] = (
    [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)]
    + [(512, 512, 1)] * 5
    + [(512, 1024, 2), (1024, 1024, 1)]
)
BN_EPS = 1e-3
HEAD_EPS = 2e-5


class ConvUnit(nn.Module):
    """convolution (no bias), batch norm, PReLU: ``bias`` is set only once the norm is folded in."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups, bias=False)
        self.bn: nn.Module = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SFaceNet(nn.Module):
    """(N, 3, 112, 112) RGB, scaled to [-1, 1) (:meth:`preprocess`) -> (N, 128), not normalised."""

    embedding_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.units = nn.ModuleDict({"conv_1": ConvUnit(3, 32, 3, 1)})
        for k, (cin, cout, stride) in enumerate(LAYOUT, start=2):
            self.units[f"conv_{k}_dw"] = ConvUnit(cin, cin, 3, stride, groups=cin)
            self.units[f"conv_{k}"] = ConvUnit(cin, cout, 1, 1)
        self.bn1: nn.Module = nn.BatchNorm2d(1024, eps=HEAD_EPS)
        self.fc = nn.Linear(1024 * MAP * MAP, self.embedding_dim)
        self.fc1: nn.Module = nn.BatchNorm1d(self.embedding_dim, eps=HEAD_EPS)

    @staticmethod
    def preprocess(chips: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC RGB chips -> the float NCHW input: (x - 127.5) / 128, as the graph does."""
        return (chips.permute(0, 3, 1, 2).float() - 127.5) * 0.0078125

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for unit in self.units.values():
            x = unit(x)
        x = self.bn1(x)
        return self.fc1(self.fc(torch.flatten(x, 1)))

    def fused(self) -> SFaceNet:
        """A copy for inference with every batch norm folded into the layer next to it
        (the same outputs to float rounding; half the passes over memory)."""
        model = copy.deepcopy(self).eval()
        with torch.no_grad():
            for unit in model.units.values():
                assert isinstance(unit, ConvUnit)
                scale, shift = _affine(unit.bn)
                conv = unit.conv
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                conv.bias = nn.Parameter(shift.clone())
                unit.bn = nn.Identity()
            # bn1 before the fully connected layer: per channel of the flattened map
            scale, shift = _affine(model.bn1)
            w = model.fc.weight
            model.fc.bias.add_(w @ shift.repeat_interleave(MAP * MAP))
            w.mul_(scale.repeat_interleave(MAP * MAP).view(1, -1))
            model.bn1 = nn.Identity()
            # fc1 after it: per output
            scale, shift = _affine(model.fc1)
            model.fc.weight.mul_(scale.view(-1, 1))
            model.fc.bias.mul_(scale).add_(shift)
            model.fc1 = nn.Identity()
        return model


def _affine(bn: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch norm in eval mode as y = x * scale + shift."""
    assert isinstance(bn, nn.BatchNorm2d | nn.BatchNorm1d) and bn.running_var is not None
    assert bn.running_mean is not None
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale
