from __future__ import annotations

import pytest

import accessctl.kiosk.session as kiosk
from accessctl.config import Settings
from accessctl.door.access import EventKind
from accessctl.door.events import DoorEvent, HookDone, Problem, ProblemKind, StoreNews, StoreState
from accessctl.kiosk.session import KioskSession, _Run


def hook(returncode: int | None, error: str | None = None) -> HookDone:
    return HookDone(EventKind.GRANTED, "E1", 1.0, 30, returncode, False, error, "", 0.1)


def test_a_passing_problem_shows_on_the_status_line_for_a_while_then_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(kiosk.time, "monotonic", lambda: clock[0])
    session = KioskSession("unused.mp4", Settings())
    run = session._run = _Run()  # a pipeline run whose events the session listens to
    session._emit(run, hook(0))
    assert session.view().warning == ""  # a hook that worked is no news
    session._emit(run, hook(3))
    assert session.view().warning == "door hook failed: exit status 3"
    session._emit(run, hook(None, "timed out after 5 s"))
    assert session.view().warning == "door hook failed: timed out after 5 s"
    clock[0] += kiosk.WARNING_S - 1
    assert session.view().warning
    clock[0] += 2
    assert session.view().warning == ""
    session._emit(_Run(), Problem(ProblemKind.AUDIT, "audit log locked"))  # an old run's news is ignored
    assert session.view().warning == ""
    session.problem(Problem(ProblemKind.MQTT, "the MQTT broker mqtt://b:1883: cannot connect"))
    assert "MQTT broker" in session.view().warning  # news from beside the pipeline: the reporter's


def test_the_screen_says_when_the_kiosk_decides_on_its_replica_alone() -> None:
    emitted: list[DoorEvent] = []
    session = KioskSession("unused.mp4", Settings(), emit=emitted.append)
    assert session.view().store == ""
    session.store_changed(StoreNews(StoreState.REPLICA_ONLY, "the central store cannot be reached", 3))
    assert session.view().store == "the central store cannot be reached"
    session._reset_view()  # a pipeline restart (new settings) keeps what the store link said
    assert session.view().store
    session.store_changed(StoreNews(StoreState.ONLINE, "central store", 4))
    assert session.view().store == "" and [e.to_json()["state"] for e in emitted] == ["replica-only", "online"]


def test_a_lockout_pauses_the_screen_until_the_time_its_alert_says() -> None:
    import numpy as np

    from accessctl.door.access import Decision, Reason
    from accessctl.door.pipeline import FrameResult
    from accessctl.frames.sources import Frame

    session = KioskSession("unused.mp4", Settings())
    run = session._run = _Run()
    image = np.zeros((4, 4, 3), np.uint8)

    def frame_at(t: float, decisions: list[Decision]) -> None:
        i = int(t * 30)
        session._on_frame(run, Frame(image, i, t), FrameResult(i, t, [], []), decisions)

    alert = Decision(EventKind.ALERT, Reason.LOCKOUT, -1, None, None, None, None, 2.0, 60, until=32.0)
    frame_at(1.0, [])
    assert not session.view().paused
    frame_at(2.0, [alert])
    assert session.view().paused
    frame_at(31.9, [])
    assert session.view().paused
    frame_at(32.0, [])
    assert not session.view().paused
