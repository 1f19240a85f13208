"""What the admin area does, apart from Qt: people, settings and the audit log.

Every change is an ``admin`` event written *before* the change (an admin change that
cannot be logged does not happen), and a change that then fails is logged as failed,
the same rule as the command line's. Each method opens the gallery or the log itself,
so it can run on a worker thread while the window stays responsive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from accessctl import config
from accessctl.clock import now
from accessctl.config import Settings
from accessctl.errors import AccessctlError
from accessctl.identity.matching import EncodedFace, save_enrollment
from accessctl.storage.audit import AuditLog, log_admin, to_csv
from accessctl.storage.central import CentralGallery
from accessctl.storage.gallery import Gallery, Person

# The settings sections the admin area edits (the rest only the configuration file).
EDITABLE_SECTIONS = ("match", "liveness", "access", "enroll", "hook", "kiosk", "audit")

T = TypeVar("T")


@dataclasses.dataclass
class AdminActions:
    gallery_path: Path | None = None
    audit_path: Path | None = None
    kiosk: str = "kiosk"
    store_url: str = ""  # a many-door site: changes go to the central store, not the replica

    def _gallery(self) -> Gallery | CentralGallery:
        return CentralGallery(self.store_url) if self.store_url else Gallery(self.gallery_path)

    def log(self, action: str, person: Person | None = None, detail: dict | None = None) -> None:
        log_admin(action, person, detail, self.audit_path, self.kiosk)

    def _audited(self, action: str, person: Person | None, detail: dict | None, change: Callable[[], T]) -> T:
        self.log(action, person, detail)  # raises when it cannot be logged: nothing is changed
        try:
            return change()
        except AccessctlError as exc:
            try:
                self.log(f"{action} failed", person, {"error": str(exc)})
            except AccessctlError:
                pass  # the change did not happen; the error itself reaches the admin
            raise

    # -- people -----------------------------------------------------------------------
    def people(self) -> list[Person]:
        with self._gallery() as g:
            return g.people()

    def enrolled(self) -> dict[str, str]:
        """Every enrolled employee id with its name (the wizard checks a new id against these)."""
        return {p.employee_id: p.name for p in self.people()}

    def enroll(self, employee_id: str, name: str, samples: Sequence[tuple[str, EncodedFace]], method: str) -> Person:
        """A new person and their templates, in one transaction, logged before it is written."""
        who = Person(0, employee_id, name, True, now())
        detail = {"templates": len(samples), "method": method}

        def write() -> Person:
            with self._gallery() as g:
                return save_enrollment(g, employee_id, name, samples)

        return self._audited("enroll", who, detail, write)

    def _person_op(self, action: str, employee_id: str, detail: dict | None,
                   op: Callable[[Gallery | CentralGallery], Person]) -> Person:
        with self._gallery() as g:
            before = g.get(employee_id)
            return self._audited(action, before, detail, lambda: op(g))

    def rename(self, employee_id: str, name: str) -> Person:
        return self._person_op("rename", employee_id, {"name": name}, lambda g: g.rename(employee_id, name))

    def set_active(self, employee_id: str, active: bool) -> Person:
        return self._person_op("enable" if active else "disable", employee_id, None,
                               lambda g: g.set_active(employee_id, active))

    def set_challenge(self, employee_id: str, on: bool) -> Person:
        return self._person_op("challenge on" if on else "challenge off", employee_id, None,
                               lambda g: g.set_challenge(employee_id, on))

    def remove(self, employee_id: str) -> Person:
        def op(g: Gallery | CentralGallery) -> Person:
            person = g.get(employee_id)
            g.remove(employee_id)
            return person

        return self._person_op("remove", employee_id, None, op)

    # -- settings ---------------------------------------------------------------------
    def save_settings(self, old: Settings, new: Settings) -> Settings:
        changed = {f"{s}.{k}": v for s in EDITABLE_SECTIONS for k, v in dataclasses.asdict(getattr(new, s)).items()
                   if getattr(getattr(old, s), k) != v}
        config.check_settings(new)  # a value the loader would refuse is never written (nor logged as done)
        self._audited("settings", None, changed, lambda: config.save_settings(new))
        return new

    # -- audit log --------------------------------------------------------------------
    def events(self, person: str | None = None, last: int | None = None) -> list[dict]:
        with AuditLog(self.audit_path, kiosk=self.kiosk) as audit:
            return audit.query(person=person, last=last)

    def export_events(self, path: str | Path, person: str | None = None) -> int:
        """The log (or one person's part) as CSV in a private file; an audited action,
        since it copies who came and went out of the kiosk."""
        rows = self.events(person)
        self._audited("export-events", None, {"file": str(path), "person": person},
                      lambda: config.write_private(Path(path), to_csv(rows)))
        return len(rows)
