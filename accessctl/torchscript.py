"""Freezing a torch module for inference: one TorchScript trace, one fallback."""

from __future__ import annotations

import warnings

import torch


def trace_for_inference(module: torch.nn.Module, example: torch.Tensor) -> torch.nn.Module:
    """``module`` traced on ``example`` and optimised for inference (constants folded,
    batch norm fused); the eager module when TorchScript cannot trace it.

    Only the batch size of the input may change later: a trace is shape-specialised.
    The trace is not re-run to check itself (``check_trace``): its warnings were never
    shown, the networks traced here branch on nothing but shapes, and the check was
    more than half of the tracing the kiosk does at start-up (7.5 of 12 s, profiled).
    """
    module = module.eval()
    try:
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")
            traced = torch.jit.optimize_for_inference(torch.jit.trace(module, example, check_trace=False))
            traced(example)
        return traced
    except Exception:  # pragma: no cover - TorchScript unavailable: eager is still correct
        return module


def trace_channels_last(module: torch.nn.Module, size: int) -> torch.nn.Module:
    """An image network on (N, 3, size, size) float input, channels-last (faster for
    its convolutions here) and traced for inference; callers pass channels-last input."""
    module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs omit it
    return trace_for_inference(module, torch.zeros(2, 3, size, size).contiguous(memory_format=torch.channels_last))
