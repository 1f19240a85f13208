"""The rules of the door, each alone and fast: the access controller (streaks,
cooldown, unknown_after, one denial per track, unsure faces and challenges), the
configuration loader, the thresholds' one home and what the screen says. The end-to-end video tests show the
same rules on real footage; these say which rule broke."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from accessctl.config import AccessSettings, Settings, load_settings, settings_toml
from accessctl.door.access import AccessController, EventKind, Reason
from accessctl.door.pipeline import FaceState, FrameResult
from accessctl.errors import AccessctlError
from accessctl.identity.match import Match
from accessctl.kiosk.session import Banner, KioskState, KioskView, Tone, face_caption, screen_text
from accessctl.liveness.challenge import ChallengeFailure, ChallengeState, ChallengeStatus, Turn
from accessctl.liveness.verdict import LivenessState, LivenessVerdict
from accessctl.storage.gallery import Person
from accessctl.thresholds import check_threshold, default_threshold, liveness_threshold, match_threshold

ADA = Person(1, "E1", "Ada Lovelace", True, "2026-01-01T00:00:00Z")
BOB = Person(2, "E2", "Bob", True, "2026-01-01T00:00:00Z")
LIVE = LivenessVerdict(LivenessState.LIVE, 0.9, 5, 0.95)
SPOOF = LivenessVerdict(LivenessState.SPOOF, 0.05, 5, 0.1)
CHECKING = LivenessVerdict(LivenessState.CHECKING, None, 1)
UNSURE = LivenessVerdict(LivenessState.UNSURE, 0.9, 20, 0.1)


def face(
    track: int,
    verdict: LivenessVerdict = LIVE,
    person: Person | None = ADA,
    *,
    streak: int = 3,
    unknown: int = 0,
    challenge: ChallengeStatus | None = None,
) -> FaceState:
    live = verdict is LIVE if challenge is None else challenge.state == ChallengeState.PASSED
    match = None if not live else Match(person, 0.3 if person else 1.4, 1.0, person or ADA)
    return FaceState(track, (0, 0, 100, 100), verdict, match, streak if person else 0, unknown, None, live, challenge)


def asked(state: ChallengeState = ChallengeState.ACTIVE, failure: ChallengeFailure | None = None) -> ChallengeStatus:
    return ChallengeStatus(state, Turn.LEFT, 1, 1, 1.0, 4.0, 2.0, 5.0, failure)


def frame(i: int, t: float, *faces: FaceState, ended: tuple[int, ...] = ()) -> FrameResult:
    return FrameResult(i, t, list(faces), list(ended))


def kinds(decisions: list) -> list[tuple[str, str]]:
    return [(d.event, d.reason) for d in decisions]


def test_a_grant_needs_a_live_verdict_and_enough_matches_in_a_row() -> None:
    ctl = AccessController(AccessSettings(matches_needed=3))
    assert ctl.decide(frame(0, 0.0, face(1, streak=2))) == []
    assert ctl.decide(frame(1, 0.1, face(1, CHECKING))) == []  # no verdict yet: nothing, whatever the match
    got = ctl.decide(frame(2, 0.2, face(1, streak=3)))
    assert kinds(got) == [(EventKind.GRANTED, Reason.MATCH)] and got[0].person_id == "E1"
    assert ctl.decide(frame(3, 0.3, face(1, streak=4))) == []  # once per track


def test_cooldown_keeps_one_person_from_re_triggering_the_lock() -> None:
    ctl = AccessController(AccessSettings(cooldown_s=10.0))
    assert kinds(ctl.decide(frame(0, 0.0, face(1)))) == [(EventKind.GRANTED, Reason.MATCH)]
    assert ctl.decide(frame(1, 5.0, face(2), ended=(1,))) == []  # a new track of Ada within the cooldown
    assert kinds(ctl.decide(frame(2, 5.1, face(3, person=BOB)))) == [(EventKind.GRANTED, Reason.MATCH)]
    assert kinds(ctl.decide(frame(3, 10.5, face(2)))) == [(EventKind.GRANTED, Reason.MATCH)]


def test_a_stranger_is_refused_once_after_unknown_after_checks() -> None:
    ctl = AccessController(AccessSettings(unknown_after=3))
    assert ctl.decide(frame(0, 0.0, face(1, person=None, unknown=2))) == []
    got = ctl.decide(frame(1, 0.1, face(1, person=None, unknown=3)))
    assert kinds(got) == [(EventKind.DENIED, Reason.UNKNOWN)] and got[0].person_id is None
    assert ctl.decide(frame(2, 0.2, face(1, person=None, unknown=4))) == []  # one denial per track
    again = ctl.decide(frame(3, 0.3, face(7, person=None, unknown=3), ended=(1,)))
    assert kinds(again) == [(EventKind.DENIED, Reason.UNKNOWN)]  # a new track is a new attempt


def test_an_attack_is_denied_once_per_track_and_never_granted() -> None:
    ctl = AccessController(AccessSettings())
    assert kinds(ctl.decide(frame(0, 0.0, face(1, SPOOF)))) == [(EventKind.DENIED, Reason.SPOOF)]
    for i in range(1, 5):
        assert ctl.decide(frame(i, i / 10, face(1, SPOOF))) == []
    assert kinds(ctl.decide(frame(9, 1.0, face(1, SPOOF), ended=(1,)))) == [(EventKind.DENIED, Reason.SPOOF)]


def test_a_face_with_no_evidence_of_life_in_time_is_refused_once_and_never_granted() -> None:
    ctl = AccessController(AccessSettings())
    got = ctl.decide(frame(0, 1.5, face(1, UNSURE)))
    assert kinds(got) == [(EventKind.DENIED, Reason.UNSURE)] and got[0].liveness == 0.9
    assert ctl.decide(frame(1, 1.6, face(1, UNSURE))) == []
    assert ctl.decide(frame(2, 1.7, face(1))) == []  # evidence after the refusal: this face has to come back
    assert kinds(ctl.decide(frame(3, 1.8, face(1, SPOOF)))) == [
        (EventKind.DENIED, Reason.SPOOF)
    ]  # an attack still logged
    assert kinds(ctl.decide(frame(4, 3.0, face(2), ended=(1,)))) == [(EventKind.GRANTED, Reason.MATCH)]


def test_a_challenge_decides_for_an_unsure_face() -> None:
    ctl = AccessController(AccessSettings())
    assert ctl.decide(frame(0, 1.5, face(1, UNSURE, challenge=asked()))) == []  # asked: no refusal yet
    got = ctl.decide(frame(1, 3.0, face(1, UNSURE, challenge=asked(ChallengeState.PASSED))))
    assert kinds(got) == [(EventKind.GRANTED, Reason.MATCH)]
    failed = asked(ChallengeState.FAILED, ChallengeFailure.WRONG_WAY)
    got = ctl.decide(frame(2, 3.0, face(2, UNSURE, challenge=failed)))
    assert kinds(got) == [(EventKind.DENIED, Reason.CHALLENGE)] and got[0].to_json()["why"] == "wrong_way"
    assert ctl.decide(frame(3, 3.1, face(2, UNSURE, challenge=failed))) == []  # once
    walked = FrameResult(4, 3.2, [], [3], abandoned=((3, asked(ChallengeState.FAILED, ChallengeFailure.FACE_LOST)),))
    assert kinds(ctl.decide(walked)) == [(EventKind.DENIED, Reason.CHALLENGE)]  # walking away is no answer
    assert "why" not in ctl.decide(frame(5, 20.0, face(9)))[0].to_json()


def test_failed_challenges_count_towards_the_lockout() -> None:
    ctl = AccessController(AccessSettings(lockout_after=3))
    failed = asked(ChallengeState.FAILED, ChallengeFailure.TIMEOUT)
    out = []
    for k in range(3):
        out += ctl.decide(frame(k, float(k), face(k, UNSURE, challenge=failed)))
    assert kinds(out)[-1] == (EventKind.ALERT, Reason.LOCKOUT)


def test_decisions_become_json_with_their_labels_as_text() -> None:
    ctl = AccessController(AccessSettings())
    d = ctl.decide(frame(4, 1.23456, face(1)))[0]
    j = d.to_json()
    assert j["event"] == "granted" and j["reason"] == "match" and j["t"] == 1.235 and j["distance"] == 0.3
    assert f"{d.event}/{d.reason}" == "granted/match"


def test_configuration_loader_refuses_what_it_cannot_honour(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    cases = {
        "[nowhere]\nx = 1\n": "unknown section",
        "[access]\nbogus = 1\n": "unknown setting",
        "[access]\nmatches_needed = 2.5\n": "whole number",
        "[access]\nmatches_needed = true\n": "must be a number",
        "[audit]\nsnapshots = 1\n": "true or false",
        "[kiosk]\nname = 3\n": "must be a string",
        "[liveness]\nthreshold = 1.5\n": "liveness",
        '[liveness]\nchallenge = "sometimes"\n': "one of off, unsure, always",
        "[liveness]\nchallenge_steps = 3\n": "challenge_steps",
        "[access\n": "cannot read configuration",
    }
    for text, why in cases.items():
        path.write_text(text)
        with pytest.raises(AccessctlError, match=why):
            load_settings(path)
    path.write_text("[access]\nmatches_needed = 4\n[liveness]\nthreshold = 0.6\n")
    s = load_settings(path)
    assert s.access.matches_needed == 4 and s.liveness.threshold == 0.6 and s.access.cooldown_s == 10.0
    path.write_text(settings_toml(s))  # what `config show` prints loads back as the same settings
    assert load_settings(path) == s


def test_each_threshold_has_one_home() -> None:
    s = Settings()
    assert match_threshold(s, "sface-2021dec") == default_threshold("sface-2021dec") == 1.0
    assert match_threshold(s, "dlib-resnet-v1") == 0.6
    s.match.threshold, s.match.encoder = 0.9, "sface-2021dec"
    assert match_threshold(s, "sface-2021dec") == 0.9
    with pytest.raises(AccessctlError, match="chosen for encoder sface"):
        match_threshold(s, "dlib-resnet-v1")  # another encoder's scale
    with pytest.raises(AccessctlError, match="strangers would match"):
        check_threshold(1.3, "sface-2021dec")

    from accessctl.liveness.saved import load_liveness

    model = load_liveness()
    assert liveness_threshold(Settings(), model.threshold) == model.threshold
    site = Settings()
    site.liveness.threshold = 0.8
    assert liveness_threshold(site, model.threshold) == 0.8


def _view(state: KioskState = KioskState.RUNNING, **kw: object) -> KioskView:
    return KioskView(state=state, message=str(kw.pop("message", "")), **kw)  # type: ignore[arg-type]


def test_screen_texts_say_the_most_important_thing_first() -> None:
    granted = Banner(EventKind.GRANTED, "ACCESS GRANTED", "Welcome, Ada", 0.0, 1)
    denied = Banner(EventKind.DENIED, "ACCESS DENIED", "Photo or screen detected", 0.0, 1)
    out = screen_text(_view(KioskState.OUT_OF_SERVICE, message="Out of service: gallery locked", banner=granted))
    assert (out.tone, out.headline, out.detail) == (Tone.DENIED, "OUT OF SERVICE", "gallery locked")
    assert screen_text(_view(banner=granted)) == screen_text(_view(banner=granted, paused=True))
    assert screen_text(_view(banner=granted)).tone == Tone.GRANTED
    assert screen_text(_view(banner=denied)).tone == Tone.DENIED
    lost = screen_text(_view(KioskState.CAMERA_LOST, message="camera 0: no frames; retrying in 2 s"))
    assert (lost.tone, lost.headline) == (Tone.WARNING, "CAMERA UNAVAILABLE")
    assert screen_text(_view(paused=True)).headline == "PAUSED"
    assert screen_text(_view()).headline == "Please look at the camera"
    checking = FrameResult(0, 0.0, [face(1, CHECKING)], [])
    assert screen_text(_view(idle=False, result=checking)).headline == "Checking…"
    prompt = screen_text(_view(idle=False, result=FrameResult(0, 2.0, [face(1, UNSURE, challenge=asked())], [])))
    assert (prompt.tone, prompt.headline, prompt.detail) == (
        Tone.WARNING,
        "\u2190  TURN YOUR HEAD TO YOUR LEFT",
        "2.0 s left",
    )
    right = dataclasses.replace(asked(), turn=Turn.RIGHT, step=2, steps=2)
    assert (
        screen_text(_view(idle=False, result=FrameResult(0, 2.0, [face(1, UNSURE, challenge=right)], []))).headline
        == "\u2192  TURN YOUR HEAD TO YOUR RIGHT (2 of 2)"
    )


def test_face_captions_name_only_a_live_match() -> None:
    assert face_caption(face(1, SPOOF)) == ("Photo or screen", Tone.SPOOF)
    assert face_caption(face(1, CHECKING)) == ("Checking…", Tone.CHECKING)
    assert face_caption(face(1, UNSURE)) == ("Not confirmed", Tone.SPOOF)
    assert face_caption(face(1, UNSURE, challenge=asked())) == ("Turn left", Tone.CHECKING)
    assert face_caption(face(1, UNSURE, challenge=asked(ChallengeState.PASSED))) == ("Ada Lovelace", Tone.LIVE)
    assert face_caption(face(1, person=None)) == ("Not recognised", Tone.UNKNOWN)
    assert face_caption(face(1)) == ("Ada Lovelace", Tone.LIVE)
    assert face_caption(dataclasses.replace(face(1), match=None)) == ("Live", Tone.LIVE)


def test_a_stranger_is_refused_as_unknown_once_judged_not_asked_to_prove_life() -> None:
    """Nobody enrolled, and the face past its first look (unsure, or live but not yet
    let through a challenge): refused as a stranger, once. Not while it is still being
    checked, and not in the middle of a head turn (a turned face is often unrecognised)."""
    ctl = AccessController(AccessSettings(unknown_after=3))
    assert ctl.decide(frame(0, 0.0, face(1, CHECKING, None, unknown=5))) == []
    assert kinds(ctl.decide(frame(1, 1.6, face(1, UNSURE, None, unknown=5)))) == [(EventKind.DENIED, Reason.UNKNOWN)]
    assert ctl.decide(frame(2, 1.7, face(1, UNSURE, None, unknown=6))) == []  # once per track
    ctl = AccessController(AccessSettings(unknown_after=3))
    turning = face(2, UNSURE, None, unknown=4, challenge=asked())
    assert ctl.decide(frame(0, 2.0, turning)) == []
    assert kinds(ctl.decide(frame(1, 1.6, face(3, UNSURE, None, unknown=2)))) == [(EventKind.DENIED, Reason.UNSURE)]
