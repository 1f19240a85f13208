"""The frozen traces a door keeps between starts: made once, read back, made again when
damaged or made of something else."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import accessctl.liveness.motion as some_code
from accessctl import config
from accessctl.torchscript import frozen


def test_a_frozen_trace_is_kept_read_back_and_made_again_when_damaged_or_changed(
    home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU()).eval()
    builds = []

    def build() -> torch.nn.Module:
        builds.append(1)
        return net

    x = torch.rand(1, 3, 8, 8)
    with torch.inference_mode():
        want = net(x)
        first = frozen("t", build, x, ["digest-1"], [some_code])
        again = frozen("t", build, x, ["digest-1"], [some_code])
        assert len(builds) == 1 and isinstance(again, torch.jit.ScriptModule)  # read back, not traced again
        assert torch.allclose(first(x), want, atol=1e-6) and torch.allclose(again(x), want, atol=1e-6)
        kept = list((config.cache_dir() / "torchscript").glob("t-*.pt"))
        assert len(kept) == 1 and kept[0].stat().st_mode & 0o077 == 0  # private
        data = bytearray(kept[0].read_bytes())
        data[len(data) // 2] ^= 0xFF
        kept[0].write_bytes(bytes(data))
        with caplog.at_level(logging.WARNING):
            mended = frozen("t", build, x, ["digest-1"], [some_code])
        assert len(builds) == 2 and "unreadable" in caplog.text  # damaged: made again, never loaded
        assert torch.allclose(mended(x), want, atol=1e-6)
        frozen("t", build, x, ["digest-2"], [some_code])  # other weights: a trace of its own
        frozen("t", build, torch.rand(1, 3, 9, 9), ["digest-1"], [some_code])  # another input shape too
        assert len(builds) == 4 and len(list((config.cache_dir() / "torchscript").glob("t-*.pt"))) == 3


def test_without_a_cache_folder_the_network_is_traced_each_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "home"
    blocked.write_text("a file where the folder would be")  # no cache folder can be made under it
    monkeypatch.setenv("ACCESSCTL_HOME", str(blocked))
    net = torch.nn.Linear(3, 2).eval()
    x = torch.rand(1, 3)
    with torch.inference_mode(), caplog.at_level(logging.WARNING):
        got = frozen("t", lambda: net, x, ["d"], [some_code])
        assert torch.allclose(got(x), net(x), atol=1e-6) and "no cache folder" in caplog.text
