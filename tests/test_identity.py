from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from accessctl.config import Settings
from accessctl.encoder import load_encoder
from accessctl.errors import FaceQualityError, MultipleFacesError, NoFaceError
from accessctl.gallery import Gallery
from accessctl.identity import enroll, identify, verify
from accessctl.images import load_image


@pytest.fixture
def gallery(gallery_path: Path):
    with Gallery(gallery_path, encoder_id=load_encoder().encoder_id) as g:
        yield g


def test_one_photo_enrolls_and_a_different_photo_is_recognised(gallery: Gallery, astronaut: np.ndarray) -> None:
    settings = Settings()
    result = enroll(gallery, [("astronaut.jpg", astronaut)], "E1", "Eileen Collins", settings)
    assert result.person.templates == 1 and result.warnings == []
    # another "photo": smaller, darker, slightly rotated
    other = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 200), 8, 0.8), (512, 512), borderMode=cv2.BORDER_REFLECT)
    other = cv2.convertScaleAbs(other, alpha=0.8, beta=5)
    (face, match), = identify(gallery, other, settings)
    assert match.accepted and match.person.employee_id == "E1" and match.distance < 0.4
    face, m = verify(gallery, "E1", other, "other", settings)
    assert m.accepted


def test_enrollment_refusals_are_specific(gallery: Gallery, astronaut: np.ndarray, cat_path: Path, two_faces: np.ndarray) -> None:
    s = Settings()
    with pytest.raises(NoFaceError, match="cat.jpg: no face found"):
        enroll(gallery, [("cat.jpg", load_image(cat_path))], "E1", "X", s)
    with pytest.raises(MultipleFacesError, match="2 faces found.*--face"):
        enroll(gallery, [("two.jpg", two_faces)], "E1", "X", s)
    small = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    with pytest.raises(FaceQualityError, match="too small"):
        enroll(gallery, [("small.jpg", small)], "E1", "X", s)
    blurred = cv2.GaussianBlur(astronaut, (0, 0), 4)
    with pytest.raises(FaceQualityError, match="too blurry"):
        enroll(gallery, [("blur.jpg", blurred)], "E1", "X", s)
    s.enroll.max_roll_deg = 10
    rolled = cv2.warpAffine(astronaut, cv2.getRotationMatrix2D((256, 200), 25, 1.0), (512, 512), borderMode=cv2.BORDER_REFLECT)
    with pytest.raises(FaceQualityError, match="roll"):
        enroll(gallery, [("rolled.jpg", rolled)], "E1", "X", s)
    assert gallery.people() == []  # nothing half-written


def test_a_failing_second_photo_enrolls_nothing(gallery: Gallery, astronaut: np.ndarray, cat_path: Path) -> None:
    with pytest.raises(NoFaceError):
        enroll(gallery, [("a.jpg", astronaut), ("cat.jpg", load_image(cat_path))], "E1", "X", Settings())
    assert gallery.people() == []


def test_choose_a_face_and_duplicate_warning(gallery: Gallery, astronaut: np.ndarray, two_faces: np.ndarray) -> None:
    s = Settings()
    enroll(gallery, [("a.jpg", astronaut)], "E1", "Eileen", s)
    result = enroll(gallery, [("two.jpg", two_faces)], "E2", "Left one", s, face_number=1)
    assert any("already matches Eileen (E1)" in w for w in result.warnings)
    with pytest.raises(MultipleFacesError, match="no face 3"):
        enroll(gallery, [("two.jpg", two_faces)], "E3", "X", s, face_number=3)


def test_identify_every_face_and_unknowns(gallery: Gallery, astronaut: np.ndarray, two_faces: np.ndarray) -> None:
    s = Settings()
    enroll(gallery, [("a.jpg", astronaut)], "E1", "Eileen", s)
    results = identify(gallery, two_faces, s)
    assert len(results) == 2 and results[0][1].accepted
    s.match.threshold = 0.01  # nobody is that close: the answer is "unknown"
    assert not identify(gallery, two_faces, s)[0][1].accepted
