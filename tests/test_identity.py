from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from accessctl.config import Settings
from accessctl.errors import FaceQualityError, MultipleFacesError, NoFaceError
from accessctl.frames.images import load_image
from accessctl.identity.encoders import load_encoder
from accessctl.identity.matching import enroll, identify_faces, verify_face
from accessctl.storage.gallery import Gallery


@pytest.fixture
def gallery(gallery_path: Path):
    with Gallery(gallery_path, encoder_id=load_encoder().encoder_id) as g:
        yield g


def test_one_photo_enrolls_and_a_different_photo_is_recognised(gallery: Gallery, astronaut: np.ndarray) -> None:
    settings = Settings()
    result = enroll(gallery, [("astronaut.jpg", astronaut)], "E1", "Eileen Collins", settings)
    assert result.person.templates == 1 and result.warnings == []
    # another "photo": smaller, darker, slightly rotated
    other = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D((256, 200), 8, 0.8), (512, 512), borderMode=cv2.BORDER_REFLECT
    )
    other = cv2.convertScaleAbs(other, alpha=0.8, beta=5)
    ((face, match),) = identify_faces(gallery, other, settings)
    assert match.accepted and match.person.employee_id == "E1" and match.distance < 0.4
    face, m = verify_face(gallery, "E1", other, "other", settings)
    assert m.accepted


def test_enrollment_refusals_are_specific(
    gallery: Gallery, astronaut: np.ndarray, cat_path: Path, two_faces: np.ndarray
) -> None:
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
    rolled = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D((256, 200), 25, 1.0), (512, 512), borderMode=cv2.BORDER_REFLECT
    )
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
    results = identify_faces(gallery, two_faces, s)
    assert len(results) == 2 and results[0][1].accepted
    s.match.threshold = 0.01  # nobody is that close: the answer is "unknown"
    assert not identify_faces(gallery, two_faces, s)[0][1].accepted


def _same_place(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    """Box a is the face of box b: its centre inside b, its width within a factor 2."""
    cx, cy = (a[0] + a[2]) / 2, (a[1] + a[3]) / 2
    return b[0] < cx < b[2] and b[1] < cy < b[3] and 0.5 < (a[2] - a[0]) / (b[2] - b[0]) < 2


@pytest.mark.shared
def test_every_live_webcam_clip_yields_an_enrollable_frame_and_blurred_copies_are_refused(shared_data: Path) -> None:
    """Sharpness means focus, not light: dim laptop-webcam faces (mean grey down to 28)
    pass; the same frames blurred in proportion to the face are refused as blurry. A
    clip may be refused only because its person never faces the camera."""
    from accessctl.evaluation.clips import read_clip_list
    from accessctl.frames.sources import open_source
    from accessctl.identity.matching import quality_problem
    from accessctl.vision.faces import analyzer, largest

    s = Settings()
    clips = [
        c
        for lst in (shared_data / "liveness_web" / "clips.csv", shared_data / "liveness_clips.csv")
        for c in read_clip_list(lst)
        if c.live
    ]
    enrollable, turned, dim = 0, [], 255.0
    for clip in clips:
        problems = []
        with open_source(clip.path) as frames:
            for frame in frames:
                face = largest(analyzer().analyze(frame.image))
                problem = "no face" if face is None else quality_problem(face.quality, s)
                if problem is None:
                    break
                problems.append(problem)
        if problem is not None:
            assert all(p.startswith(("head turned too far: yaw", "no face")) for p in problems), (
                clip.path,
                set(problems),
            )
            turned.append(clip.path)
            continue
        enrollable += 1
        dim = min(dim, face.quality.brightness)
        for sigma in (4.0, (face.box[2] - face.box[0]) / 10):  # out of focus, and far out of focus
            for blurred in analyzer().analyze(cv2.GaussianBlur(frame.image, (0, 0), sigma)):
                if _same_place(blurred.box, face.box):  # not a bogus detection elsewhere in the blur
                    assert "too blurry" in (quality_problem(blurred.quality, s) or ""), (clip.path, sigma)
    assert len(clips) >= 55 and len(turned) <= 2 and enrollable == len(clips) - len(turned)
    assert dim < 40  # a dim face was among the accepted


def test_a_blurry_face_is_told_what_to_change(gallery: Gallery, astronaut: np.ndarray) -> None:
    s = Settings()
    dark = (cv2.GaussianBlur(astronaut, (0, 0), 4) * 0.4).astype(np.uint8)  # out of focus, then underexposed
    with pytest.raises(FaceQualityError, match="too blurry.*add light"):
        enroll(gallery, [("dark.jpg", dark)], "E1", "X", s)
    with pytest.raises(FaceQualityError, match="too blurry.*hold still"):
        enroll(gallery, [("blur.jpg", cv2.GaussianBlur(astronaut, (0, 0), 4))], "E1", "X", s)


@pytest.mark.shared
def test_a_tight_side_lit_badge_crop_of_a_shared_photo_is_found_and_enrolled(
    gallery: Gallery, shared_data: Path
) -> None:
    from accessctl.vision.faces import analyzer

    from .test_faces import _tight_side_lit

    knn = shared_data / "faces" / "public" / "knn_examples" / "train" / "biden"
    photo = load_image(knn / "biden2.jpg")
    crop = _tight_side_lit(photo, analyzer().analyze(photo)[0].box)
    result = enroll(gallery, [("badge.jpg", crop)], "B1", "Badge Photo", Settings())
    assert result.person.templates == 1
    ((face, match),) = identify_faces(gallery, load_image(knn / "biden.jpg"), Settings())  # another photo of him
    assert match.accepted and match.person.employee_id == "B1"
