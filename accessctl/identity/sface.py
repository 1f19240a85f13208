"""SFace (OpenCV Zoo, Apache-2.0): a second pretrained 128-D encoder, run by torch.

SFace reads a 112x112 chip aligned on the ArcFace five-point template (eye
centres, nose tip, mouth corners). The gallery stores dlib's 150x150 chip of every
template, and the door makes the same chip, so SFace's chip is cut from that one by
one fixed similarity transform: the mean position of the five ArcFace points in the
dlib chip (measured over ORL's 400 faces) mapped onto the template. Enrolment, the
door and ``encoder use`` then all take one path, and a re-encoded gallery matches a
freshly enrolled one exactly. Measured on ORL's 3600 pairs: 99.83% at the authors'
threshold through this path, 99.94% with a per-face alignment from the landmarks.

The only file is OpenCV Zoo's int8 block-quantised ONNX graph, which OpenCV's DNN
module runs one face at a time at 13-25 ms. Its weights are dequantised once, by
our own reader (``onnx_format.py``), into the network of ``sface_net.py``; with the
batch norms folded and a frozen trace, torch runs it a little faster (measured side by
side: 25.8 against 29.7 ms a face, 20.3 in batches of 8; its float32 compute is the
floor either way), with descriptors within cosine 0.9999 of OpenCV's (tested).

Descriptors are L2-normalised, so the gallery's Euclidean search works unchanged:
the authors' rule, cosine >= 0.363, is distance <= sqrt(2 - 2 * 0.363).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from accessctl import config
from accessctl.errors import EncoderError
from accessctl.identity import onnx_format, sface_net
from accessctl.identity.onnx_format import constants, read_graph
from accessctl.identity.sface_net import CHIP, SFaceNet
from accessctl.torchscript import channels_last, channels_last_example, frozen
from accessctl.vision.faces import chip_batch

SFACE_ID = config.SFACE_ENCODER_ID
MODEL_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
MODEL_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
COSINE_THRESHOLD = 0.363  # the authors' "same person" rule
THRESHOLD = round(math.sqrt(2 - 2 * COSINE_THRESHOLD), 4)  # the same rule as a distance: 1.1287
# dlib chip (150x150) -> ArcFace chip (112x112); see the module docstring.
FROM_DLIB_CHIP = np.array([[0.70904, 0.00277, 3.3112], [-0.00277, 0.70904, 18.5629]])


def model_path() -> Path:
    return config.assets_dir() / "sface" / MODEL_FILE


def state_dict_from_onnx(data: bytes, net: SFaceNet | None = None) -> dict[str, torch.Tensor]:
    """``net``'s parameters (an SFaceNet; a new one when not given) from the ONNX file's
    bytes, dequantised to float32."""
    values = constants(read_graph(data))
    state: dict[str, torch.Tensor] = {}
    norms = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_var"}

    def take(ours: str, theirs: str, shape: tuple[int, ...] | None = None) -> None:
        if theirs not in values:
            raise EncoderError(f"SFace model: no {theirs} in the graph")
        array = values[theirs] if shape is None else values[theirs].reshape(shape)
        state[ours] = torch.from_numpy(np.ascontiguousarray(array, np.float32))

    net = net if net is not None else SFaceNet()
    for name in net.units:
        weight = f"{name}_conv2d_weight_reshaped"
        take(f"units.{name}.conv.weight", weight if weight in values else f"{name}_conv2d_weight")
        for ours, theirs in norms.items():
            take(f"units.{name}.bn.{ours}", f"{name}_batchnorm_{theirs}")
        take(f"units.{name}.act.weight", f"{name}_relu_gamma", (-1,))
    for head in ("bn1", "fc1"):
        for ours, theirs in norms.items():
            take(f"{head}.{ours}", f"{head}_{theirs}")
    take("fc.weight", "pre_fc1_weight_dequantized")
    take("fc.bias", "pre_fc1_bias_dequantized")
    expected = {k: tuple(v.shape) for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    got = {k: tuple(v.shape) for k, v in state.items()}
    if got != expected:
        wrong = sorted(k for k in expected if got.get(k) != expected[k])
        raise EncoderError(f"SFace model: the graph does not fit the network ({', '.join(wrong[:3])})")
    return state


def load_sface_net() -> torch.nn.Module:
    """The shipped file, checked by hash, as a fused network frozen for inference (the
    trace made once and kept: see :func:`~accessctl.torchscript.frozen`)."""
    path = model_path()
    config.check_model_file(path, MODEL_SHA256, "SFace model", EncoderError)

    def build() -> torch.nn.Module:
        net = SFaceNet()
        net.load_state_dict(state_dict_from_onnx(path.read_bytes(), net), strict=False)
        return channels_last(net.eval().fused())

    return frozen("sface", build, channels_last_example(CHIP), [MODEL_SHA256], (sface_net, onnx_format))


class SFaceEncoder:
    """Same interface as :class:`accessctl.identity.encoders.Encoder`: 150x150 RGB chips in."""

    encoder_id = SFACE_ID
    dim = 128
    normalize = True

    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size = batch_size
        self._model = load_sface_net()

    @staticmethod
    def chip(dlib_chip: np.ndarray) -> np.ndarray:
        """SFace's 112x112 RGB input from a dlib chip (RGB)."""
        return cv2.warpAffine(dlib_chip, FROM_DLIB_CHIP, (CHIP, CHIP), flags=cv2.INTER_LINEAR)

    def encode(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB dlib chips -> (N, 128) unit-length float32 descriptors."""
        chips = chip_batch(chips)
        out = np.empty((len(chips), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                part = np.stack([self.chip(c) for c in chips[start : start + self.batch_size]])
                x = SFaceNet.preprocess(torch.from_numpy(part)).contiguous(memory_format=torch.channels_last)
                out[start : start + len(part)] = F.normalize(self._model(x), dim=1).numpy()
        return out
