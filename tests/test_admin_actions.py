"""The admin area's actions without Qt: each change is logged before it is made, a
change that fails is logged as failed, and one that cannot be logged is not made."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from accessctl.config import Settings, load_settings
from accessctl.errors import AccessctlError
from accessctl.kiosk.admin import AdminActions
from accessctl.storage.audit import AuditLog
from accessctl.storage.gallery import Gallery, NewTemplate

ENC = "test-encoder"


@pytest.fixture
def actions(tmp_path: Path, home: Path) -> AdminActions:
    with Gallery(tmp_path / "g.db", encoder_id=ENC) as g:
        g.add_person("E1", "Ada", [NewTemplate(np.ones(128, np.float32) / np.sqrt(128), 0.9, "test")])
    return AdminActions(tmp_path / "g.db", tmp_path / "events.db", "door-1")


def admin_rows(a: AdminActions) -> list[tuple[str, str | None, dict]]:
    return [(r["reason"], r["person_id"], json.loads(r["detail"])) for r in a.events() if r["event"] == "admin"]


def test_changes_are_logged_with_who_and_where(actions: AdminActions) -> None:
    assert actions.rename("E1", "Ada Lovelace").name == "Ada Lovelace"
    assert actions.set_active("E1", False).active is False
    rows = admin_rows(actions)
    assert [(r, p) for r, p, _ in rows] == [("rename", "E1"), ("disable", "E1")]
    assert rows[0][2]["name"] == "Ada Lovelace" and rows[0][2]["via"] == "gui" and rows[0][2]["os_user"]
    assert {r["kiosk"] for r in actions.events()} == {"door-1"}


def test_a_failed_change_is_logged_as_failed(actions: AdminActions) -> None:
    with pytest.raises(AccessctlError):
        actions.rename("E1", "Ada\x1b[2J")  # a control character: refused by the gallery
    assert [r for r, _, _ in admin_rows(actions)] == ["rename", "rename failed"]
    with Gallery(actions.gallery_path) as g:
        assert g.get("E1").name == "Ada"


def test_a_change_that_cannot_be_logged_is_not_made(actions: AdminActions, tmp_path: Path) -> None:
    (tmp_path / "not-a-log").mkdir()
    blind = AdminActions(actions.gallery_path, tmp_path / "not-a-log", "door-1")
    with pytest.raises(AccessctlError):
        blind.remove("E1")
    with Gallery(actions.gallery_path) as g:
        assert [p.employee_id for p in g.people()] == ["E1"]
    new = Settings()
    new.access.matches_needed = 5
    with pytest.raises(AccessctlError):
        blind.save_settings(Settings(), new)
    assert load_settings().access.matches_needed == 3


def test_settings_and_exports_are_audited(actions: AdminActions, tmp_path: Path) -> None:
    new = Settings()
    new.liveness.threshold = 0.6
    actions.save_settings(Settings(), new)
    assert load_settings().liveness.threshold == 0.6
    n = actions.export_events(tmp_path / "log.csv")
    assert n == 1 and (tmp_path / "log.csv").stat().st_mode & 0o077 == 0
    rows = admin_rows(actions)
    assert rows[0][0] == "settings" and rows[0][2]["liveness.threshold"] == 0.6
    assert rows[1][0] == "export-events"
    assert actions.enrolled() == {"E1": "Ada"}
    with AuditLog(actions.audit_path) as log:
        assert len(log.query()) == 2
