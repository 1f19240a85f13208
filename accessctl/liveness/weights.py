"""Loading the liveness weights: the shipped MiniFASNet files, their fine-tuned last
layers and a trained head.

Every file is checked by SHA-256 before torch reads it: the pretrained files against
the digests published with them (``assets/liveness/SHA256SUMS``, which are also
written here, so that an edited SHA256SUMS cannot vouch for an edited model), the
fine-tuned layers and a trained head against the digests in their own ``liveness.json``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from accessctl import config
from accessctl.errors import AccessctlError
from accessctl.liveness.minifasnet import MiniFASNet, minifasnet_v1se, minifasnet_v2
from accessctl.liveness.model import FrameCNN

# file, architecture, SHA-256 (Silent-Face-Anti-Spoofing b6d5f04, resources/anti_spoof_models/)
PRETRAINED = (
    ("2.7_80x80_MiniFASNetV2.pth", minifasnet_v2, "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0"),
    (
        "4_0_0_80x80_MiniFASNetV1SE.pth",
        minifasnet_v1se,
        "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990",
    ),
)


def shipped_dir() -> Path:
    return config.assets_dir() / "liveness"


def check_file(path: Path, digest: str) -> None:
    """A clear error unless ``path``'s SHA-256 is ``digest``."""
    config.check_model_file(
        path, digest, "liveness model file", missing=f"no liveness model in {path.parent} ({path.name} missing)"
    )


def checked_state(path: Path, digest: str) -> dict[str, torch.Tensor]:
    """A state dict from ``path`` whose SHA-256 must be ``digest``; a clear error if not."""
    check_file(path, digest)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the digest matched, so this is a torch incompatibility
        raise AccessctlError(f"the liveness model file {path} does not load: {exc}") from None
    return {k.removeprefix("module."): v for k, v in state.items()}  # saved from nn.DataParallel


def check_frame_cnn_files(folder: Path | None = None, tuned: tuple[Path, str] | None = None) -> list[str]:
    """Every file :func:`load_frame_cnn` would read, checked by SHA-256; their digests."""
    folder = folder or shipped_dir()
    digests = []
    for name, _, digest in PRETRAINED:
        check_file(folder / name, digest)
        digests.append(digest)
    if tuned is not None:
        check_file(*tuned)
        digests.append(tuned[1])
    return digests


def load_frame_cnn(folder: Path | None = None, tuned: tuple[Path, str] | None = None) -> FrameCNN:
    """Both pretrained CNNs, checked and loaded, in eval mode; with ``tuned`` (a file of
    :class:`.FrameCNN` tensors and its SHA-256), the layers it holds replaced by its."""
    folder = folder or shipped_dir()
    nets: list[MiniFASNet] = []
    for name, build, digest in PRETRAINED:
        net = build()
        try:
            net.load_state_dict(checked_state(folder / name, digest))
        except RuntimeError as exc:
            raise AccessctlError(f"the liveness model file {folder / name} does not fit its network: {exc}") from None
        nets.append(net.eval())
    cnn = FrameCNN(*nets).eval()
    if tuned is not None:
        path, digest = tuned
        state, own = checked_state(path, digest), cnn.state_dict()
        wrong = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
        if wrong:
            raise AccessctlError(f"the liveness model file {path} does not fit the CNNs: {', '.join(wrong[:3])}")
        cnn.load_state_dict(state, strict=False)
    return cnn
