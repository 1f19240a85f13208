"""The small public API: images in, faces and descriptors out, a gallery to match against.

>>> from accessctl import api
>>> image = api.load_image("alice.jpg")
>>> faces = api.face_encodings(image)            # [(Face, 128-D vector), ...]
>>> api.face_distance(faces[0][1], other) <= 0.6  # same person?
>>> with api.open_gallery() as gallery:
...     api.identify(gallery, faces[0][1], 0.6).person  # who, of the enrolled (None: nobody)
"""

from __future__ import annotations

import numpy as np

from accessctl.frames.images import load_image
from accessctl.identity.match import Match, identify
from accessctl.identity.matching import encode_faces
from accessctl.storage.gallery import Gallery
from accessctl.vision.faces import Face, analyzer

__all__ = ["load_image", "detect_faces", "face_encodings", "face_distance", "open_gallery", "identify", "Face", "Match"]


def detect_faces(image: np.ndarray) -> list[Face]:
    """Every face in an RGB uint8 image, left to right, with landmarks, aligned chip and quality."""
    return analyzer().analyze(image)


def face_encodings(image: np.ndarray) -> list[tuple[Face, np.ndarray]]:
    """Every face in the image with its 128-D descriptor (same person: distance <= 0.6)."""
    return [(f.face, f.embedding) for f in encode_faces(image)]


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between two descriptors: the d(img1, img2) of one-shot matching."""
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def open_gallery(path: str | None = None) -> Gallery:
    """The enrolled gallery (default: gallery.db in the data folder), in its own encoder's space."""
    return Gallery(path)
