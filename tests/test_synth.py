"""The synthetic temporal attacks: each family makes the motion it names, reproducibly
from its seed, and the renderer puts each pixel where the motion says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from accessctl.training.synth import (
    FAMILIES,
    Motion,
    animate,
    relive,
    render,
    source_coordinates,
)

FACE = (260.0, 180.0, 380.0, 320.0)
SIZE = (640, 480)


def frames(n: int = 6) -> list[np.ndarray]:
    """Textured frames, each a little different (a clip to animate)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)
    return [np.roll(base, k, axis=1) for k in range(n)]


def steps(family: str, seed: int = 1, n: int = 30, sources: int = 6):
    return animate(family, seed, n, sources, 2, FACE, SIZE).steps


def grid_residual(m: Motion) -> float:
    """How far the output->source map of ``m`` is from the best homography, pixels."""
    u, v = np.meshgrid(np.linspace(150, 490, 12), np.linspace(100, 400, 10))
    x, y = source_coordinates(m, u, v, (320.0, 250.0), 120.0, 1500.0)
    src = np.stack([u.ravel(), v.ravel()], 1)
    dst = np.stack([x.ravel(), y.ravel()], 1).astype(np.float64)
    a = []
    for (p, q), (r, s) in zip(src, dst, strict=True):
        a.append([-p, -q, -1, 0, 0, 0, p * r, q * r, r])
        a.append([0, 0, 0, -p, -q, -1, p * s, q * s, s])
    h = np.linalg.svd(np.array(a))[2][-1].reshape(3, 3)
    proj = np.c_[src, np.ones(len(src))] @ h.T
    return float(np.abs(proj[:, :2] / proj[:, 2:] - dst).max())


def test_every_family_is_reproducible_from_its_seed_and_differs_between_seeds() -> None:
    for family in FAMILIES:
        assert steps(family, 5) == steps(family, 5)
        assert steps(family, 5) != steps(family, 6)
    with pytest.raises(ValueError, match="unknown attack family"):
        animate("hologram", 1, 10, 6, 0, FACE, SIZE)


def test_still_is_one_frame_that_does_not_move() -> None:
    for seed in range(8):
        s = steps("still", seed)
        assert {x.source for x in s} == {2} and all(x.motion == Motion() for x in s)


def test_jitter_is_small_and_unsmooth() -> None:
    for seed in range(8):
        s = steps("jitter", seed)
        dx = np.array([x.motion.dx for x in s])
        assert {x.source for x in s} == {2} and 0 < np.abs(dx).max() <= 3.0
        # each frame drawn afresh: a step to the next frame is as large as the offsets themselves
        assert np.abs(np.diff(dx)).mean() > 0.5 * np.abs(dx - dx.mean()).mean()


def test_wobble_is_smooth_and_in_the_plane() -> None:
    for seed in range(8):
        s = [x for x in steps("wobble", seed) if not x.repeat]
        m = np.array([[x.motion.dx, x.motion.dy, x.motion.angle, x.motion.scale] for x in s])
        assert np.ptp(m[:, 0]) + np.ptp(m[:, 1]) > 0.3
        assert all(x.motion.yaw == x.motion.pitch == x.motion.bend == 0 for x in s)
        assert grid_residual(s[len(s) // 2].motion) < 0.01  # a similarity


def test_tilt_turns_the_plane_and_stays_a_plane() -> None:
    for seed in range(8):
        s = steps("tilt", seed)
        assert max(abs(x.motion.yaw) + abs(x.motion.pitch) for x in s) > 1.0
        assert all(x.motion.bend == 0 and x.motion.wave == 0 for x in s)
        assert grid_residual(s[len(s) // 2].motion) < 0.05  # a homography


def test_zoom_changes_the_size_a_lot_and_stays_a_plane() -> None:
    grew = shrank = 0
    for seed in range(12):
        s = [x for x in steps("zoom", seed, n=45) if not x.repeat]
        size = np.array([x.motion.scale for x in s])
        # the size, not a tremor: at least 4% between the largest and smallest frame, most
        # of it a steady change (the sway alone is a few percent at most)
        assert size.max() / size.min() > 1.04
        grew += size[-1] > size[0] * 1.03 or size.max() > size[0] * 1.03
        shrank += size[-1] < size[0] / 1.03 or size.min() < size[0] / 1.03
        assert all(x.motion.bend == 0 and x.motion.wave == 0 for x in s)
        assert grid_residual(s[len(s) // 2].motion) < 0.05  # a plane
    assert grew >= 3 and shrank >= 3


def test_bend_is_not_a_plane() -> None:
    curved = 0
    for seed in range(8):
        s = steps("bend", seed)
        assert any(x.motion.bend or x.motion.wave for x in s)
        curved += max(grid_residual(x.motion) for x in s[::5]) > 0.5
    assert curved >= 6


def test_flicker_changes_the_light_frame_to_frame() -> None:
    for seed in range(8):
        s = steps("flicker", seed)
        gains = np.array([x.light.gain for x in s])
        assert np.ptp(gains) / gains.mean() > 0.005


def test_codec_re_compresses_and_retimes() -> None:
    s = steps("codec", 3)
    assert all(10 <= x.light.jpeg < 80 for x in s)


def test_frames_and_pause_show_a_few_frames_with_holds() -> None:
    for seed in range(8):
        few = [x.source for x in steps("frames", seed)]
        assert 2 <= len(set(few)) <= 4
        held = max(len(list(g)) for _, g in __import__("itertools").groupby(few))
        assert held >= 2
        paused = [x.source for x in steps("pause", seed, n=45, sources=60)]
        changes = np.flatnonzero(np.diff(paused))
        assert len(changes) >= 1 and max(np.diff(np.r_[0, changes, len(paused)])) >= 3  # bursts, then a hold


def test_scene_holds_a_print_in_a_room_that_does_not_move() -> None:
    a = animate("scene", 4, 12, 6, 2, FACE, SIZE)
    assert a.print_box is not None and a.background is not None
    out = render(a, frames())
    x0, y0, x1, y1 = a.print_box
    corner = [f[:20, :20].astype(int) for _, f in out]  # far from the print: the room
    assert all(np.abs(c - corner[0]).mean() < 12 for c in corner)  # only the camera's noise moves it


def test_relive_keeps_the_live_frames_in_order_unmoved() -> None:
    a = relive(3, 20, 40, 5, FACE)
    assert a.family == "live" and all(x.motion == Motion() for x in a.steps)
    shown = [x.source for x in a.steps if not x.repeat]
    assert shown == sorted(shown) and shown[0] == 5


def test_render_moves_pixels_as_the_motion_says_and_repeats_byte_for_byte() -> None:
    src = frames(1)
    a = animate("still", 0, 3, 1, 0, FACE, SIZE)
    shift = dataclasses.replace(
        a.steps[0],
        motion=Motion(dx=5.0),
        light=dataclasses.replace(a.steps[0].light, noise=0, gain=1.0, blur=0, jpeg=0, gamma=1.0, cast=(1.0, 1.0, 1.0)),
    )
    again = dataclasses.replace(shift, repeat=True)
    out = render(dataclasses.replace(a, steps=[shift, again]), src)
    assert np.array_equal(out[0][1][100:400, 100:500], src[0][100:400, 95:495])  # content moved right by 5 px
    assert out[1][1] is out[0][1]  # a duplicated frame is the same picture


@pytest.mark.shared
def test_a_still_picture_is_one_frame_filling_the_view_and_the_press_photo_stays_held_out(shared_data) -> None:
    from pathlib import Path

    from accessctl.evaluation.clips import read_clip_list
    from accessctl.training.motion import PICTURE
    from accessctl.training.synth import PICTURE_SIZE, source_frames

    frames = source_frames(shared_data / "faces/public/knn_examples/train/biden/biden.jpg")  # 970x2204, upright
    assert len(frames) == 1 and frames[0].shape == (PICTURE_SIZE[1], PICTURE_SIZE[0], 3)
    pictures = read_clip_list(Path(__file__).parents[1] / "data" / "liveness_pictures.csv")
    assert pictures and all(p.attack == PICTURE and not p.live and p.path.is_file() for p in pictures)
    # the photo the door's figures and tests animate is never training material
    assert not [p for p in pictures if "obama" in p.path.name.lower() or "two_people" in p.path.name]
    assert len({p.source for p in pictures}) >= 10  # each person a source of their own
