"""The admin area: PIN dialogs, and the people, settings, audit log and PIN pages.

Every change goes through the same functions as the command line (the gallery, the
settings writer, the audit log) on a background thread, and is itself written to
the audit log as an ``admin`` event.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from accessctl import config
from accessctl.config import Settings
from accessctl.gui.tasks import Tasks
from accessctl.kiosk.admin import EDITABLE_SECTIONS, AdminActions
from accessctl.storage.adminpin import AdminPin, PinError
from accessctl.storage.gallery import Person

AUDIT_ROWS = 500  # newest events shown; the whole log is in `accessctl events`


def error_label() -> QLabel:
    label = QLabel("")
    label.setObjectName("error")
    label.setStyleSheet("color: #c42b1c")
    label.setWordWrap(True)
    return label


def sentence(text: str) -> str:
    """A one-line message as the screen shows it: starting with a capital."""
    return text[:1].upper() + text[1:]


def _ok_cancel(dialog: QDialog, layout: QVBoxLayout, on_ok: Callable[[], None]) -> None:
    buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
    buttons.accepted.connect(on_ok)
    buttons.rejected.connect(dialog.reject)
    layout.addWidget(buttons)


class PinDialog(QDialog):
    """Asks for the admin PIN; accepted only when it is right."""

    def __init__(
        self,
        pin: AdminPin,
        parent: QWidget | None = None,
        *,
        purpose: str = "Admin area",
        on_failure: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(parent)
        self.pin = pin
        self.on_failure = on_failure
        self.setWindowTitle(f"{purpose}: admin PIN")
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel(f"{purpose} needs the admin PIN."))
        self.edit = QLineEdit()
        self.edit.setObjectName("pin")
        self.edit.setEchoMode(QLineEdit.EchoMode.Password)
        self.edit.setPlaceholderText("PIN")
        layout.addWidget(self.edit)
        self.error = error_label()
        layout.addWidget(self.error)
        _ok_cancel(self, layout, self.try_accept)

    def try_accept(self) -> None:
        why = self.pin.refusal(self.edit.text())
        self.edit.clear()
        if why is None:
            self.accept()
            return
        self.error.setText(sentence(why))
        if self.on_failure is not None:
            self.on_failure(why)


class SetPinDialog(QDialog):
    """Sets the admin PIN: on first run, or to change it (then the current one is asked)."""

    def __init__(self, pin: AdminPin, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pin = pin
        changing = pin.is_set()
        self.setWindowTitle("Change the admin PIN" if changing else "Set the admin PIN")
        layout = QVBoxLayout(self)
        intro = (
            "Enter the current PIN, then the new one twice."
            if changing
            else "This kiosk has no admin PIN yet. Choose one: it protects the admin area, enrollment and leaving "
            "kiosk mode. Digits only, at least 6."
        )
        text = QLabel(intro)
        text.setWordWrap(True)
        layout.addWidget(text)
        form = QFormLayout()
        self.current = QLineEdit()
        self.new = QLineEdit()
        self.again = QLineEdit()
        for name, edit in (("current", self.current), ("new", self.new), ("again", self.again)):
            edit.setEchoMode(QLineEdit.EchoMode.Password)
            edit.setObjectName(f"{name}Pin")
        if changing:
            form.addRow("Current PIN", self.current)
        form.addRow("New PIN", self.new)
        form.addRow("New PIN again", self.again)
        layout.addLayout(form)
        self.error = error_label()
        layout.addWidget(self.error)
        _ok_cancel(self, layout, self.try_accept)

    def try_accept(self) -> None:
        if self.new.text() != self.again.text():
            self.error.setText("The two new PINs differ")
            return
        try:
            self.pin.set(self.new.text(), self.current.text() if self.pin.is_set() else None)
        except PinError as exc:
            self.error.setText(str(exc)[0].upper() + str(exc)[1:])
            return
        self.accept()


class SettingsForm(QScrollArea):
    """Every editable setting, one field each, bounded by :data:`config.LIMITS`."""

    def __init__(self, settings: Settings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        self.fields: dict[tuple[str, str], QWidget] = {}
        inner = QWidget()
        layout = QVBoxLayout(inner)
        for section in EDITABLE_SECTIONS:
            values = getattr(settings, section)
            box = QGroupBox(f"[{section}]")
            form = QFormLayout(box)
            for f in dataclasses.fields(values):
                widget = self._editor(section, f.name, getattr(values, f.name))
                widget.setObjectName(f"{section}.{f.name}")
                self.fields[(section, f.name)] = widget
                form.addRow(f.name.replace("_", " "), widget)
            layout.addWidget(box)
        self.setWidget(inner)
        self.setWidgetResizable(True)

    @staticmethod
    def _editor(section: str, name: str, value: object) -> QWidget:
        lo, hi = config.limits(section, name)
        if isinstance(value, bool):
            check = QCheckBox()
            check.setChecked(value)
            return check
        if isinstance(value, int):
            whole = QSpinBox()
            whole.setRange(int(lo), int(hi))
            whole.setValue(value)
            return whole
        if isinstance(value, float):
            real = QDoubleSpinBox()
            real.setDecimals(4)
            real.setRange(lo, hi)
            real.setSingleStep(0.01 if value < 10 else 1.0)
            real.setValue(value)
            return real
        return QLineEdit(str(value))

    def values(self) -> Settings:
        out = copy.deepcopy(self.settings)
        for (section, name), w in self.fields.items():
            if isinstance(w, QCheckBox):
                v: object = w.isChecked()
            elif isinstance(w, QDoubleSpinBox):
                old = getattr(getattr(self.settings, section), name)
                # the box shows 4 decimals: an untouched value keeps all of its own
                v = old if abs(w.value() - round(old, 4)) < 1e-9 else w.value()
            elif isinstance(w, QSpinBox):
                v = w.value()
            else:
                assert isinstance(w, QLineEdit)
                v = w.text().strip()
            setattr(getattr(out, section), name, v)
        return out


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    header, rows = t.horizontalHeader(), t.verticalHeader()
    assert header is not None and rows is not None  # a QTableWidget always has both
    header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    header.setStretchLastSection(True)
    rows.setVisible(False)
    return t


def _fill(table: QTableWidget, rows: list[list[object]]) -> None:
    table.setRowCount(len(rows))
    for i, row in enumerate(rows):
        for j, value in enumerate(row):
            text = "" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
            table.setItem(i, j, QTableWidgetItem(text))


class AdminDialog(QDialog):
    """The admin area, opened after the PIN. ``settings_saved(Settings)`` tells the kiosk
    to restart its pipeline with the new settings; ``enroll_requested`` asks it for the
    enrollment wizard (it must release the camera first)."""

    settings_saved = pyqtSignal(object)
    enroll_requested = pyqtSignal()
    gallery_changed = pyqtSignal()

    def __init__(
        self,
        settings: Settings,
        pin: AdminPin,
        parent: QWidget | None = None,
        *,
        gallery_path: Path | None = None,
        audit_path: Path | None = None,
    ) -> None:
        super().__init__(parent)
        self.settings = settings
        self.pin = pin
        self.gallery_path, self.audit_path = gallery_path, audit_path
        self.admin_actions = AdminActions(gallery_path, audit_path, settings.kiosk.name, settings.store.url)
        self.tasks = Tasks(self)
        self.people: list[Person] = []
        self.events: list[dict] = []
        self.setWindowTitle(f"accessctl admin: {settings.kiosk.name}")
        self.resize(900, 620)
        layout = QVBoxLayout(self)
        self.tabs = QTabWidget()
        self.tabs.addTab(self._people_page(), "People")
        self.tabs.addTab(self._settings_page(), "Settings")
        self.tabs.addTab(self._audit_page(), "Audit log")
        self.tabs.addTab(self._pin_page(), "Admin PIN")
        layout.addWidget(self.tabs)
        self.message = QLabel("")
        self.message.setObjectName("adminMessage")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self.refresh_people()
        self.refresh_events()

    # -- feedback ---------------------------------------------------------------------
    def say(self, text: str, error: bool = False) -> None:
        self.message.setStyleSheet("color: #c42b1c" if error else "color: #1b873a")
        self.message.setText(text)

    def _failed(self, exc: Exception) -> None:
        self.say(str(exc), error=True)

    def _admin_event(self, action: str, person: Person | None = None, detail: dict | None = None) -> None:
        self.tasks.run(lambda: self.admin_actions.log(action, person, detail), on_error=self._failed)

    # -- people -----------------------------------------------------------------------
    def _people_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.people_table = _table(["Employee id", "Name", "Active", "Head turn", "Templates", "Enrolled"])
        self.people_table.setObjectName("peopleTable")
        layout.addWidget(self.people_table)
        row = QHBoxLayout()
        for text, slot in (
            ("Enroll…", self.enroll_requested.emit),
            ("Rename…", self._ask_rename),
            ("Enable / disable", self._toggle_selected),
            ("Head turn always / when unsure", self._toggle_challenge),
            ("Remove…", self._ask_remove),
            ("Refresh", self.refresh_people),
        ):
            b = QPushButton(text)
            b.clicked.connect(slot)
            row.addWidget(b)
        row.addStretch(1)
        layout.addLayout(row)
        return page

    def refresh_people(self) -> None:
        def show(people: list[Person]) -> None:
            self.people = people
            _fill(
                self.people_table,
                [
                    [
                        p.employee_id,
                        p.name,
                        "yes" if p.active else "no",
                        "always" if p.challenge else "when unsure",
                        p.templates,
                        p.created,
                    ]
                    for p in people
                ],
            )

        self.tasks.run(self.admin_actions.people, show, self._failed)

    def selected_person(self) -> Person | None:
        model = self.people_table.selectionModel()
        rows = model.selectedRows() if model is not None else []
        return self.people[rows[0].row()] if rows and rows[0].row() < len(self.people) else None

    def _gallery_op(self, work: Callable[[], Person], done: str) -> None:
        def finished(person: Person) -> None:
            self.say(done.format(name=person.name, id=person.employee_id))
            self.refresh_people()
            self.gallery_changed.emit()

        self.tasks.run(work, finished, self._failed)

    def rename(self, employee_id: str, name: str) -> None:
        self._gallery_op(lambda: self.admin_actions.rename(employee_id, name), "Renamed {id} to {name}")

    def set_active(self, employee_id: str, active: bool) -> None:
        self._gallery_op(
            lambda: self.admin_actions.set_active(employee_id, active),
            "{name} ({id}) is now " + ("enabled" if active else "disabled"),
        )

    def set_challenge(self, employee_id: str, on: bool) -> None:
        self._gallery_op(
            lambda: self.admin_actions.set_challenge(employee_id, on),
            "{name} ({id}): the door asks for a head turn " + ("always" if on else "only when unsure"),
        )

    def remove(self, employee_id: str) -> None:
        self._gallery_op(lambda: self.admin_actions.remove(employee_id), "Removed {name} ({id}) and their templates")

    def _ask_rename(self) -> None:
        p = self.selected_person()
        if p is None:
            return self.say("Select a person first", error=True)
        name, ok = QInputDialog.getText(self, "Rename", f"New name for {p.employee_id}:", text=p.name)
        if ok:
            self.rename(p.employee_id, name)

    def _toggle_selected(self) -> None:
        p = self.selected_person()
        if p is None:
            return self.say("Select a person first", error=True)
        self.set_active(p.employee_id, not p.active)

    def _toggle_challenge(self) -> None:
        p = self.selected_person()
        if p is None:
            return self.say("Select a person first", error=True)
        self.set_challenge(p.employee_id, not p.challenge)

    def _ask_remove(self) -> None:
        p = self.selected_person()
        if p is None:
            return self.say("Select a person first", error=True)
        answer = QMessageBox.question(
            self,
            "Remove",
            f"Remove {p.name} ({p.employee_id}) and {p.templates} template(s)? They will no longer be let in.",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.remove(p.employee_id)

    # -- settings ---------------------------------------------------------------------
    def _settings_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        self.settings_form = SettingsForm(self.settings)
        layout.addWidget(self.settings_form)
        save = QPushButton("Save and apply")
        save.setObjectName("saveSettings")
        save.clicked.connect(self.save_settings)
        layout.addWidget(save, alignment=Qt.AlignmentFlag.AlignRight)
        return page

    def save_settings(self) -> None:
        new, old = self.settings_form.values(), self.settings

        def finished(saved: Settings) -> None:
            self.settings = saved
            self.admin_actions.kiosk = saved.kiosk.name
            self.say(f"Settings saved to {config.config_path()} and applied")
            self.settings_saved.emit(saved)

        self.tasks.run(lambda: self.admin_actions.save_settings(old, new), finished, self._failed)

    # -- audit log --------------------------------------------------------------------
    def _audit_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        row = QHBoxLayout()
        self.person_filter = QLineEdit()
        self.person_filter.setPlaceholderText("employee id (all when empty)")
        row.addWidget(QLabel(f"Newest {AUDIT_ROWS} events for"))
        row.addWidget(self.person_filter)
        show = QPushButton("Show")
        show.clicked.connect(self.refresh_events)
        row.addWidget(show)
        export = QPushButton("Export CSV…")
        export.clicked.connect(self._ask_export)
        row.addWidget(export)
        layout.addLayout(row)
        self.audit_table = _table(["Time", "Kiosk", "Event", "Reason", "Employee id", "Name", "Distance", "Liveness"])
        self.audit_table.setObjectName("auditTable")
        layout.addWidget(self.audit_table)
        return page

    def refresh_events(self) -> None:
        person = self.person_filter.text().strip() or None

        def show(rows: list[dict]) -> None:
            self.events = rows
            _fill(
                self.audit_table,
                [
                    [
                        r["time"],
                        r["kiosk"],
                        r["event"],
                        r["reason"],
                        r["person_id"],
                        r["name"],
                        r["distance"],
                        r["liveness"],
                    ]
                    for r in reversed(rows)
                ],
            )

        self.tasks.run(lambda: self.admin_actions.events(person, AUDIT_ROWS), show, self._failed)

    def export_events(self, path: str | Path) -> None:
        person = self.person_filter.text().strip() or None

        self.tasks.run(
            lambda: self.admin_actions.export_events(path, person),
            lambda n: self.say(f"{n} events written to {path}"),
            self._failed,
        )

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the audit log", "events.csv", "CSV (*.csv)")
        if path:
            self.export_events(path)

    # -- PIN ----------------------------------------------------------------------------
    def _pin_page(self) -> QWidget:
        page = QWidget()
        layout = QVBoxLayout(page)
        text = QLabel(
            "The admin PIN protects this area, enrollment and leaving kiosk mode. It is stored as a salted "
            "scrypt hash; after 5 wrong PINs in a row it is refused for a while."
        )
        text.setWordWrap(True)
        layout.addWidget(text)
        change = QPushButton("Change the PIN…")
        change.clicked.connect(self._ask_change_pin)
        layout.addWidget(change, alignment=Qt.AlignmentFlag.AlignLeft)
        layout.addStretch(1)
        return page

    def _pin_changed(self) -> None:
        self.say("The admin PIN was changed")
        self._admin_event("pin-changed")

    def _ask_change_pin(self) -> None:
        dialog = SetPinDialog(self.pin, self)
        dialog.accepted.connect(self._pin_changed)
        dialog.open()

    def done(self, result: int) -> None:  # noqa: D102 - Qt's name
        self.tasks.shutdown()
        super().done(result)


__all__ = ["AdminDialog", "PinDialog", "SetPinDialog", "SettingsForm", "error_label", "sentence"]
