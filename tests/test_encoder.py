from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from accessctl.errors import EncoderError
from accessctl.frames.images import load_image
from accessctl.identity.dlib_format import read_dlib_metric_net
from accessctl.identity.encoders import DlibResNet, load_encoder
from accessctl.identity.resnet import dlib_add
from accessctl.identity.weights import (
    PRETRAINED_ID,
    dlib_weights_path,
    pretrained_state_dict,
)
from accessctl.vision.faces import analyzer


def test_reader_consumes_the_whole_file_and_fills_every_parameter() -> None:
    layers = read_dlib_metric_net(dlib_weights_path())  # raises unless every byte is used
    assert [layer.kind for layer in layers].count("con") == 29
    assert [layer.kind for layer in layers].count("affine") == 29
    assert layers[-1].kind == "fc" and layers[-1].tensors[0].shape == (256, 128)
    total = sum(t.size for layer in layers for t in layer.tensors)
    assert total == 5_614_592


def test_module_holds_5614592_parameters() -> None:
    assert sum(p.numel() for p in DlibResNet().parameters()) == 5_614_592


def test_truncated_or_foreign_weights_are_refused(tmp_path: Path) -> None:
    data = dlib_weights_path().read_bytes()
    (tmp_path / "cut.dat").write_bytes(data[: len(data) // 2])
    with pytest.raises(EncoderError, match="end early"):
        read_dlib_metric_net(tmp_path / "cut.dat")
    (tmp_path / "long.dat").write_bytes(data + b"\x00\x00")
    with pytest.raises(EncoderError, match="left over"):
        read_dlib_metric_net(tmp_path / "long.dat")
    (tmp_path / "other.dat").write_bytes(b"\x01\x01\x05hello")
    with pytest.raises(EncoderError):
        read_dlib_metric_net(tmp_path / "other.dat")


def test_dlib_add_pads_at_the_end() -> None:
    a = torch.ones(1, 2, 4, 4)
    b = torch.full((1, 3, 3, 3), 2.0)
    out = dlib_add(a, b)
    assert out.shape == (1, 3, 4, 4)
    assert out[0, 0, 0, 0] == 3 and out[0, 0, 3, 3] == 1 and out[0, 2, 3, 3] == 0 and out[0, 2, 0, 0] == 2


def test_cache_is_written_checked_and_rebuilt_when_damaged(tmp_path: Path) -> None:
    first = pretrained_state_dict(tmp_path)
    pt, record = tmp_path / f"{PRETRAINED_ID}.pt", tmp_path / f"{PRETRAINED_ID}.json"
    assert pt.is_file() and json.loads(record.read_text())["sha256"]
    assert (pt.stat().st_mode & 0o777) == 0o600
    pt.write_bytes(pt.read_bytes()[:-100])  # damage it
    again = pretrained_state_dict(tmp_path)
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_optimised_encoder_matches_the_plain_module(astronaut: np.ndarray) -> None:
    chip = analyzer().analyze(astronaut)[0].chip
    model = DlibResNet()
    model.load_state_dict(pretrained_state_dict())
    model.eval()
    with torch.inference_mode():
        reference = model(model.preprocess(torch.from_numpy(chip[None]))).numpy()[0]
    got = load_encoder().encode(chip[None])[0]
    assert np.abs(got - reference).max() < 1e-4
    assert 0.2 < np.linalg.norm(reference) < 2  # not normalised, but a sane size


def test_batched_and_single_inference_agree(astronaut: np.ndarray) -> None:
    chip = analyzer().analyze(astronaut)[0].chip
    rng = np.random.default_rng(0)
    chips = np.stack(
        [chip]
        + [np.clip(chip.astype(int) + rng.integers(-20, 20, chip.shape), 0, 255).astype(np.uint8) for _ in range(9)]
    )
    batched = load_encoder().encode(chips)
    single = np.stack([load_encoder().encode(c[None])[0] for c in chips])
    assert batched.shape == (10, 128) and batched.dtype == np.float32
    assert np.abs(batched - single).max() < 1e-4


def test_bad_chip_shape_is_refused() -> None:
    with pytest.raises(ValueError):
        load_encoder().encode(np.zeros((1, 100, 100, 3), np.uint8))


def test_same_face_is_close_under_photometric_change(astronaut: np.ndarray) -> None:
    import cv2

    darker = cv2.convertScaleAbs(astronaut, alpha=0.7, beta=10)
    smaller = cv2.resize(astronaut, (300, 300), interpolation=cv2.INTER_AREA)
    chips = np.stack([analyzer().analyze(im)[0].chip for im in (astronaut, darker, smaller)])
    e = load_encoder().encode(chips)
    assert np.linalg.norm(e[0] - e[1]) < 0.3 and np.linalg.norm(e[0] - e[2]) < 0.3


@pytest.mark.shared
def test_same_person_closer_than_0_6_and_different_people_farther(shared_data: Path) -> None:
    pub = shared_data / "faces" / "public"
    people = {
        "obama": [pub / "obama.jpg", pub / "obama2.jpg", pub / "obama-480p.jpg", pub / "knn_examples/test/obama1.jpg"],
        "biden": [pub / "biden.jpg", pub / "knn_examples/train/biden/biden2.jpg"],
        "kit": sorted((pub / "knn_examples/train/kit_harington").iterdir()),
        "rose": sorted((pub / "knn_examples/train/rose_leslie").iterdir()),
    }
    emb = {}
    for name, paths in people.items():
        chips = [max(analyzer().analyze(load_image(p)), key=lambda f: f.quality.size_px).chip for p in paths]
        emb[name] = load_encoder().encode(np.stack(chips))
    names = list(emb)
    for i, a in enumerate(names):
        e = emb[a]
        same = np.linalg.norm(e[:, None] - e[None], axis=2)
        assert same.max() < 0.6, (a, same)
        for b in names[i + 1 :]:
            cross = np.linalg.norm(e[:, None] - emb[b][None], axis=2)
            assert cross.min() > 0.6, (a, b, cross)
