"""Liveness: geometric cues, attack synthesis, windows, ISO/IEC 30107-3 figures, the
shipped model and the monitor's states, and the CLI on real attack clips."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from accessctl.errors import AccessctlError, VideoError
from accessctl.evaluate import pad_metrics, threshold_at_eer
from accessctl.liveness import CHECKING, MIN_WINDOWS, LivenessMonitor, load_liveness, score_clip
from accessctl.liveness.clips import extract, read_clip_list
from accessctl.liveness.features import CROP, N_CUES, N_POINTS, Observation, cues, observe, window_before
from accessctl.liveness.synth import synth_print, synth_replay
from accessctl.sources import open_source
from tests.conftest import save_rgb


def face_points(seed: int = 0) -> np.ndarray:
    """Plausible landmark layout in crop units: a face at the crop's centre with depth."""
    rng = np.random.default_rng(seed)
    p = np.zeros((N_POINTS, 3), np.float32)
    p[:, :2] = 0.5 + rng.uniform(-0.15, 0.15, (N_POINTS, 2))
    p[:, 2] = rng.uniform(-0.05, 0.05, N_POINTS)
    p[0, :2], p[9, :2] = (0.38, 0.45), (0.62, 0.45)  # outer eye corners
    return p


def test_cues_tell_a_plane_from_a_head() -> None:
    base = face_points()
    h = np.array([[1.02, 0.03, 1.5 / CROP], [-0.02, 0.99, -1 / CROP], [0.1, 0.05, 1.0]])
    plane = [base]
    for _ in range(7):
        xy = cv2.perspectiveTransform(plane[-1][None, :, :2].astype(np.float64), h)[0]
        nxt = plane[-1].copy()
        nxt[:, :2] = xy
        plane.append(nxt)
    rng = np.random.default_rng(1)
    head = [base + np.concatenate([rng.normal(0, 0.01, (N_POINTS, 2)), np.zeros((N_POINTS, 1))], 1).astype(np.float32)
            for _ in range(8)]
    c_plane, c_head = cues(np.stack(plane)), cues(np.stack(head))
    assert c_plane.shape == (8, N_CUES)
    assert c_plane[1:, 2].max() < 0.05 < c_head[1:, 2].min()  # homography residual
    assert c_plane[1:, 3].min() > 0  # it moved


def test_synthetic_attacks_move_points_with_pixels() -> None:
    rng = np.random.default_rng(0)
    crop = np.full((CROP, CROP, 3), 120, np.uint8)
    cv2.circle(crop, (40, 50), 4, (255, 0, 0), -1)
    pts = face_points()
    pts[0, :2] = (40.5 / CROP, 50.5 / CROP)  # pixel centres in crop units
    crops, moved = synth_print(crop, pts, 8, rng)
    assert crops.shape == (8, CROP, CROP, 3) and crops.dtype == np.uint8 and moved.shape == (8, N_POINTS, 3)
    replay, rpts = synth_replay(np.stack([crop] * 8), np.stack([pts] * 8), rng)
    assert replay.shape == (8, CROP, CROP, 3) and rpts.shape == (8, N_POINTS, 3)
    for img, p in ((crops[0], moved[0]), (crops[-1], moved[-1]), (replay[0], rpts[0])):
        redness = img[..., 0].astype(int) - img[..., 2].astype(int)
        y, x = np.unravel_index(np.argmax(cv2.GaussianBlur(redness.astype(np.float32), (0, 0), 2)), redness.shape)
        assert np.hypot(x + 0.5 - p[0, 0] * CROP, y + 0.5 - p[0, 1] * CROP) < 3.0  # the dot went where its landmark went


def test_window_spans_half_a_second_whatever_the_frame_rate() -> None:
    t30, t15 = np.arange(60) / 30.0, np.arange(30) / 15.0
    assert window_before(t30, 10) is None  # not enough history yet
    idx = window_before(t30, 40)
    assert len(idx) == 8 and idx[-1] == 40 and np.allclose(np.diff(t30[idx]), 1 / 15, atol=0.02)
    assert list(window_before(t15, 20)) == list(range(13, 21))


def test_pad_metrics_by_hand() -> None:
    live = [True, True, True, False, False, False, False]
    attacks = ["none", "none", "none", "print", "print", "replay", "replay"]
    scores = [0.9, 0.8, None, 0.1, 0.7, 0.2, None]  # a live clip and an attack without a face
    m = pad_metrics(scores, live, attacks, 0.5)
    assert m["bpcer"] == pytest.approx(1 / 3)  # the faceless live clip is refused
    assert m["apcer"] == {"print": 0.5, "replay": 0.5}  # the faceless attack counts as an error
    assert m["acer"] == pytest.approx((0.5 + 1 / 3) / 2) and m["no_face"] == 2 and m["clips"] == 7
    perfect = pad_metrics([0.9, 0.8, 0.1], [True, True, False], ["none", "none", "print"], 0.5)
    assert perfect["acer"] == 0 and perfect["auc"] == 1 and perfect["eer"] == 0
    t = threshold_at_eer([0.9, 0.8, 0.3, 0.2], [True, True, False, False])
    assert 0.3 < t <= 0.8


def test_clip_list_is_checked(tmp_path: Path) -> None:
    f = tmp_path / "clips.csv"
    f.write_text("path,label,attack\na.mp4,live,none\nb,spoof,print\n")
    clips = read_clip_list(f)
    assert clips[0].path == tmp_path / "a.mp4" and clips[0].live and clips[1].attack == "print"
    for bad in ("path,label\na,live\n", "path,label,attack\na,alive,none\n", "path,label,attack\na,spoof,none\n",
                "path,label,attack\na,live,print\n", "path,label,attack\n"):
        f.write_text(bad)
        with pytest.raises(AccessctlError):
            read_clip_list(f)


def write_video(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    h, w = frames[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for f in frames:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    return path


def test_sources_read_videos_and_folders_in_order_and_refuse_bad_input(tmp_path: Path, astronaut: np.ndarray) -> None:
    small = cv2.resize(astronaut, (320, 320))
    frames = [np.roll(small, 3 * i, axis=1) for i in range(12)]
    video = write_video(tmp_path / "clip.mp4", frames)
    with open_source(video) as src:
        got = list(src)
    assert len(got) == 12 and got[0].image.shape == (320, 320, 3) and got[11].t == pytest.approx(11 / 30, abs=0.01)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in (10, 2, 1):  # numeric, not alphabetical, order
        save_rgb(folder / f"frame_{i}.jpg", frames[i])
    with open_source(folder) as src:
        assert [f.index for f in src] == [0, 1, 2] and src.files[0].name == "frame_1.jpg"
    with pytest.raises(VideoError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError):
        list(open_source(tmp_path / "junk.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError, match="no image frames"):
        open_source(tmp_path / "empty")


def test_monitor_checks_first_then_decides_and_a_new_face_starts_over(astronaut: np.ndarray) -> None:
    from accessctl.faces import analyzer

    face = analyzer().analyze(astronaut)[0]
    obs = observe(astronaut, face.box, face.landmarks)
    assert obs.crop.shape == (CROP, CROP, 3) and obs.points.shape == (N_POINTS, 3)
    model = load_liveness()
    monitor = LivenessMonitor(model)
    states = [monitor.update(1, i / 30, obs).state for i in range(20)]
    assert states[0] == CHECKING and states[-1] in ("live", "spoof")
    first_verdict = states.index(states[-1])
    assert 0.4 < first_verdict / 30 < 1.0  # a verdict within a second
    assert monitor.update(2, 20 / 30, obs).state == CHECKING  # another track starts from nothing
    assert monitor.verdict(1).windows >= MIN_WINDOWS


def test_a_damaged_model_fails_closed_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "liveness.json").write_text(json.dumps({"threshold": 0.5, "window": 8, "step_s": 0.066}))
    (tmp_path / "liveness.pt").write_bytes(b"junk")
    with pytest.raises(AccessctlError, match="does not load"):
        load_liveness(tmp_path)
    with pytest.raises(AccessctlError, match="no liveness model"):
        load_liveness(tmp_path / "nowhere")


@pytest.mark.shared
def test_shipped_model_on_real_attacks(shared_data: Path, tmp_path: Path, capsys) -> None:
    from accessctl.cli import main

    clips = tmp_path / "clips.csv"
    d = shared_data
    clips.write_text(
        "path,label,attack\n"
        f"{d}/video/replay_pairs/pair1/live.mov,live,none\n"
        f"{d}/video/replay_pairs/pair1/replay.mp4,spoof,replay\n"
        f"{d}/nuaa_train/print/0001_00_01_02,spoof,print\n"
        f"{d}/video/faces/no_face.mp4,spoof,replay\n"
    )
    assert main(["liveness", "eval", str(clips), "--json"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(m) == {"clips", "no_face", "bpcer", "apcer", "acer", "auc", "eer", "threshold"}
    assert m["clips"] == 4 and m["no_face"] == 1  # counted, not dropped
    model = load_liveness()
    assert score_clip(model, d / "video/replay_pairs/pair1/live.mov") >= model.threshold
    assert score_clip(model, d / "video/replay_pairs/pair1/replay.mp4") < model.threshold
    assert score_clip(model, d / "nuaa_train/print/0001_00_01_02") < model.threshold


@pytest.mark.shared
def test_liveness_train_command(shared_data: Path, tmp_path: Path, capsys) -> None:
    from accessctl.cli import main

    d = shared_data
    clips = tmp_path / "clips.csv"
    clips.write_text(
        "path,label,attack\n"
        f"{d}/nuaa_train/live/0002_01_00_01,live,none\n"
        f"{d}/nuaa_train/print/0002_01_01_02,spoof,print\n"
        f"{d}/nuaa_train/live/0003_01_00_01,live,none\n"
        f"{d}/nuaa_train/print/0003_01_01_02,spoof,print\n"
    )
    code = main(["liveness", "train", "--clips", str(clips), "--out", str(tmp_path / "model"), "--steps", "3",
                 "--batch", "4", "--val-subjects", "0003"])
    out = capsys.readouterr().out
    assert code == 0 and "validation (0003)" in out
    meta = json.loads((tmp_path / "model" / "liveness.json").read_text())
    assert meta["report"]["train_subjects"] == ["0002"] and 0 <= meta["threshold"] <= 1
    assert load_liveness(tmp_path / "model").window == 8
    frames = extract(d / "nuaa_train/live/0002_01_00_01")
    assert len(frames) == frames.frames == 57  # every frame of that clip has its face


@pytest.mark.shared
def test_live_motion_and_blinks_do_not_pass_a_print(shared_data: Path) -> None:
    """No single cue is enough: a printed photo given a live face's landmark track
    (blinks, head motion, parallax) is still refused on what the camera sees."""
    model = load_liveness()
    live = extract(shared_data / "nuaa_train/live/0004_01_00_01")
    attack = extract(shared_data / "nuaa_train/print/0004_01_00_01")
    n = min(len(live), len(attack), 60)
    monitor = LivenessMonitor(model, keep_scores=True)
    for i in range(n):
        monitor.update(0, float(live.t[i]), Observation(attack.crops[i], live.points[i]))
    assert np.mean(monitor.scores(0)) < model.threshold
