"""SFace run by torch from the shipped int8 ONNX file: our reader dequantises as the
operator defines, and the descriptors are OpenCV's own on real faces."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from accessctl.errors import EncoderError
from accessctl.identity import sface
from accessctl.identity.onnx_format import dequantize, read_graph


def test_block_dequantisation_is_the_operators() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(-128, 128, (4, 10), dtype=np.int8)
    scale = rng.uniform(0.1, 1.0, (4, 3)).astype(np.float32)  # blocks of 4 along axis 1: 4 + 4 + 2
    zero = rng.integers(-5, 5, (4, 3), dtype=np.int8)
    got = dequantize(q, scale, zero, axis=1, block=4)
    for i in range(4):
        for j in range(10):
            assert got[i, j] == pytest.approx((int(q[i, j]) - int(zero[i, j // 4])) * scale[i, j // 4], rel=1e-6)
    per_channel = dequantize(q, scale[:, 0], None, axis=0, block=0)
    assert np.allclose(per_channel, q * scale[:, :1])


def test_a_damaged_graph_is_a_clear_error() -> None:
    data = sface.model_path().read_bytes()
    with pytest.raises(EncoderError, match="ONNX file"):
        read_graph(data[: len(data) // 2])
    with pytest.raises(EncoderError, match="ONNX file: no graph"):
        sface.state_dict_from_onnx(b"")


@pytest.mark.shared
def test_descriptors_are_opencvs_on_real_faces(shared_data: Path) -> None:
    from accessctl.vision.faces import analyzer, largest

    photos = sorted((shared_data / "faces" / "dlib_johns").rglob("*.jpg"))[::3][:12]
    chips = []
    for path in photos:
        face = largest(analyzer().analyze(cv2.imread(str(path))[:, :, ::-1].copy()))
        assert face is not None, path
        chips.append(face.chip)
    batch = np.stack(chips)
    ours = sface.SFaceEncoder().encode(batch)
    one_by_one = np.concatenate([sface.SFaceEncoder().encode(batch[i : i + 1]) for i in range(2)])
    opencv = cv2.FaceRecognizerSF.create(str(sface.model_path()), "")
    # OpenCV's recogniser takes BGR and swaps it to RGB itself
    ref = np.stack(
        [
            np.asarray(opencv.feature(np.ascontiguousarray(sface.SFaceEncoder.chip(c)[:, :, ::-1])), np.float32).ravel()
            for c in chips
        ]
    )
    ref /= np.linalg.norm(ref, axis=1, keepdims=True)
    cosine = (ours * ref).sum(1)
    assert cosine.min() > 0.999, cosine
    assert np.abs(one_by_one - ours[:2]).max() < 1e-4  # a face alone is encoded as in a batch
