"""The per-frame pipeline on real videos through the camera's code path, and tracking."""

from __future__ import annotations

from pathlib import Path

import pytest

from accessctl.config import Settings
from accessctl.door.pipeline import Pipeline
from accessctl.frames.sources import open_source
from accessctl.identity.matching import enroll
from accessctl.liveness.saved import load_liveness
from accessctl.liveness.verdict import LivenessState
from accessctl.storage.gallery import Gallery
from accessctl.vision.faces import largest
from accessctl.vision.tracking import Tracker


def test_tracks_follow_a_face_and_a_new_face_gets_a_new_id() -> None:
    tr = Tracker(max_missed=1)
    (a,) = tr.update([(100, 100, 200, 200)], 0.0)[0]
    assert tr.update([(105, 102, 205, 203)], 0.03)[0] == [a]
    (b,) = tr.update([(400, 100, 500, 200)], 0.06)[0]  # somebody else, elsewhere
    assert b != a
    ids, ended = tr.update([], 0.09)
    ids, ended = tr.update([], 0.12)
    assert ended == [b] or a in ended
    (c,) = tr.update([(100, 100, 200, 200)], 0.15)[0]
    assert c not in (a, b)  # ids are never recycled


@pytest.mark.slow
@pytest.mark.shared
def test_live_person_is_identified_and_a_replay_never_reaches_the_gallery(
    shared_data: Path, gallery_path: Path
) -> None:
    pair = shared_data / "video" / "replay_pairs" / "pair1"  # shows life without being asked
    with open_source(pair / "live.mov") as src:
        enrol_frame = next(f for f in src if f.index == 60).image
    settings = Settings()
    with Gallery(gallery_path) as gallery:
        enroll(gallery, [("frame 60", enrol_frame)], "P1", "Pair One", settings)
        pipe = Pipeline(gallery, settings, load_liveness())
        first_face = first_live = None
        best_streak = 0
        with open_source(pair / "live.mov") as src:
            for frame in src:
                face = largest(pipe.process(frame).faces)
                if face is None:
                    continue
                first_face = frame.t if first_face is None else first_face
                if face.liveness.state == LivenessState.LIVE:
                    first_live = frame.t if first_live is None else first_live
                    if face.match is not None and face.match.person is not None:
                        assert face.match.person.employee_id == "P1"
                        best_streak = max(best_streak, face.matches_in_a_row)
        assert first_live is not None and first_live - first_face <= 1.0
        assert best_streak >= 3

        pipe = Pipeline(gallery, settings, load_liveness())
        states = []
        with open_source(pair / "replay.mp4") as src:
            for frame in src:
                face = largest(pipe.process(frame).faces)
                if face is not None:
                    assert face.match is None  # never identified
                    states.append(face.liveness.state)
        decided = [s for s in states if s in (LivenessState.LIVE, LivenessState.SPOOF)]
        assert decided and decided.count(LivenessState.SPOOF) / len(decided) > 0.9


@pytest.mark.shared
def test_frames_of_a_recording_looped_by_a_program_are_no_evidence_of_life(
    shared_data: Path, gallery_path: Path
) -> None:
    """Two or four frames of the enrolled person's live video, looped (a program, or a
    GIF): each frame looks live and the jumps between them look like a head moving,
    but a camera never gives an earlier picture back. Never live, never granted;
    refused as unsure (challenge off) or asked to turn (unsure), which a loop cannot."""
    from accessctl.door.access import AccessController, EventKind, Reason
    from accessctl.frames.sources import Frame

    with open_source(shared_data / "video/replay_pairs/pair1/live.mov") as src:
        live = [f.image for f in src if 60 <= f.index < 64]
    with Gallery(gallery_path) as gallery:
        enroll(gallery, [("frame 60", live[0])], "P1", "Pair One", Settings())
        for mode, order in (("off", (0, 1)), ("off", (0, 1, 2, 3, 2, 1)), ("unsure", (0, 1))):
            settings = Settings()
            settings.liveness.challenge = mode
            pipe = Pipeline(gallery, settings, load_liveness())
            ctl = AccessController(settings.access)
            states, decisions = set(), []
            for i in range(30 if mode == "off" else 75):  # refused at 1 s; a challenge runs out at 4 s
                result = pipe.process(Frame(live[order[i % len(order)]], i, i / 15))
                states |= {f.liveness.state for f in result.faces}
                decisions += ctl.decide(result)
            assert LivenessState.LIVE not in states and LivenessState.UNSURE in states, (mode, order)
            assert not [d for d in decisions if d.event == EventKind.GRANTED], (mode, order)
            assert decisions[0].reason == (Reason.UNSURE if mode == "off" else Reason.CHALLENGE), decisions


def test_a_cut_in_the_stream_ends_every_track(astronaut_video: Path, gallery_path: Path) -> None:
    """The next file of a playlist (or a camera reopened) starts new tracks, even where the
    boxes overlap: a liveness clip must never span two recordings."""
    from accessctl.frames.capture import FrameFeed

    with Gallery(gallery_path) as gallery:
        pipe = Pipeline(gallery, Settings(), load_liveness())
        tracks: dict[int, set[int]] = {0: set(), 1: set()}
        for frame in FrameFeed([str(astronaut_video), str(astronaut_video)]).frames():
            result = pipe.process(frame)
            tracks[frame.segment] |= {f.track_id for f in result.faces}
            if frame.index == 30:
                assert result.ended_tracks == sorted(tracks[0])
    assert tracks[0] and tracks[1] and tracks[0].isdisjoint(tracks[1])
