"""The capture thread between frame sources and the pipeline (the camera's code path)."""

from __future__ import annotations

import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest

from accessctl.errors import VideoError
from accessctl.frames.capture import FeedState, FrameFeed


def test_a_video_is_handed_over_whole_in_order_even_to_a_slow_reader(astronaut_video: Path) -> None:
    feed = FrameFeed(str(astronaut_video))
    got = []
    for frame in feed.frames():
        time.sleep(0.002)
        got.append(frame)
    assert [f.index for f in got] == list(range(30))
    assert all(b.t > a.t for a, b in pairwise(got)) and abs(got[1].t - got[0].t - 1 / 15) < 1e-3
    assert feed.stats.dropped == 0 and feed.stats.delivered == 30 and feed.status.state == FeedState.ENDED
    assert got[0].image.shape == (240, 320, 3) and all(f.captured > 0 for f in got)


def test_files_before_a_camera_in_a_playlist_are_handed_over_whole(astronaut_video: Path) -> None:
    """Only the camera drops: a video played first (not in real time) is every frame."""
    seen = []
    feed = FrameFeed([str(astronaut_video), "95"], realtime=False, on_status=seen.append, reconnect_delays_s=(0.01,))
    got = []
    stopper = threading.Timer(20, feed.stop)  # the camera never delivers: a bound on waiting for it
    stopper.start()
    for frame in feed.frames():
        time.sleep(0.01)
        got.append(frame.index)
        if len(got) == 30:
            break
    stopper.cancel()
    deadline = time.monotonic() + 20
    while not any(s.state == FeedState.CAMERA_LOST for s in seen) and time.monotonic() < deadline:
        time.sleep(0.01)
    feed.stop()
    assert got == list(range(30)) and feed.stats.dropped == 0
    assert any(s.state == FeedState.CAMERA_LOST and "camera 95" in s.detail for s in seen)


def test_realtime_play_drops_stale_frames_and_hands_over_the_newest(astronaut_video: Path) -> None:
    feed = FrameFeed(str(astronaut_video), realtime=True)
    assert feed.drop
    got = []
    for frame in feed.frames():
        got.append(frame.index)
        time.sleep(0.25)  # a consumer far slower than 15 frames/s
    assert feed.stats.dropped > 10 and len(got) < 15
    assert got == sorted(got) and got[-1] == 29  # never an old frame after a newer one; the last one arrives


def test_a_playlist_keeps_time_running_and_marks_each_file(astronaut_video: Path) -> None:
    frames = list(FrameFeed([str(astronaut_video), str(astronaut_video)]).frames())
    assert len(frames) == 60 and [f.index for f in frames] == list(range(60))
    assert all(b.t > a.t for a, b in pairwise(frames))
    assert {f.segment for f in frames[:30]} == {0} and {f.segment for f in frames[30:]} == {1}


def test_a_missing_or_damaged_file_ends_the_feed_with_a_clear_error(tmp_path: Path, astronaut_video: Path) -> None:
    feed = FrameFeed([str(astronaut_video), str(tmp_path / "gone.mp4")])
    got = []
    with pytest.raises(VideoError, match="gone.mp4: no such file"):
        for frame in feed.frames():
            got.append(frame)
    assert len(got) == 30 and feed.status.state == FeedState.FAILED  # the frames before the fault still came
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(VideoError, match="junk.mp4"):
        list(FrameFeed(str(junk)).frames())


def test_a_camera_that_is_not_there_is_retried_with_back_off_and_never_kills_the_feed() -> None:
    seen = []
    feed = FrameFeed("97", on_status=seen.append, reconnect_delays_s=(0.01, 0.02, 0.05))
    assert feed.live and feed.drop
    feed.start()
    deadline = time.monotonic() + 20
    while len(seen) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    feed.stop()
    lost = [s for s in seen if s.state == FeedState.CAMERA_LOST]
    assert len(lost) >= 4 and "camera 97" in lost[0].detail
    assert [s.retry_in_s for s in lost[:4]] == [0.01, 0.02, 0.05, 0.05]
    assert list(feed.frames()) == []  # stopped: the reader is released, no error


def test_a_camera_is_handed_from_one_feed_to_the_next_without_anyone_waiting() -> None:
    """The kiosk lets go of the camera and the wizard takes it: the second feed waits in
    its own thread until the first has closed the camera, never in the caller's."""
    first_seen, second_seen = [], []
    first = FrameFeed("96", on_status=first_seen.append, reconnect_delays_s=(0.01,)).start()
    deadline = time.monotonic() + 20
    while not first_seen and time.monotonic() < deadline:
        time.sleep(0.01)
    second = FrameFeed("96", on_status=second_seen.append, reconnect_delays_s=(0.01,)).start()
    time.sleep(0.3)
    assert second_seen == [] and len(first_seen) > 5  # the first still has it; the second waits its turn
    t = time.monotonic()
    first.stop(wait_s=0)
    assert time.monotonic() - t < 0.1
    while not second_seen and time.monotonic() < deadline:
        time.sleep(0.01)
    second.stop()
    assert second_seen and second_seen[0].state == FeedState.CAMERA_LOST
