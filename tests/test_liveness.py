"""Liveness: the pretrained CNNs and their checksums, geometric cues, windows and
histories, ISO/IEC 30107-3 figures, the shipped model (texture and motion) and the
monitor's rules (repeated frames, unsure after its time, sticky spoof), photos moved
every way the liveness issue lists, and the CLI on real attack clips."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from accessctl.errors import AccessctlError, VideoError
from accessctl.evaluation.clips import extract, presentation_scores, read_clip_list, score_clip
from accessctl.evaluation.pad import pad_metrics, threshold_at_eer
from accessctl.frames.sources import open_source
from accessctl.liveness.features import (
    CNN_SCALES,
    N_CUES,
    N_POINTS,
    WINDOW,
    cues,
    history_before,
    observe,
    partner,
    window_before,
)
from accessctl.liveness.minifasnet import INPUT
from accessctl.liveness.monitor import LivenessMonitor
from accessctl.liveness.saved import load_liveness
from accessctl.liveness.verdict import MIN_WINDOWS, LivenessState
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
    h = np.array([[1.02, 0.03, 0.013], [-0.02, 0.99, -0.009], [0.1, 0.05, 1.0]])
    plane = [base]
    for _ in range(7):
        xy = cv2.perspectiveTransform(plane[-1][None, :, :2].astype(np.float64), h)[0]
        nxt = plane[-1].copy()
        nxt[:, :2] = xy
        plane.append(nxt)
    rng = np.random.default_rng(1)
    head = [
        base + np.concatenate([rng.normal(0, 0.01, (N_POINTS, 2)), np.zeros((N_POINTS, 1))], 1).astype(np.float32)
        for _ in range(8)
    ]
    c_plane, c_head = cues(np.stack(plane)), cues(np.stack(head))
    assert c_plane.shape == (8, N_CUES)
    assert c_plane[1:, 2].max() < 0.05 < c_head[1:, 2].min()  # homography residual
    assert c_plane[1:, 3].min() > 0  # it moved


def test_pretrained_weights_load_match_their_checksums_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    import shutil

    from accessctl.config import sha256_file as sha256
    from accessctl.liveness.weights import PRETRAINED, check_frame_cnn_files, load_frame_cnn, shipped_dir

    shipped = shipped_dir()
    sums = dict(line.split()[::-1] for line in (shipped / "SHA256SUMS").read_text().splitlines() if line.strip())
    for name, _, digest in PRETRAINED:
        assert sha256(shipped / name) == digest == sums[name]
    cnn = load_frame_cnn()
    import torch

    crops = torch.full((2, len(CNN_SCALES), INPUT, INPUT, 3), 128, dtype=torch.uint8)
    with torch.inference_mode():
        out = cnn(crops)
    assert out.shape == (2, 259) and torch.isfinite(out).all()
    for name, _, _ in PRETRAINED:
        shutil.copyfile(shipped / name, tmp_path / name)
    tampered = tmp_path / PRETRAINED[0][0]
    data = bytearray(tampered.read_bytes())
    data[-100] ^= 1
    tampered.write_bytes(bytes(data))
    with pytest.raises(AccessctlError, match="damaged or replaced"):
        load_frame_cnn(tmp_path)
    with pytest.raises(AccessctlError, match="damaged or replaced"):  # checked before any cached trace is read
        check_frame_cnn_files(tmp_path)


def test_window_spans_half_a_second_whatever_the_frame_rate() -> None:
    t30, t15 = np.arange(60) / 30.0, np.arange(30) / 15.0
    assert window_before(t30, 5) is None  # not enough history yet
    idx = window_before(t30, 40)
    assert len(idx) == WINDOW and idx[-1] == 40 and np.allclose(np.diff(t30[idx]), 1 / 15, atol=0.02)
    assert list(window_before(t15, 20)) == list(range(21 - WINDOW, 21))


def test_the_motion_head_reads_about_a_second_back_to_a_gap() -> None:
    steps = np.arange(40) * 2 / 30  # the CNN's steps at 30 fps
    assert partner(steps, 0) is None and partner(steps, 5) == 4
    h = history_before(steps, 39, 15)
    assert h[-1] == 39 and len(h) == 15 and steps[39] - steps[h[0]] == pytest.approx(14 * 2 / 30)
    assert list(history_before(steps, 3, 15)) == [0, 1, 2, 3]  # a young track: back to its start
    gap = np.r_[np.arange(10) * 0.067, 2.0 + np.arange(10) * 0.067]  # the face lost for 1.4 s
    assert partner(gap, 10) is None and list(history_before(gap, 12, 15)) == [10, 11, 12]
    h20 = history_before(np.arange(40) * 0.05, 39, 15)  # 20 fps: by time, not by count
    assert len(h20) == 20 and (39 - h20[0]) * 0.05 == pytest.approx(0.95)


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
    for bad in (
        "path,label\na,live\n",
        "path,label,attack\na,alive,none\n",
        "path,label,attack\na,spoof,none\n",
        "path,label,attack\na,live,print\n",
        "path,label,attack\n",
    ):
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


def test_a_frozen_picture_adds_nothing_and_is_unsure_after_its_time(astronaut: np.ndarray) -> None:
    """The same frame over and over (a frozen image, a camera repeating itself) is not a
    step: no window forms, nothing is called live, and once the door's time is up the
    face is unsure; another track starts from nothing."""
    from accessctl.vision.faces import analyzer

    face = analyzer().analyze(astronaut)[0]
    obs = observe(astronaut, face.box, face.landmarks)
    assert obs.crops.shape == (len(CNN_SCALES), INPUT, INPUT, 3) and obs.points.shape == (N_POINTS, 3)
    model = load_liveness()
    monitor = LivenessMonitor(model)
    states = [monitor.update(1, i / 30, obs) for i in range(60)]
    assert {v.state for v in states if v.t < model.evidence_s} == {LivenessState.CHECKING}
    assert {v.state for v in states if v.t >= model.evidence_s} == {LivenessState.UNSURE}
    assert monitor.verdict(1, 2.0).windows == 0 and monitor.steps(1)[0].tolist() == [0.0]  # one step, ever
    assert monitor.update(2, 2.0, obs).state == LivenessState.CHECKING  # another track starts from nothing


def synthetic_observation(rng: np.random.Generator, base: np.ndarray):
    """A moving face as the monitor takes it, without a camera: points that sway, a
    patch that changes (the motion head's cues are computed from it)."""
    from accessctl.liveness.features import Observation
    from accessctl.liveness.motion import PATCH

    pts = base + np.float32(0.01) * rng.normal(size=base.shape).astype(np.float32)
    patch = rng.integers(0, 255, (PATCH, PATCH), dtype=np.uint8)
    return Observation(
        np.zeros((len(CNN_SCALES), INPUT, INPUT, 3), np.uint8), pts, patch, (0.0, 0.0, 200.0), (640, 480)
    )


def test_a_spoof_verdict_sticks_even_when_the_score_recovers() -> None:
    import torch

    from accessctl.liveness.model import FEATURE_DIM, MotionHead
    from accessctl.liveness.saved import make_model

    model = make_model(MotionHead(), 0.5, 1e-6, Path("-"))  # any motion will do: the texture decides here
    monitor = LivenessMonitor(model)
    rng = np.random.default_rng(0)
    base = face_points()

    def frame(i: int, logit: float, track: int = 1) -> LivenessState:
        feat = torch.zeros(FEATURE_DIM)
        feat[:3] = logit
        return monitor.update(track, i / 30, synthetic_observation(rng, base), feat).state

    states = [frame(i, 4.0) for i in range(30)]
    assert states[-1] == LivenessState.LIVE
    states = [frame(i, -4.0) for i in range(30, 45)]
    assert states[-1] == LivenessState.SPOOF  # a live face whose score drops is refused at once
    states = [frame(i, 6.0) for i in range(45, 120)]
    assert set(states) == {LivenessState.SPOOF}  # and never let back in on a better score
    assert frame(120, 4.0, track=2) == LivenessState.CHECKING  # a new track starts over


def test_looking_live_is_not_enough_without_evidence_of_life() -> None:
    """Texture that looks live and a motion head that found nothing: checking, then
    unsure, never live and never a spoof (a still person gives no evidence either)."""
    import torch

    from accessctl.liveness.model import FEATURE_DIM, MotionHead
    from accessctl.liveness.saved import make_model

    model = make_model(MotionHead(), 0.5, 1 - 1e-6, Path("-"))  # no motion is ever enough
    monitor = LivenessMonitor(model)
    rng = np.random.default_rng(1)
    feat = torch.zeros(FEATURE_DIM)
    feat[:3] = 4.0
    states = [monitor.update(1, i / 30, synthetic_observation(rng, face_points()), feat) for i in range(60)]
    assert {v.state for v in states} == {LivenessState.CHECKING, LivenessState.UNSURE}
    assert all(v.p_live is not None and v.p_live > 0.9 for v in states if v.windows >= MIN_WINDOWS)
    assert states[-1].state == LivenessState.UNSURE and states[-1].p_motion is not None


def test_heads_that_vote_say_live_only_when_all_do_and_load_as_saved(tmp_path: Path) -> None:
    """A vote's P(live) clears 0.5 only when every head clears its own threshold;
    written and read back it gives the same answers; a liveness.json whose heads'
    thresholds are not the weights' is refused."""
    import json

    import torch

    from accessctl.liveness.model import STEP_INPUTS, MotionHead, MotionVote
    from accessctl.liveness.saved import META_FILE, load_liveness, make_model, save_model

    torch.manual_seed(0)
    a, b = MotionHead(), MotionHead()
    steps = torch.randn(64, 10, STEP_INPUTS)
    with torch.no_grad():
        pa, pb = torch.sigmoid(a(steps)), torch.sigmoid(b(steps))
    ta, tb = float(pa.median()), float(pb.median())
    vote = MotionVote([a, b], [ta, tb])
    with torch.no_grad():
        pv = torch.sigmoid(vote(steps))
    assert torch.equal(pv >= 0.5, (pa >= ta) & (pb >= tb))
    assert 0 < int((pv >= 0.5).sum()) < int((pa >= ta).sum())
    save_model(make_model(vote, 0.5, 0.5, tmp_path), tmp_path / "m", {})
    loaded = load_liveness.__wrapped__(tmp_path / "m")
    with torch.no_grad():
        assert torch.allclose(torch.sigmoid(loaded.motion(steps)), pv, atol=1e-6)
    meta = json.loads((tmp_path / "m" / META_FILE).read_text())
    assert [round(v["threshold"], 5) for v in meta["motion"]["votes"]] == [round(ta, 5), round(tb, 5)]
    meta["motion"]["votes"][1]["threshold"] = 0.5
    (tmp_path / "m" / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(AccessctlError, match="thresholds"):
        load_liveness.__wrapped__(tmp_path / "m")


def test_the_shipped_fine_tuned_layers_are_checked_by_hash_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    import shutil

    from accessctl.config import sha256_file as sha256
    from accessctl.liveness.saved import TUNED_FILE
    from accessctl.liveness.weights import shipped_dir

    shipped = shipped_dir()
    meta = json.loads((shipped / "liveness.json").read_text())
    assert meta["cnn"]["sha256"] == sha256(shipped / TUNED_FILE)
    assert load_liveness().cnn_id == meta["cnn"]["sha256"]
    for f in ("liveness.json", "liveness.pt", TUNED_FILE):
        shutil.copyfile(shipped / f, tmp_path / f)
    data = bytearray((tmp_path / TUNED_FILE).read_bytes())
    data[-100] ^= 1
    (tmp_path / TUNED_FILE).write_bytes(bytes(data))
    with pytest.raises(AccessctlError, match="damaged or replaced"):
        load_liveness(tmp_path)
    (tmp_path / TUNED_FILE).unlink()
    with pytest.raises(AccessctlError, match="cnn_tuned.pt missing"):
        load_liveness(tmp_path)


@pytest.mark.shared
def test_fine_tuning_starts_from_the_pretrained_cnns_and_changes_only_its_layers(shared_data: Path) -> None:
    """The split into frozen and tuned layers is exact, no fine-tuning is the
    pretrained CNNs (the baseline the recipe must beat), and what is trained is only
    the layers named."""
    import torch

    from accessctl.evaluation.clips import ClipSpec
    from accessctl.liveness.saved import frame_features
    from accessctl.liveness.weights import load_frame_cnn
    from accessctl.training.liveness import (
        Clip,
        LivenessTrainConfig,
        clip_features,
        fine_tune,
        trunks,
        tuned_state,
    )

    d = shared_data / "nuaa_train"
    clips = [
        Clip(ClipSpec(p, label, attack, p.name[:4]), extract(p))
        for p, label, attack in (
            (d / "live/0002_01_00_01", "live", "none"),
            (d / "print/0002_01_01_02", "spoof", "print"),
        )
    ]
    base = load_frame_cnn()
    trunks(base, clips, "conv_5")
    pretrained = frame_features(clips[0].frames.crops)
    assert np.abs(clip_features(base, clips[0], "conv_5") - pretrained).max() < 1e-3
    cfg = LivenessTrainConfig(clips=[], out="", tune_steps=0)
    assert np.abs(clip_features(fine_tune(base, clips, cfg, 0), clips[0], "conv_5") - pretrained).max() < 1e-3
    tuned = fine_tune(base, clips, LivenessTrainConfig(clips=[], out="", tune_steps=5, tune_mix=1.0), 0)
    changed = {k.split(".")[2] for k, v in tuned.state_dict().items() if not torch.equal(v, base.state_dict()[k])}
    assert changed and changed <= {"conv_5", "conv_6_sep", "conv_6_dw", "linear", "bn", "prob"}
    state = tuned_state(tuned, "conv_5")
    assert {k.split(".")[2] for k in state} == {"conv_5", "conv_6_sep", "conv_6_dw", "linear", "bn", "prob"}
    assert np.abs(clip_features(tuned, clips[0], "conv_5") - pretrained).max() > 1e-3
    # a point between the pretrained and the fine-tuned weights: the ends are the two models
    from accessctl.training.liveness import mix

    assert np.abs(clip_features(mix(base, tuned, 0.0), clips[0], "conv_5") - pretrained).max() < 1e-3
    assert mix(base, tuned, 1.0) is tuned
    half = mix(base, tuned, 0.5).state_dict()
    for k, v in tuned.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(half[k], (v + base.state_dict()[k]) / 2, atol=1e-6)
    halfway = fine_tune(base, clips, LivenessTrainConfig(clips=[], out="", tune_steps=5, tune_mix=0.5), 0)
    assert all(torch.allclose(halfway.state_dict()[k], v) for k, v in half.items())
    # exposure copies: the frozen layers' outputs of each frame under other light, same shapes
    trunks(base, clips, "conv_5", exposures=2)
    assert len(clips[0].exposed) == 2
    for copy in clips[0].exposed:
        assert [t.shape for t in copy] == [t.shape for t in clips[0].trunk]
        assert all(not torch.equal(a, b) for a, b in zip(copy, clips[0].trunk, strict=True))
    exposed = fine_tune(
        base, clips, LivenessTrainConfig(clips=[], out="", tune_steps=5, tune_exposure=2, tune_mix=1.0), 0
    )
    assert np.abs(clip_features(exposed, clips[0], "conv_5") - clip_features(tuned, clips[0], "conv_5")).max() > 1e-4


def test_exposure_copies_change_the_light_not_the_picture() -> None:
    """Fine-tuning's exposure copies: each frame under its own gain, gamma and cast,
    both crops of a frame alike, the order of brightness within a channel kept."""
    from accessctl.training.liveness import exposure

    rng = np.random.default_rng(0)
    crop = rng.integers(0, 256, (40, 1, INPUT, INPUT, 3), dtype=np.uint8)
    crops = np.concatenate([crop, crop], axis=1)  # two identical crops per frame
    out = exposure(crops, np.random.default_rng(1))
    assert out.shape == crops.shape and out.dtype == np.uint8
    assert np.array_equal(out[:, 0], out[:, 1])  # one camera, one moment: the same light on both
    ratio = out.reshape(40, -1).mean(1) / crops.reshape(40, -1).mean(1)
    assert ratio.min() < 0.8 and ratio.max() > 1.2  # some frames darker, some brighter
    for f in range(5):  # a monotone map per channel: what was brighter stays at least as bright
        x, y = crops[f, 0, :, :, 1].ravel(), out[f, 0, :, :, 1].ravel()
        assert np.all(np.diff(y[np.argsort(x, kind="stable")].astype(int)) >= 0)
    assert not np.array_equal(exposure(crops, np.random.default_rng(2)), out)


def test_a_damaged_model_fails_closed_with_a_clear_error(tmp_path: Path) -> None:
    good = json.loads((load_liveness().source / "liveness.json").read_text())
    (tmp_path / "liveness.json").write_text(json.dumps({**good, "cnn": None, "sha256": "0" * 64}))
    (tmp_path / "liveness.pt").write_bytes(b"junk")
    with pytest.raises(AccessctlError, match="damaged or replaced"):
        load_liveness(tmp_path)
    (tmp_path / "liveness.json").write_text(json.dumps({**good, "format": 1}))
    with pytest.raises(AccessctlError, match="before the motion head"):
        load_liveness(tmp_path)  # a model of the earlier layout: one line, not a traceback
    (tmp_path / "liveness.json").write_text(json.dumps({**good, "motion": {**good["motion"], "threshold": 1.5}}))
    with pytest.raises(AccessctlError, match="out of range"):
        load_liveness(tmp_path)
    (tmp_path / "liveness.json").write_text("{")
    with pytest.raises(AccessctlError, match="does not load"):
        load_liveness(tmp_path)
    with pytest.raises(AccessctlError, match="no liveness model"):
        load_liveness(tmp_path / "nowhere")


def refused(model, frames) -> bool:
    """Every presentation of the clip refused by the kiosk's monitor and decision rule."""
    return all(x is None or x < model.motion_threshold for x in presentation_scores(model, frames))


def accepted(model, frames) -> bool:
    return all(x is not None and x >= model.motion_threshold for x in presentation_scores(model, frames))


@pytest.mark.shared
def test_shipped_model_on_real_attacks(shared_data: Path, tmp_path: Path, capsys) -> None:
    from accessctl.cli import main

    clips = tmp_path / "clips.csv"
    d = shared_data
    web = d / "liveness_web"
    clips.write_text(
        "path,label,attack\n"
        f"{d}/nuaa_train/live/0003_01_00_01,live,none\n"
        f"{web}/Foxriver-2005__Real-Time-Facial-AntiSpoof-Detection-using-openCV/spoof_replay_01,spoof,replay\n"
        f"{d}/nuaa_train/print/0001_00_01_02,spoof,print\n"
        f"{d}/video/faces/no_face.mp4,spoof,replay\n"
    )
    assert main(["liveness", "eval", str(clips), "--json"]) == 0
    m = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"clips", "presentations", "no_face", "bpcer", "apcer", "acer", "auc", "eer", "threshold"} <= set(m)
    assert m["clips"] == 4 and m["no_face"] == 1  # counted, not dropped
    # The NUAA person's second presentation, sitting still, shows no evidence of life in
    # the door's look: counted as an error here, asked to turn the head at the door.
    assert m["presentations"] == 5 and m["bpcer"] == 0.5
    assert m["apcer"] == {"print": 0.0, "replay": 0.5}  # the faceless one is the error
    model = load_liveness()
    assert presentation_scores(model, extract(d / "nuaa_train/live/0003_01_00_01"))[0] >= model.motion_threshold
    assert refused(
        model, extract(web / "Foxriver-2005__Real-Time-Facial-AntiSpoof-Detection-using-openCV" / "spoof_replay_01")
    )
    assert refused(model, extract(d / "nuaa_train/print/0001_00_01_02"))
    assert score_clip(model, d / "video/faces/no_face.mp4") == [None]


@pytest.mark.shared
@pytest.mark.slow
def test_liveness_train_command(shared_data: Path, tmp_path: Path, capsys) -> None:
    """The whole recipe on two sources: the CNNs fine-tuned and judged by source,
    synthetic attacks of two families made from the clips, the motion head judged by
    source and by family, the model written and loadable; and its refusals."""
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
    fast = ["--motion-steps", "30", "--families", "still,jitter", "--live-variants", "1", "--synthetic-frames", "20"]
    code = main(
        [
            "liveness",
            "train",
            "--clips",
            str(clips),
            "--out",
            str(tmp_path / "model"),
            "--tune-steps",
            "20",
            "--tune-anchor",
            "0.05",
            "--tune-exposure",
            "1",
            "--cv-by",
            "source",
            *fast,
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    for src in ("nuaa-0002", "nuaa-0003"):  # one row per held-out source
        assert src in out
    assert "pretrained: threshold" in out and "trained: threshold" in out  # the texture's report
    assert "held out by source" in out and "held out by family" in out and "jitter" in out  # the motion head's
    meta = json.loads((tmp_path / "model" / "liveness.json").read_text())
    cv = meta["report"]["cv"]
    assert set(cv) == {"pretrained", "trained"} and set(cv["trained"]["sources"]) == {"nuaa-0002", "nuaa-0003"}
    assert meta["threshold"] == cv["trained"]["threshold"] and 0 < meta["threshold"] < 1
    assert meta["config"]["tune_anchor"] == 0.05 and meta["config"]["tune_steps"] == 20
    assert meta["config"]["tune_exposure"] == 1
    motion = meta["motion_report"]
    assert set(motion["cv"]["family"]["synthetic"]) == {"still", "jitter"}
    assert meta["motion"]["threshold"] == max(motion["cv"]["threshold_by_source"], motion["cv"]["threshold_by_family"])
    assert meta["motion"]["evidence_s"] == motion["cv"]["evidence_s"] and "time the door looks" in out
    assert meta["motion_config"]["families"] == ["still", "jitter"] and meta["motion_config"]["steps"] == 30
    model = load_liveness(tmp_path / "model")
    assert model.window == WINDOW and model.motion_threshold == meta["motion"]["threshold"]
    assert (tmp_path / "model" / "cnn_tuned.pt").is_file() and model.cnn_id == meta["cnn"]["sha256"]
    assert set(meta["cnn"]["layers"]) == {"conv_5", "conv_6_sep", "conv_6_dw", "linear", "bn", "prob"}
    # a model with other CNN weights than the cached features' is scored on its own CNNs
    frames = extract(d / "nuaa_train/live/0002_01_00_01")
    assert frames.cnn_id == load_liveness().cnn_id != model.cnn_id
    assert np.abs(frames.features_for(model) - frames.features).max() > 1e-3
    # the CNNs kept from a model folder: only the motion head is trained (in two worker processes)
    assert (
        main(
            [
                "liveness",
                "train",
                "--clips",
                str(clips),
                "--out",
                str(tmp_path / "kept"),
                "--cnn-from",
                str(tmp_path / "model"),
                "--workers",
                "2",
                *fast,
            ]
        )
        == 0
    )
    kept = json.loads((tmp_path / "kept" / "liveness.json").read_text())
    assert kept["cnn"]["sha256"] == meta["cnn"]["sha256"] and kept["threshold"] == meta["threshold"]
    # the two heads, voting: one model, the CNN file kept byte for byte, each head's threshold
    vote = tmp_path / "vote"
    assert (
        main(
            [
                "liveness",
                "vote",
                str(tmp_path / "model"),
                str(tmp_path / "kept"),
                "--out",
                str(vote),
                "--evidence-s",
                "1.25",
            ]
        )
        == 0
    )
    voted = json.loads((vote / "liveness.json").read_text())
    assert voted["cnn"]["sha256"] == meta["cnn"]["sha256"] and voted["motion"]["threshold"] == 0.5
    assert [v["threshold"] for v in voted["motion"]["votes"]] == pytest.approx(
        [meta["motion"]["threshold"], kept["motion"]["threshold"]], abs=1e-6
    )
    assert load_liveness(vote).evidence_s == 1.25 and len(voted["votes_from"]) == 2
    capsys.readouterr()
    assert main(["liveness", "vote", str(tmp_path / "model"), "--out", str(vote), "--evidence-s", "1"]) == 2
    assert "at least two" in capsys.readouterr().err
    shipped = Path(__file__).resolve().parent.parent / "accessctl" / "assets" / "liveness"
    assert (
        main(
            [
                "liveness",
                "vote",
                str(shipped),
                str(tmp_path / "model"),
                "--out",
                str(tmp_path / "v2"),
                "--evidence-s",
                "1",
            ]
        )
        == 2
    )
    assert "share their CNNs" in capsys.readouterr().err
    capsys.readouterr()
    for bad, why in (
        (["--tune-from", "conv_1", "--cv-by", "source"], "--tune-from 'conv_1'"),
        (["--tune-exposure", "-1", "--cv-by", "source"], "--tune-exposure -1"),
        (["--tune-mix", "1.5", "--cv-by", "source"], "--tune-mix 1.5"),
        ([], "--cv-by source, or --val-sources"),
        (["--cnn-from", str(tmp_path / "model"), "--families", "hologram"], "unknown attack families"),
        (["--cnn-from", str(tmp_path / "model"), "--workers", "0"], "--workers must be at least 1"),
    ):
        assert main(["liveness", "train", "--clips", str(clips), "--out", str(tmp_path / "m2"), *bad]) == 2
        assert why in capsys.readouterr().err
    frames = extract(d / "nuaa_train/live/0002_01_00_01")
    assert len(frames) == frames.frames == 57  # every frame of that clip has its face


def photo_clip(folder: Path, photo: np.ndarray, n: int, warp) -> Path:
    """A frame folder of a photo held in front of a textured background, the photo
    placed in each frame by the homography ``warp(i)``."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    background = cv2.GaussianBlur(rng.integers(60, 200, (480, 640, 3), dtype=np.uint8), (0, 0), 3)
    for i in range(n):
        h = warp(i)
        frame = background.copy()
        placed = cv2.warpPerspective(photo, h, (640, 480))
        mask = cv2.warpPerspective(np.ones(photo.shape[:2], np.uint8), h, (640, 480)) > 0
        frame[mask] = placed[mask]
        save_rgb(folder / f"{i:03d}.png", frame)
    return folder


@pytest.mark.shared
def test_a_frozen_photo_and_a_photo_moved_as_a_plane_are_refused(shared_data: Path, tmp_path: Path) -> None:
    """A press photo as 30 identical frames (the attack that was granted in 0.5 s), and
    the same photo moved, turned and tilted in front of the camera like a held print."""
    from accessctl.frames.images import load_image

    photo = cv2.resize(load_image(shared_data / "faces/public/obama.jpg"), (240, 300), interpolation=cv2.INTER_AREA)
    model = load_liveness()
    frozen = photo_clip(tmp_path / "frozen", photo, 30, lambda i: np.array([[1, 0, 200], [0, 1, 90], [0, 0, 1.0]]))
    assert refused(model, extract(frozen))

    def moved(i: int) -> np.ndarray:
        a = 0.35 * np.sin(i / 6)  # turning about a vertical axis, seen in perspective
        c, w = np.array([120.0, 150.0]), 0.0012 * np.sin(a)
        center = np.array([[1, 0, -c[0]], [0, 1, -c[1]], [0, 0, 1]])
        turn = np.array([[np.cos(a), 0, 0], [0, 1, 0], [w, 0, 1]])
        place = np.array([[1, 0, 320 + 25 * np.sin(i / 9)], [0, 1, 240 + 10 * np.cos(i / 7)], [0, 0, 1]])
        return place @ turn @ center

    planar = photo_clip(tmp_path / "planar", photo, 60, moved)
    frames = extract(planar)
    assert len(frames) >= 50  # the face is found: the refusal is the liveness model's
    assert refused(model, frames)


def photo_video(photo: np.ndarray, n: int, move, noise: float = 0.0, seed: int = 0) -> list[tuple[float, np.ndarray]]:
    """A photo fed to the camera path as a 30 fps clip (a virtual camera, or a print
    that fills the view): frame ``i`` is the photo under the similarity ``move(i)``
    (dx, dy, degrees, scale) about its centre, plus sensor noise."""
    rng = np.random.default_rng(seed)
    h, w = photo.shape[:2]
    out = []
    for i in range(n):
        dx, dy, angle, scale = move(i)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
        m[:, 2] += (dx, dy)
        frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        out.append((i / 30, frame))
    return out


def hand_wobble(shake: np.ndarray):  # noqa: ANN201
    """A photo held in a hand, for :func:`photo_video`: slow sways, a tremor (``shake``,
    (n, 4) normal draws), a slight turn and change of distance."""
    return lambda i: (
        3 * np.sin(i / 5) + 0.3 * shake[i, 0],
        2 * np.cos(i / 7) + 0.3 * shake[i, 1],
        2 * np.sin(i / 6),
        1 + 0.02 * np.sin(i / 4),
    )


def away_swinging(i: int) -> tuple[float, float, float, float]:
    """A photo taken 25% further away over 45 frames while it swings, for :func:`photo_video`."""
    return 0.0, 0.0, 5 * np.sin(i / 6), 1 / (1 + 0.25 * i / 44)


@pytest.mark.shared
@pytest.mark.slow
def test_moved_pictures_of_people_no_head_saw_are_refused_on_motion_alone(shared_data: Path) -> None:
    """Two ORL people (in no head's training material, and a kind of picture none saw:
    grey, 92x112, upscaled) wobbled in a hand or taken away while swinging, judged as if
    the CNNs took them for live faces: the vote finds no evidence of life in any. The
    head shipped before the vote granted the sixth person's wobble on motion alone
    (0.99947 against its threshold of 0.99942)."""
    from accessctl.evaluation.clips import observe_frames
    from accessctl.frames.images import load_image

    rng = np.random.default_rng(3)
    shake = rng.normal(0, 1, (45, 4))
    moves = {
        "a hand's wobble": (hand_wobble(shake), 2.0),
        "taken 25% away, swinging": (away_swinging, 1.0),
    }
    motion_alone = dataclasses.replace(load_liveness(), threshold=1e-6)
    granted = {}
    for person in (5, 6):
        face = cv2.resize(
            load_image(shared_data / f"faces/orl/s{person}/1.pgm"), (400, 480), interpolation=cv2.INTER_CUBIC
        )
        photo = cv2.copyMakeBorder(face, 0, 0, 120, 120, cv2.BORDER_REFLECT)
        for name, (move, noise) in moves.items():
            frames = observe_frames(photo_video(photo, 45, move, noise))
            assert len(frames) >= 40, (person, name)
            granted[(person, name)] = not refused(motion_alone, frames)
    assert not any(granted.values()), granted


@pytest.mark.shared
@pytest.mark.slow
def test_a_sharp_photo_is_refused_however_it_is_moved(shared_data: Path) -> None:
    """The clips of the liveness issue, made here from a press photo the model never
    saw: every one was granted in half a second by the model before the motion head."""
    from accessctl.evaluation.clips import observe_frames
    from accessctl.frames.images import load_image

    photo = cv2.resize(load_image(shared_data / "faces/public/obama.jpg"), (640, 480), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(7)
    jitter = rng.uniform(-0.5, 0.5, (45, 2))
    shake = rng.normal(0, 1, (45, 4))
    clips = {
        "random shift of +-0.5 px": (lambda i: (*jitter[i], 0.0, 1.0), 0.0),
        "no motion, noise sigma 3": (lambda i: (0.0, 0.0, 0.0, 1.0), 3.0),
        "slow shift of 3 px": (lambda i: (3.0 * i / 44, 0.0, 0.0, 1.0), 1.0),
        "shift of 12 px": (lambda i: (12.0 * i / 44, 4.0 * i / 44, 0.0, 1.0), 1.0),
        "a hand's wobble": (hand_wobble(shake), 2.0),
        "four times that wobble": (
            lambda i: (12 * np.sin(i / 5), 8 * np.cos(i / 7), 8 * np.sin(i / 6), 1 + 0.08 * np.sin(i / 4)),
            2.0,
        ),
        # found after the issue: a photo brought closer, or taken away while swinging
        "brought 30% closer": (lambda i: (0.0, 0.0, 0.0, 1 + 0.3 * i / 44), 1.0),
        "taken 25% away, swinging": (away_swinging, 1.0),
    }
    model = load_liveness()
    granted = {}
    for name, (move, noise) in clips.items():
        frames = observe_frames(photo_video(photo, 45, move, noise))
        assert len(frames) >= 40, name  # the face is found: the refusal is the liveness model's
        granted[name] = not refused(model, frames)
    assert not any(granted.values()), granted


@pytest.mark.shared
@pytest.mark.slow
def test_live_people_on_the_shared_videos_are_never_called_attacks_and_mostly_let_in_in_time(shared_data: Path) -> None:
    """Live recordings through the same monitor, cut into presentations: none is ever
    judged a spoof; the motion head finds evidence of life within the door's look in
    many (about 4 in 10 here, the rest are asked to turn the head: tests/test_challenge.py),
    within a second for most of those."""
    from accessctl.evaluation.clips import decision_time, presentations

    model = load_liveness()
    times = []
    for clip in (
        "video/replay_pairs/pair1/live.mov",
        "video/replay_pairs/pair2/live.mp4",
        "video/faces/WolfgangLanger_Pexels.mp4",
        "nuaa_train/live/0003_01_00_01",
    ):
        for p in presentations(model, extract(shared_data / clip)):
            assert p.verdicts and all(v.state != LivenessState.SPOOF for v in p.verdicts), clip
            times.append(decision_time(p.verdicts, p.first_t, model))
    granted = [t for t in times if t is not None]
    assert len(times) >= 25 and len(granted) >= len(times) / 3 and float(np.median(granted)) <= 1.0


@pytest.mark.shared
def test_live_motion_and_blinks_do_not_pass_a_print(shared_data: Path) -> None:
    """No single cue is enough: a printed photo given a live face's motion (its
    landmarks and the pixels the motion cues read) is still refused on how it looks."""
    from accessctl.evaluation.clips import ClipFrames

    model = load_liveness()
    live = extract(shared_data / "nuaa_train/live/0004_01_00_01")
    attack = extract(shared_data / "nuaa_train/print/0004_01_00_01")
    n = min(len(live), len(attack), 60)
    mixed = ClipFrames(
        attack.crops[:n],
        live.points[:n],
        live.t[:n],
        n,
        attack.features[:n],
        attack.cnn_id,
        live.patches[:n],
        live.squares[:n],
        live.sizes[:n],
        live.tracks[:n],
    )
    assert refused(model, mixed)


@pytest.mark.shared
def test_a_real_replay_after_a_live_face_is_refused_at_once_and_for_good(shared_data: Path) -> None:
    """One track that shows a live face, then a phone replay, then the live face again
    (a swap the tracker did not notice): the match is lost the moment the replay is
    judged, and the track is never let back in."""
    import torch

    model = load_liveness()
    live = extract(shared_data / "video/replay_pairs/pair1/live.mov")  # 15 frames a second
    replay = extract(
        shared_data
        / "liveness_web/Foxriver-2005__Real-Time-Facial-AntiSpoof-Detection-using-openCV"
        / "spoof_replay_01"
    )
    monitor = LivenessMonitor(model)
    t, states = 0.0, []
    for clip, n, dt in ((live, 25, 1 / 15), (replay, len(replay), 1 / 30), (live, 30, 1 / 15)):
        phase = []
        for i in range(min(n, len(clip))):
            t += dt
            phase.append(monitor.update(0, t, clip.observations[i], torch.from_numpy(clip.features[i])).state)
        states.append(phase)
    assert LivenessState.LIVE in states[0]
    assert LivenessState.SPOOF in states[1]
    assert set(states[2]) == {LivenessState.SPOOF}
