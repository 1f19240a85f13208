from __future__ import annotations

import cv2
import numpy as np
import pytest

from accessctl.frames.images import load_image
from accessctl.vision.faces import (
    _CHIP_POINTS,
    CHIP_SIZE,
    MESH_ALIGN_POINTS,
    _umeyama,
    align,
    analyzer,
)


def test_one_face_with_landmarks_chip_and_quality(astronaut: np.ndarray) -> None:
    faces = analyzer().analyze(astronaut)
    assert len(faces) == 1
    f = faces[0]
    x0, y0, x1, y1 = f.box
    assert 150 < x0 < 250 and 50 < y0 < 120 and 90 < x1 - x0 < 200  # her face, upper middle
    assert f.landmarks.shape == (478, 3)
    assert f.chip.shape == (CHIP_SIZE, CHIP_SIZE, 3) and f.chip.dtype == np.uint8
    q = f.quality
    assert q.size_px > 80 and q.eye_distance_px > 40 and q.sharpness > 40
    assert abs(q.yaw) < 20 and abs(q.pitch) < 25 and abs(q.roll) < 15


def test_alignment_puts_the_five_points_on_dlibs_template(astronaut: np.ndarray) -> None:
    f = analyzer().analyze(astronaut)[0]
    src = f.landmarks[list(MESH_ALIGN_POINTS), :2]
    m = _umeyama(src, _CHIP_POINTS)
    mapped = src @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - _CHIP_POINTS).max() < 8  # pixels of the 150 px chip
    # eyes above nose, subject's left eye on the image right
    assert mapped[0, 0] > mapped[2, 0] and mapped[4, 1] > mapped[0, 1]


def test_similarity_fit_recovers_a_known_transform() -> None:
    rng = np.random.default_rng(1)
    src = rng.random((5, 2)) * 100
    a = np.deg2rad(17)
    m_true = np.array([[1.7 * np.cos(a), -1.7 * np.sin(a), 12.0], [1.7 * np.sin(a), 1.7 * np.cos(a), -4.0]])
    dst = src @ m_true[:, :2].T + m_true[:, 2]
    assert np.allclose(_umeyama(src, dst), m_true, atol=1e-9)


def test_grey_and_mirrored_faces(astronaut: np.ndarray) -> None:
    grey = np.repeat(cv2.cvtColor(astronaut, cv2.COLOR_RGB2GRAY)[:, :, None], 3, axis=2)
    assert len(analyzer().analyze(grey)) == 1
    yaw = analyzer().analyze(astronaut)[0].quality.yaw
    mirrored_yaw = analyzer().analyze(np.ascontiguousarray(astronaut[:, ::-1]))[0].quality.yaw
    assert abs(yaw + mirrored_yaw) < 4  # a mirror turns the head the other way


def test_head_turn_is_measured(astronaut: np.ndarray) -> None:
    """Squashing one half of the face horizontally mimics a turn: yaw must grow."""
    f = analyzer().analyze(astronaut)[0]
    assert abs(f.quality.roll) < 15
    rot = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D((256, 200), 25, 1.0), (512, 512), borderMode=cv2.BORDER_REPLICATE
    )
    rolled = analyzer().analyze(rot)[0].quality.roll
    assert 15 < abs(rolled - f.quality.roll) < 35


def test_two_faces_left_to_right(two_faces: np.ndarray) -> None:
    faces = analyzer().analyze(two_faces)
    assert len(faces) == 2
    assert faces[0].box[0] < 512 <= faces[1].box[0]


def test_no_face_in_a_cat(cat_path) -> None:
    assert analyzer().analyze(load_image(cat_path)) == []


def test_tight_crop_is_found_by_padding(astronaut: np.ndarray) -> None:
    f = analyzer().analyze(astronaut)[0]
    x0, y0, x1, y1 = (int(v) for v in f.box)
    crop = np.ascontiguousarray(astronaut[y0 + 5 : y1, x0 + 5 : x1 - 5])  # cut inside the box
    faces = analyzer().analyze(crop)
    assert len(faces) == 1


def test_8k_photo_detects_on_small_copy_and_crops_from_original(astronaut: np.ndarray) -> None:
    big = cv2.resize(astronaut, (7680, 7680), interpolation=cv2.INTER_CUBIC)
    small_face = analyzer().analyze(astronaut)[0]
    big_face = analyzer().analyze(big)[0]
    scale = 7680 / 512
    assert np.allclose(np.array(big_face.box) / scale, small_face.box, atol=8)
    diff = np.abs(big_face.chip.astype(int) - small_face.chip.astype(int)).mean()
    assert diff < 12  # same face, same chip, up to resampling


def test_tiny_face_is_found_and_reported_small(astronaut: np.ndarray) -> None:
    small = cv2.resize(astronaut, (160, 160), interpolation=cv2.INTER_AREA)  # face ~33 px
    faces = analyzer().analyze(small)
    assert len(faces) == 1 and 20 < faces[0].quality.size_px < 45


def test_align_shrinks_large_faces_without_aliasing(astronaut: np.ndarray) -> None:
    f = analyzer().analyze(astronaut)[0]
    scale = 6
    big = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    pts = f.landmarks.copy()
    pts[:, :2] = (pts[:, :2] + 0.5) * scale - 0.5
    chip_big = align(big, pts)
    assert np.abs(chip_big.astype(int) - f.chip.astype(int)).mean() < 6


def test_analyzers_are_per_thread() -> None:
    import threading

    seen = []
    t = threading.Thread(target=lambda: seen.append(analyzer()))
    t.start()
    t.join()
    assert seen[0] is not analyzer()


@pytest.mark.shared
def test_real_photos_all_sizes_and_formats(shared_data) -> None:
    pub = shared_data / "faces" / "public"
    counts = {
        name: len(analyzer().analyze(load_image(pub / name)))
        for name in [
            "obama.jpg",
            "obama-240p.jpg",
            "obama-1080p.jpg",
            "biden.jpg",
            "32bit.png",
            "two_people.jpg",
            "obama_partial_face.jpg",
        ]
    }
    assert counts == {
        "obama.jpg": 1,
        "obama-240p.jpg": 1,
        "obama-1080p.jpg": 1,
        "biden.jpg": 1,
        "32bit.png": 1,
        "two_people.jpg": 2,
        "obama_partial_face.jpg": 1,
    }
    assert analyzer().analyze(load_image(shared_data / "faces" / "multi" / "dogs.jpg")) == []
    # ORL: 92x112 grey tight crops; dlib_johns: 150x150 chips. Both need the padded retry.
    orl = sorted((shared_data / "faces" / "orl").glob("s*/1.pgm"))[:10]
    assert sum(len(analyzer().analyze(load_image(p))) == 1 for p in orl) >= 9


def _tight_side_lit(image: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """A badge-style crop: cut inside the face box (forehead, cheeks, chin), lit from one side."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    crop = image[int(y0 + 0.3 * h) : int(y1 - 0.12 * h), int(x0 + 0.12 * w) : int(x1 - 0.12 * w)]
    light = np.linspace(0.08, 1.3, crop.shape[1])[None, :, None]
    return np.ascontiguousarray(np.clip(crop * light, 0, 255).astype(np.uint8))


@pytest.mark.shared
def test_yunet_finds_the_tight_side_lit_crop_mediapipe_misses(shared_data, monkeypatch) -> None:
    from accessctl.vision import faces

    photo = load_image(shared_data / "faces" / "public" / "knn_examples" / "train" / "biden" / "biden2.jpg")
    crop = _tight_side_lit(photo, analyzer().analyze(photo)[0].box)
    with monkeypatch.context() as m:
        m.setattr(faces.YuNet, "detect", lambda self, image, max_side: [])
        assert analyzer().analyze(crop) == []  # MediaPipe alone, even on the padded copy
    (face,) = analyzer().analyze(crop)
    assert face.quality.eye_distance_px > 0.4 * crop.shape[1]  # the mesh's landmarks, on the face


def test_yunet_is_checked_by_its_hash(tmp_path, monkeypatch) -> None:
    import shutil

    from accessctl import config
    from accessctl.errors import AccessctlError
    from accessctl.vision import faces

    (tmp_path / "yunet").mkdir()
    shutil.copy(config.assets_dir() / "yunet" / faces.YUNET_FILE, tmp_path / "yunet" / faces.YUNET_FILE)
    with open(tmp_path / "yunet" / faces.YUNET_FILE, "r+b") as f:
        f.seek(1000)
        f.write(b"\x00" * 8)
    monkeypatch.setattr(config, "assets_dir", lambda: tmp_path)
    with pytest.raises(AccessctlError, match="damaged or replaced"):
        faces.YuNet()
    (tmp_path / "yunet" / faces.YUNET_FILE).unlink()
    with pytest.raises(AccessctlError, match="missing"):
        faces.YuNet()


def test_a_failed_mediapipe_graph_is_started_afresh(astronaut: np.ndarray) -> None:
    """A graph whose run failed refuses every later run; one failure must not leave the
    thread (the kiosk's worker) without faces for good."""
    from accessctl.vision.faces import FaceAnalyzer

    a = FaceAnalyzer()

    class Failed:
        def process(self, image: np.ndarray) -> None:
            raise RuntimeError("Graph has errors: Packet isn't the sole owner of the holder.")

        def close(self) -> None:
            pass

    a._mesh = Failed()
    assert len(a.analyze(astronaut)) == 1
    a.close()
