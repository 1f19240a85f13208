"""The Siamese encoder f(x): aligned face chip -> 128-D descriptor.

Two faces are the same person when ||f(a) - f(b)|| <= tau (0.6 for dlib's pretrained
network; 1.0 for SFace's unit-length descriptors, stricter than its authors' 1.1287:
see ``thresholds.DEFAULT_THRESHOLD``). :func:`load_encoder` gives the
process-wide instance of an encoder id: one of the two pretrained ones, or a trained
run installed with ``accessctl encoder use``.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from accessctl import config
from accessctl.identity.resnet import DlibResNet, input_mean
from accessctl.identity.sface import SFACE_ID, SFaceEncoder
from accessctl.identity.weights import PRETRAINED_ID, pretrained_state_dict
from accessctl.torchscript import trace_channels_last
from accessctl.vision.faces import chip_batch

if TYPE_CHECKING:
    from accessctl.identity.installed import EncoderInfo

__all__ = [
    "Encoder",
    "SFaceEncoder",
    "load_encoder",
    "load_run_encoder",
    "DlibResNet",
    "PRETRAINED_ID",
    "SFACE_ID",
    "BUILTIN",
]


class FaceEncoder(Protocol):
    """What matching needs of an encoder, whichever it is (dlib's ResNet, a trained
    run, SFace): aligned 150x150 RGB chips in, fixed-length descriptors out."""

    encoder_id: str
    normalize: bool

    @property
    def dim(self) -> int: ...

    def encode(self, chips: np.ndarray) -> np.ndarray: ...


class Encoder:
    """Batched inference on uint8 RGB chips of a network taking dlib-normalised input.

    ``normalize`` L2-normalises the output, for networks trained on the unit sphere.
    """

    def __init__(
        self, model: torch.nn.Module, encoder_id: str, *, normalize: bool = False, batch_size: int = 32
    ) -> None:
        self.encoder_id = encoder_id
        self.batch_size = batch_size
        self.normalize = normalize
        self._model = _optimise(model)

    @property
    def dim(self) -> int:
        return DlibResNet.embedding_dim

    def encode(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB chips -> (N, 128) float32 descriptors."""
        chips = chip_batch(chips)
        out = np.empty((len(chips), self.dim), np.float32)
        with torch.inference_mode():
            for start in range(0, len(chips), self.batch_size):
                batch = torch.from_numpy(np.ascontiguousarray(chips[start : start + self.batch_size]))
                x = DlibResNet.preprocess_raw(batch).contiguous(memory_format=torch.channels_last)
                y = self._model(x)
                out[start : start + len(batch)] = (F.normalize(y, dim=1) if self.normalize else y).numpy()
        return out


class _RawInput(torch.nn.Module):
    """A trained network fed 0-255 floats, as fused DlibResNets are (one input path)."""

    mean: torch.Tensor

    def __init__(self, net: torch.nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", input_mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / 256.0)


def _optimise(model: torch.nn.Module) -> torch.nn.Module:
    """Fused, channels-last and, where TorchScript can, traced and frozen for inference.

    Measured on 2 cores: eager 14.5 ms/face at batch 1, fused channels-last 9.9,
    traced and optimised 6.5 (3.4 at batch 8; frozen alone is as fast). The trace is
    shape-specialised to the 150x150 chip, which never changes; the batch size may.
    """
    fused = (model.fused() if isinstance(model, DlibResNet) else _RawInput(model)).eval()
    return trace_channels_last(fused, DlibResNet.input_size)


# Built-in encoders by the names `encoder use` and `--encoder` take.
BUILTIN = {"dlib": PRETRAINED_ID, "pretrained": PRETRAINED_ID, "sface": SFACE_ID}


@functools.lru_cache(maxsize=3)
def load_encoder(encoder_id: str = PRETRAINED_ID) -> FaceEncoder:
    """An encoder by id, loaded once per process with threads set for the kiosk."""
    torch.set_num_threads(config.cpu_threads(config.load_settings()))
    if encoder_id == SFACE_ID:
        return SFaceEncoder()
    if encoder_id == PRETRAINED_ID:
        model: torch.nn.Module = DlibResNet()
        model.load_state_dict(pretrained_state_dict())
        return Encoder(model.eval(), PRETRAINED_ID)
    from accessctl.identity.installed import installed_state_dict

    info, state = installed_state_dict(encoder_id)
    return _trained(info, state)


def load_run_encoder(run: str | Path) -> Encoder:
    """The encoder of a finished training run, to evaluate it before the gallery uses it."""
    from accessctl.errors import EncoderError
    from accessctl.identity.installed import read_run

    info = read_run(run)
    try:
        state = torch.load(Path(run) / "best.pt", map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file raises many types
        raise EncoderError(f"{Path(run) / 'best.pt'} is damaged ({exc})") from None
    return _trained(info, state)


def _trained(info: "EncoderInfo", state: dict[str, torch.Tensor]) -> Encoder:
    from accessctl.errors import EncoderError
    from accessctl.identity.architectures import build

    try:
        model = build(info.arch)
        model.load_state_dict(state)
    except (ValueError, RuntimeError) as exc:
        raise EncoderError(f"encoder {info.encoder_id!r} does not load: {exc}") from None
    return Encoder(model.eval(), info.encoder_id, normalize=info.normalize)
