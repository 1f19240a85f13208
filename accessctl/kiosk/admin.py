"""What the admin area does, apart from Qt: people, settings and the audit log, and
the one gate every admin change passes, from the window or the command line.

Every change is an ``admin`` event written *before* the change (an admin change that
cannot be logged does not happen), on a site's central log first where there is one,
and a change that then fails is logged as failed (:meth:`AdminActions.audited`). Each
method opens the gallery or the log itself, so it can run on a worker thread while the
window stays responsive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from accessctl import config
from accessctl.clock import now
from accessctl.config import Settings
from accessctl.errors import AccessctlError
from accessctl.storage.audit import AuditLog, log_admin, to_csv
from accessctl.storage.central import CentralGallery
from accessctl.storage.gallery import Gallery, Person
from accessctl.storage.replica import upload_now

if TYPE_CHECKING:  # torch: only an enrollment needs it, not every admin command
    from accessctl.identity.matching import EncodedFace

# The settings sections the admin area edits (the rest only the configuration file).
EDITABLE_SECTIONS = ("match", "liveness", "access", "enroll", "hook", "kiosk", "audit")

T = TypeVar("T")


@dataclasses.dataclass
class AdminActions:
    gallery_path: Path | None = None
    audit_path: Path | None = None
    kiosk: str = "kiosk"
    store_url: str = ""  # a many-door site: changes go to the central store, and its log hears them first
    via: str = "gui"  # where the change came from, in its event: gui or cli

    def _gallery(self) -> Gallery | CentralGallery:
        return CentralGallery(self.store_url) if self.store_url else Gallery(self.gallery_path)

    def log(self, action: str, person: Person | None = None, detail: dict | None = None) -> None:
        log_admin(action, person, detail, self.audit_path, self.kiosk, via=self.via)

    def _upload(self) -> None:
        """This folder's events to the site's central log, now (where there is one)."""
        if self.store_url:
            upload_now(self.store_url, self.audit_path)

    def audited(self, action: str, person: Person | None, detail: dict | None, change: Callable[[], T]) -> T:
        """``change()`` behind its ``admin`` event: written first (on the central log too,
        where the site has one), or the change is not made; a change that then fails
        is logged as failed."""
        try:
            self.log(action, person, detail)
        except AccessctlError as exc:
            raise AccessctlError(f"{action} not done: the audit log cannot record it ({exc})") from None
        try:
            self._upload()
        except AccessctlError as exc:
            self._failed(action, person, str(exc))
            raise AccessctlError(f"{action} not done: the central audit log cannot record it ({exc})") from None
        try:
            return change()
        except AccessctlError as exc:
            self._failed(action, person, str(exc))
            raise

    def _failed(self, action: str, person: Person | None, why: str) -> None:
        """The change logged as begun did not happen: said in the log too (best effort)."""
        try:
            self.log(f"{action} failed", person, {"error": why})
            self._upload()
        except AccessctlError:
            pass  # the change did not happen; the error itself reaches the admin

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
            from accessctl.identity.matching import save_enrollment

            with self._gallery() as g:
                return save_enrollment(g, employee_id, name, samples)

        return self.audited("enroll", who, detail, write)

    def _person_op(
        self, action: str, employee_id: str, detail: dict | None, op: Callable[[Gallery | CentralGallery], Person]
    ) -> Person:
        with self._gallery() as g:
            before = g.get(employee_id)
            return self.audited(action, before, detail, lambda: op(g))

    def rename(self, employee_id: str, name: str) -> Person:
        return self._person_op("rename", employee_id, {"name": name}, lambda g: g.rename(employee_id, name))

    def set_active(self, employee_id: str, active: bool) -> Person:
        return self._person_op(
            "enable" if active else "disable", employee_id, None, lambda g: g.set_active(employee_id, active)
        )

    def set_challenge(self, employee_id: str, on: bool) -> Person:
        return self._person_op(
            "challenge on" if on else "challenge off", employee_id, None, lambda g: g.set_challenge(employee_id, on)
        )

    def remove(self, employee_id: str) -> Person:
        def op(g: Gallery | CentralGallery) -> Person:
            person = g.get(employee_id)
            g.remove(employee_id)
            return person

        return self._person_op("remove", employee_id, None, op)

    # -- settings ---------------------------------------------------------------------
    def save_settings(self, old: Settings, new: Settings) -> Settings:
        changed = {
            f"{s}.{k}": v
            for s in EDITABLE_SECTIONS
            for k, v in dataclasses.asdict(getattr(new, s)).items()
            if getattr(getattr(old, s), k) != v
        }
        config.check_settings(new)  # a value the loader would refuse is never written (nor logged as done)
        self.audited("settings", None, changed, lambda: config.save_settings(new))
        return new

    # -- audit log --------------------------------------------------------------------
    def events(self, person: str | None = None, last: int | None = None) -> list[dict]:
        with AuditLog(self.audit_path, kiosk=self.kiosk) as audit:
            return audit.query(person=person, last=last)

    def export_events(self, path: str | Path, person: str | None = None) -> int:
        """The log (or one person's part) as CSV in a private file; an audited action,
        since it copies who came and went out of the kiosk."""
        rows = self.events(person)
        self.audited(
            "export-events",
            None,
            {"file": str(path), "person": person},
            lambda: config.write_private(Path(path), to_csv(rows)),
        )
        return len(rows)
