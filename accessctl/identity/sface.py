"""SFace (OpenCV Zoo, Apache-2.0): a second pretrained 128-D encoder, run by OpenCV.

SFace reads a 112x112 BGR chip aligned on the ArcFace five-point template (eye
centres, nose tip, mouth corners). The gallery stores dlib's 150x150 chip of every
template, and the door makes the same chip, so SFace's chip is cut from that one by
one fixed similarity transform: the mean position of the five ArcFace points in the
dlib chip (measured over ORL's 400 faces) mapped onto the template. Enrolment, the
door and ``encoder use`` then all take one path, and a re-encoded gallery matches a
freshly enrolled one exactly. Measured on ORL's 3600 pairs: 99.83% at the authors'
threshold through this path, 99.94% with a per-face alignment from the landmarks.

Descriptors are L2-normalised, so the gallery's Euclidean search works unchanged:
the authors' rule, cosine >= 0.363, is distance <= sqrt(2 - 2 * 0.363).
"""

from __future__ import annotations

import math
import threading
from pathlib import Path

import cv2
import numpy as np

from accessctl import config
from accessctl.errors import EncoderError
from accessctl.vision.faces import chip_batch

SFACE_ID = config.SFACE_ENCODER_ID
MODEL_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
MODEL_SHA256 = "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee"
COSINE_THRESHOLD = 0.363  # the authors' "same person" rule
THRESHOLD = round(math.sqrt(2 - 2 * COSINE_THRESHOLD), 4)  # the same rule as a distance: 1.1287
CHIP = 112
# dlib chip (150x150) -> ArcFace chip (112x112); see the module docstring.
FROM_DLIB_CHIP = np.array([[0.70904, 0.00277, 3.3112], [-0.00277, 0.70904, 18.5629]])


def model_path() -> Path:
    return config.assets_dir() / "sface" / MODEL_FILE


class SFaceEncoder:
    """Same interface as :class:`accessctl.identity.encoders.Encoder`: 150x150 RGB chips in."""

    encoder_id = SFACE_ID
    dim = 128
    normalize = True

    def __init__(self) -> None:
        path = model_path()
        config.check_model_file(path, MODEL_SHA256, "SFace model", EncoderError)
        self._path = str(path)
        self._local = threading.local()  # an OpenCV net is not safe to share between threads
        self.encode(np.zeros((1, 150, 150, 3), np.uint8))  # fail here, not at the door

    def _net(self) -> "cv2.FaceRecognizerSF":
        net = getattr(self._local, "net", None)
        if net is None:
            net = self._local.net = cv2.FaceRecognizerSF.create(self._path, "")
        return net

    @staticmethod
    def chip(dlib_chip: np.ndarray) -> np.ndarray:
        """SFace's 112x112 BGR input from a dlib chip (RGB)."""
        return cv2.warpAffine(dlib_chip, FROM_DLIB_CHIP, (CHIP, CHIP), flags=cv2.INTER_LINEAR)[:, :, ::-1].copy()

    def encode(self, chips: np.ndarray) -> np.ndarray:
        """(N, 150, 150, 3) uint8 RGB dlib chips -> (N, 128) unit-length float32 descriptors."""
        chips = chip_batch(chips)
        net = self._net()
        out = np.empty((len(chips), self.dim), np.float32)
        for i, c in enumerate(chips):
            e = np.asarray(net.feature(self.chip(c)), np.float32).ravel()
            n = float(np.linalg.norm(e))
            out[i] = e / n if n > 0 else e
        return out
