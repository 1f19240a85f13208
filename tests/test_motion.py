"""The dense motion cues: what each one measures, on a real face photo moved in known ways."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from accessctl.liveness.features import observe
from accessctl.liveness.motion import PATCH, STEP_NAMES, context_patch, step_cues, valid_mask


@pytest.fixture(scope="module")
def scene(astronaut: np.ndarray):
    """The astronaut photo inside a larger, textured room, and its face."""
    from accessctl.vision.faces import analyzer

    rng = np.random.default_rng(0)
    room = cv2.GaussianBlur(rng.integers(0, 255, (720, 960, 3), dtype=np.uint8), (0, 0), 2)
    h, w = astronaut.shape[:2]
    room[100 : 100 + h, 200 : 200 + w] = astronaut
    face = analyzer().analyze(room, frame=True)[0]
    return room, face


def cue(before: np.ndarray, after: np.ndarray, face) -> dict[str, float]:
    a, b = observe(before, face.box, face.landmarks), observe(after, face.box, face.landmarks)
    got = step_cues(a.patch, a.square, a.size, b.patch, b.square, b.size, b.points)
    return dict(zip(STEP_NAMES, got.tolist(), strict=True))


def shifted(image: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    m = np.float32([[1, 0, dx], [0, 1, dy]])
    return cv2.warpAffine(image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT)


def test_the_patch_is_the_landmarks_square_and_knows_where_the_image_ends(astronaut: np.ndarray) -> None:
    patch = context_patch(astronaut, (-50.0, -50.0, 200.0))
    assert patch.shape == (PATCH, PATCH) and patch.dtype == np.uint8
    inside = valid_mask((-50.0, -50.0, 200.0), (astronaut.shape[1], astronaut.shape[0]))
    assert not inside[:20, :20].any() and inside[60:, 60:].all()  # a quarter of the square lies off the image
    assert (patch[~inside] == 0).all()


def test_a_picture_moved_whole_moves_with_its_room(scene) -> None:
    room, face = scene
    still = cue(room, room, face)
    moved = cue(room, shifted(room, 3.0, 1.0), face)
    assert moved["face_motion"] > still["face_motion"] + 1.0  # log10: at least ten times more motion
    assert moved["against_room"] < moved["face_motion"] - 0.7  # but the room explains it
    assert moved["off_plane"] < moved["face_motion"] - 0.7  # and so does a plane


def test_a_face_moving_against_its_room_is_seen(scene) -> None:
    room, face = scene
    x0, y0, x1, y1 = (int(v) for v in face.box)
    pad = int((x1 - x0) * 0.25)
    after = room.copy()
    region = room[y0 - pad : y1 + pad, x0 - pad : x1 + pad]
    after[y0 - pad : y1 + pad, x0 - pad + 3 : x1 + pad + 3] = region  # the head alone moved 3 px
    moved = cue(room, after, face)
    whole = cue(room, shifted(room, 3.0), face)
    assert moved["against_room"] > whole["against_room"] + 0.5


def test_a_local_change_at_the_eyes_is_not_a_plane(scene) -> None:
    room, face = scene
    after = room.copy()
    eye = face.landmarks[159, :2].astype(int)  # the upper lid of one eye
    r = max(4, int((face.box[2] - face.box[0]) * 0.08))
    lid = max(2, int((face.box[2] - face.box[0]) * 0.04))  # a lid closing: a third of the eye's height
    patch = after[eye[1] - r : eye[1] + r, eye[0] - r : eye[0] + r]
    after[eye[1] - r + lid : eye[1] + r + lid, eye[0] - r : eye[0] + r] = patch
    blink = cue(room, after, face)
    whole = cue(room, shifted(room, 2.0), face)
    assert blink["eyes_change"] > whole["eyes_change"] + 0.5
    assert blink["eyes_change"] > blink["mouth_change"]


def test_light_changes_are_measured_apart_from_motion(scene) -> None:
    room, face = scene
    brighter = np.clip(room.astype(np.float32) * 1.2, 0, 255).astype(np.uint8)
    lit = cue(room, brighter, face)
    assert lit["face_light"] > 1.0 and lit["room_light"] > 1.0  # 10 x log ratio: both brighter alike
    assert abs(lit["face_light"] - lit["room_light"]) < 0.6
    assert 0.5 < lit["room_seen"] <= 1.0 and lit["textured"] > 0.2
