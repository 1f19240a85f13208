from __future__ import annotations

import pytest

import accessctl.kiosk.session as kiosk
from accessctl.config import Settings
from accessctl.kiosk.session import KioskSession, _Run


def test_a_passing_problem_shows_on_the_status_line_for_a_while_then_clears(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(kiosk.time, "monotonic", lambda: clock[0])
    session = KioskSession("unused.mp4", Settings())
    run = session._run = _Run()  # a pipeline run whose events the session listens to
    session._emit(run, {"event": "hook", "returncode": 0})
    assert session.view().warning == ""  # a hook that worked is no news
    session._emit(run, {"event": "hook", "returncode": 3})
    assert session.view().warning == "door hook failed: exit status 3"
    session._emit(run, {"event": "hook", "returncode": None, "error": "timed out after 5 s"})
    assert session.view().warning == "door hook failed: timed out after 5 s"
    clock[0] += kiosk.WARNING_S - 1
    assert session.view().warning
    clock[0] += 2
    assert session.view().warning == ""
    session._emit(_Run(), {"event": "error", "detail": "audit log locked"})  # an old run's news is ignored
    assert session.view().warning == ""
    session.problem({"event": "error", "reason": "mqtt", "detail": "the MQTT broker mqtt://b:1883: cannot connect"})
    assert "MQTT broker" in session.view().warning  # news from beside the pipeline: the reporter's


def test_the_screen_says_when_the_kiosk_decides_on_its_replica_alone() -> None:
    emitted: list[dict] = []
    session = KioskSession("unused.mp4", Settings(), emit=emitted.append)
    assert session.view().store == ""
    session.store_changed({"event": "store", "state": "replica-only", "detail": "the central store cannot be reached"})
    assert session.view().store == "the central store cannot be reached"
    session._reset_view()  # a pipeline restart (new settings) keeps what the store link said
    assert session.view().store
    session.store_changed({"event": "store", "state": "online", "detail": "central store"})
    assert session.view().store == "" and [e["state"] for e in emitted] == ["replica-only", "online"]
