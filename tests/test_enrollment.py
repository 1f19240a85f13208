"""Guided enrollment capture: one live person, good faces, three poses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from accessctl.config import Settings
from accessctl.frames.capture import FrameFeed
from accessctl.frames.sources import Frame
from accessctl.kiosk.enrollment import EnrollmentCapture
from accessctl.liveness.saved import load_liveness
from accessctl.storage.gallery import Gallery


def test_two_faces_or_none_are_never_captured(two_faces: np.ndarray, gallery_path: Path) -> None:
    with Gallery(gallery_path) as g:
        capture = EnrollmentCapture(g, Settings(), load_liveness())
        for i in range(12):
            state = capture.step(Frame(two_faces, i, i / 15))
            assert state.problems[0].startswith("2 faces in view") and not state.captured
        state = capture.step(Frame(np.zeros((240, 320, 3), np.uint8), 12, 12 / 15))
        assert state.problems == ("No face in view: stand in front of the camera",)
        assert state.prompt == "Look straight at the camera" and not state.done


@pytest.mark.slow
@pytest.mark.shared
def test_a_replayed_video_of_a_person_cannot_be_enrolled(shared_data: Path, gallery_path: Path) -> None:
    replay = shared_data / "video" / "replay_pairs" / "pair2" / "replay.mp4"
    problems: set[str] = set()
    captured = 0
    with Gallery(gallery_path) as g:
        capture = EnrollmentCapture(g, Settings(), load_liveness())
        for frame in FrameFeed(str(replay)).frames():
            state = capture.step(frame)
            problems.update(state.problems)
            captured += len(state.captured)
    assert captured == 0
    assert "Photo or screen detected: enrollment needs the person themselves" in problems
