"""Freezing a torch module for inference: one TorchScript trace, frozen, and kept.

A door restarts with the same weights it stopped with, so the frozen trace of each
network is saved once in the cache folder and read back at the next start (0.05 s
against 1-2 s of tracing each network here). What a cached trace is made of is in its
name: the digests of the weight files it was built from (checked against the shipped
digests by the caller on every start, before the cache is looked at), the code of
its architecture, the input it was traced on and torch's version; a record beside it
holds its own SHA-256, so a damaged file is made again rather than loaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import torch

from accessctl import config

log = logging.getLogger(__name__)

CACHE_FORMAT = 1


def trace_for_inference(module: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """``module`` traced on ``example`` and frozen (weights folded in as constants); the
    eager module when TorchScript cannot trace it.

    Only the batch size of the input may change later: a trace is shape-specialised.
    Frozen, not ``optimize_for_inference``: measured on 2 cores, that pass made the
    liveness CNNs slower (20.1 ms a call against 13.5 frozen) and the encoders no
    faster (SFace 28.7 against 26.4 ms a face, dlib's ResNet 15.1 against 14.2), and
    its modules cannot be saved. The trace is not re-run to check itself
    (``check_trace``): the networks traced here branch on nothing but shapes.
    """
    module = module.eval()
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.freeze(torch.jit.trace(module, example, check_trace=False))
            traced(example)
        return traced
    except Exception:  # pragma: no cover - TorchScript unavailable: eager is still correct
        return module


def frozen(
    name: str,
    build: Callable[[], torch.nn.Module],
    example: torch.Tensor,
    made_of: Sequence[str],
    code: Sequence[ModuleType],
) -> torch.nn.Module:
    """``build()`` frozen for inference, from the cache when it was made before of the
    same things: ``made_of`` (the digests of its checked weight files), ``code`` (the
    modules that define its architecture) and ``example``'s shape and layout."""
    try:
        path = _cache_path(name, example, made_of, code)
    except OSError as exc:  # no cache folder to be had (a read-only home): traced at every start
        log.warning("accessctl: no cache folder for the %s trace (%s)", name, exc)
        return trace_for_inference(build(), example)
    record = path.with_suffix(".json")
    if path.is_file() and record.is_file():
        try:
            meta = json.loads(record.read_text())
            if meta.get("format") != CACHE_FORMAT or meta.get("sha256") != config.sha256_file(path):
                raise ValueError("not the file its record describes")
            with warnings.catch_warnings(), torch.inference_mode():
                warnings.simplefilter("ignore")
                module = torch.jit.load(str(path), map_location="cpu")
                module(example)
            return module
        except Exception as exc:  # unreadable or damaged: made again below, never used
            log.warning("accessctl: the cached %s trace %s is unreadable (%s); tracing again", name, path.name, exc)
    module = trace_for_inference(build(), example)
    if isinstance(module, torch.jit.ScriptModule):
        try:
            buf = io.BytesIO()
            torch.jit.save(module, buf)
            config.write_private(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
            meta = {"format": CACHE_FORMAT, "sha256": config.sha256_file(path), "made_of": list(made_of)}
            config.write_private(record, json.dumps(meta, indent=1))
        except OSError as exc:  # a full or read-only disk: the door starts anyway, traced each time
            log.warning("accessctl: cannot cache the %s trace (%s)", name, exc)
    return module


def _cache_path(name: str, example: torch.Tensor, made_of: Sequence[str], code: Sequence[ModuleType]) -> Path:
    h = hashlib.sha256()
    for part in (str(CACHE_FORMAT), torch.__version__, str(tuple(example.shape)), str(example.dtype)):
        h.update(part.encode() + b"\0")
    h.update(str(example.is_contiguous(memory_format=torch.channels_last)).encode())
    for digest in made_of:
        h.update(digest.encode() + b"\0")
    for module in code:
        source = getattr(module, "__file__", None)
        h.update(Path(source).read_bytes() if source else module.__name__.encode())
    folder = config.cache_dir() / "torchscript"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder / f"{name}-{h.hexdigest()[:24]}.pt"


def trace_channels_last(module: torch.nn.Module, size: int) -> torch.nn.Module:
    """An image network on (N, 3, size, size) float input, channels-last (faster for
    its convolutions here) and traced for inference; callers pass channels-last input."""
    return trace_for_inference(channels_last(module), channels_last_example(size))


def channels_last_example(size: int) -> torch.Tensor:
    """What an image network is traced on: a batch of two (N, 3, size, size), channels-last."""
    return torch.zeros(2, 3, size, size).contiguous(memory_format=torch.channels_last)


def channels_last(module: torch.nn.Module) -> torch.nn.Module:
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
