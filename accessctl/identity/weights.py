"""Loading the encoder's weights: dlib's file -> a cached plain torch state dict.

The pretrained weights come from the installed ``face_recognition_models`` package,
never from the network. Parsing the 22 MB dlib file takes a few seconds, so it is done
once and the state dict is cached in the user cache folder beside a JSON record of its
SHA-256; a cache that fails the check (truncated, edited) is rebuilt from the source.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import torch

from accessctl import config
from accessctl.errors import EncoderError
from accessctl.identity.dlib_format import LayerParams, read_dlib_metric_net
from accessctl.identity.resnet import DlibResNet

DLIB_WEIGHTS_NAME = "dlib_face_recognition_resnet_model_v1.dat"
PRETRAINED_ID = config.PRETRAINED_ENCODER_ID
_CACHE_FORMAT = 1


def dlib_weights_path() -> Path:
    """Where face_recognition_models keeps dlib's face ResNet.

    Found through the import system without importing the package, whose __init__
    needs pkg_resources (gone from recent setuptools).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError("the face_recognition_models package is not installed (run scripts/setup)")
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "models" / DLIB_WEIGHTS_NAME
        if candidate.is_file():
            return candidate
    raise EncoderError(f"face_recognition_models is installed but holds no {DLIB_WEIGHTS_NAME}")


def state_dict_from_dlib(params: list[LayerParams]) -> dict[str, torch.Tensor]:
    """Map the forward-ordered dlib tensors onto DlibResNet's parameter names."""
    model = DlibResNet()
    targets: list[tuple[str, str]] = [("conv1", "con"), ("affine1", "affine")]
    for i in range(len(model.layers)):
        for name in ("conv1", "affine1", "conv2", "affine2"):
            targets.append((f"layers.{i}.{name}", "con" if name.startswith("conv") else "affine"))
    targets.append(("fc", "fc"))
    if len(params) != len(targets):
        raise EncoderError(f"encoder weights hold {len(params)} layers, the network has {len(targets)}")
    state: dict[str, torch.Tensor] = {}
    for (prefix, kind), layer in zip(targets, params, strict=True):
        if layer.kind != kind:
            raise EncoderError(f"encoder weights: found a {layer.kind} layer where {prefix} ({kind}) belongs")
        if kind == "fc":
            state[f"{prefix}.weight"] = torch.from_numpy(np.ascontiguousarray(layer.tensors[0].T))
        else:
            state[f"{prefix}.weight"] = torch.from_numpy(layer.tensors[0])
            state[f"{prefix}.bias"] = torch.from_numpy(layer.tensors[1])
    expected = model.state_dict()
    for key, value in expected.items():
        if key not in state or state[key].shape != value.shape:
            got = None if key not in state else tuple(state[key].shape)
            raise EncoderError(f"encoder weights: {key} has shape {got}, expected {tuple(value.shape)}")
    return state


def pretrained_state_dict(cache: Path | None = None) -> dict[str, torch.Tensor]:
    """The pretrained weights as a state dict, converted once and then read from cache."""
    cache = cache or (config.cache_dir() / "encoder")
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    pt, record = cache / f"{PRETRAINED_ID}.pt", cache / f"{PRETRAINED_ID}.json"
    if pt.is_file() and record.is_file():
        try:
            meta = json.loads(record.read_text())
            if meta.get("format") == _CACHE_FORMAT and meta.get("sha256") == config.sha256_file(pt):
                return torch.load(pt, map_location="cpu", weights_only=True)
        except (OSError, ValueError, RuntimeError):
            pass  # unreadable or damaged cache: rebuild it below
    source = dlib_weights_path()
    state = state_dict_from_dlib(read_dlib_metric_net(source))
    config.write_private(pt, lambda tmp: torch.save(state, tmp))
    meta = {
        "format": _CACHE_FORMAT,
        "sha256": config.sha256_file(pt),
        "source": source.name,
        "source_sha256": config.sha256_file(source),
    }
    config.write_private(record, json.dumps(meta, indent=1))
    return state
