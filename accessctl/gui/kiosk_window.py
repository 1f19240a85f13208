"""The screen at the door: preview, face boxes, the decision banner, rates, admin entry.

A view of :class:`accessctl.kiosk.session.KioskSession`: a timer asks it for the latest
:class:`~accessctl.kiosk.session.KioskView` about 60 times a second and paints it. The timer
also measures the GUI thread: the longest gap between two of its ticks, beyond the
interval, is the longest stall (reported by ``accessctl bench --kiosk``).
"""

from __future__ import annotations

import html
import time
from collections import deque
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QCloseEvent, QKeySequence, QShortcut
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from accessctl.config import Settings
from accessctl.gui.admin import AdminDialog, PinDialog, SetPinDialog
from accessctl.gui.preview import TONE_COLOURS, VideoWidget
from accessctl.gui.tasks import Tasks
from accessctl.gui.wizard import EnrollWizard
from accessctl.kiosk.admin import AdminActions
from accessctl.kiosk.session import KioskSession, KioskState, KioskView, ScreenText, screen_text
from accessctl.storage.adminpin import AdminPin

TICK_MS = 16


class KioskWindow(QMainWindow):
    def __init__(
        self,
        session: KioskSession,
        pin: AdminPin,
        *,
        fullscreen: bool = False,
        gallery_path: Path | None = None,
        audit_path: Path | None = None,
    ) -> None:
        super().__init__()
        self.session = session
        self.pin = pin
        self.kiosk_mode = fullscreen
        self.gallery_path, self.audit_path = gallery_path, audit_path
        self.tasks = Tasks(self)
        self.admin: AdminDialog | None = None
        self.wizard: EnrollWizard | None = None
        self._allow_close = not fullscreen
        self.setWindowTitle(f"accessctl: {session.settings.kiosk.name}")
        self.resize(1024, 760)

        central = QWidget()
        central.setStyleSheet("background: #0c0e12; color: white")
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        top = QHBoxLayout()
        top.setContentsMargins(16, 8, 16, 8)
        self.title = QLabel(session.settings.kiosk.name)
        self.title.setStyleSheet("font-size: 18px; font-weight: bold")
        self.clock = QLabel("")
        self.clock.setStyleSheet("font-size: 18px")
        self.admin_button = QPushButton("Admin")
        self.admin_button.setObjectName("adminButton")
        self.admin_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.admin_button.setStyleSheet(
            "color: #90a4ae; background: transparent; border: 1px solid #37474f; padding: 4px 12px"
        )
        self.admin_button.clicked.connect(self.open_admin)
        top.addWidget(self.title)
        top.addStretch(1)
        top.addWidget(self.clock)
        top.addSpacing(16)
        top.addWidget(self.admin_button)
        layout.addLayout(top)
        self.video = VideoWidget(mirror=session.settings.kiosk.mirror)
        layout.addWidget(self.video, 1)
        self.banner = QLabel("")
        self.banner.setObjectName("banner")
        self.banner.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.banner.setMinimumHeight(150)
        self.banner.setWordWrap(True)
        layout.addWidget(self.banner)
        self.status = QLabel("")
        self.status.setObjectName("status")
        self.status.setStyleSheet("color: #90a4ae; padding: 4px 16px; font-size: 13px")
        layout.addWidget(self.status)
        self.setCentralWidget(central)
        QShortcut(QKeySequence("Ctrl+Shift+A"), self).activated.connect(self.open_admin)

        self.view: KioskView | None = None
        self.text: ScreenText | None = None
        self._shown: tuple[object, object] = (None, None)
        self.preview_times: deque[float] = deque()
        self.preview_frames = 0  # distinct camera frames painted
        self.longest_stall_ms = 0.0
        self._last_tick = 0.0
        self._last_status = 0.0
        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self.tick)

    # -- life cycle -------------------------------------------------------------------
    def start(self) -> None:
        self.session.start()
        self._last_tick = time.monotonic()
        self.timer.start()
        if self.kiosk_mode:
            self.showFullScreen()
        else:
            self.show()

    def reset_measurements(self) -> None:
        self.longest_stall_ms = 0.0
        self._last_tick = time.monotonic()

    def closeEvent(self, event: QCloseEvent | None) -> None:  # noqa: N802 - Qt's name
        if not self._allow_close:  # kiosk mode: leaving needs the PIN
            if event is not None:
                event.ignore()
            dialog = PinDialog(self.pin, self, purpose="Leaving kiosk mode", on_failure=self._pin_failed)
            dialog.accepted.connect(self._close_unlocked)
            dialog.open()
            return
        self.timer.stop()
        self.session.stop()
        for child in (self.wizard, self.admin):
            if child is not None:
                child.close()
        self.tasks.shutdown()
        if event is not None:
            event.accept()

    def _close_unlocked(self) -> None:
        self._allow_close = True
        self._audit("leave-kiosk-mode")
        self.close()

    # -- painting ---------------------------------------------------------------------
    def tick(self) -> None:
        now = time.monotonic()
        self.longest_stall_ms = max(self.longest_stall_ms, (now - self._last_tick) * 1000.0 - TICK_MS)
        self._last_tick = now
        view = self.view = self.session.view()
        shown = (view.frame, view.result)
        if shown[0] is not self._shown[0] or shown[1] is not self._shown[1]:
            if shown[0] is not self._shown[0] and view.frame is not None:
                self.preview_times.append(now)
                self.preview_frames += 1
            self._shown = shown
            faces = view.result.faces if view.result is not None and view.frame is not None else ()
            self.video.show_frame(
                view.frame.image if view.frame is not None else None, faces, dim=view.idle and view.banner is None
            )
        while self.preview_times and now - self.preview_times[0] > 2.0:
            self.preview_times.popleft()
        text = screen_text(view)
        if text != self.text:
            self.text = text
            self.banner.setStyleSheet(f"background: {TONE_COLOURS[text.tone]}; color: white; padding: 12px")
            detail = f"<div style='font-size: 26px'>{html.escape(text.detail)}</div>" if text.detail else ""
            self.banner.setText(
                f"<div style='font-size: 44px; font-weight: bold'>{html.escape(text.headline)}</div>" + detail
            )
        if now - self._last_status >= 0.5:
            self._last_status = now
            self.clock.setText(time.strftime("%H:%M"))
            self.status.setText(self.status_line(view))

    def preview_fps(self) -> float:
        t = self.preview_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0

    def status_line(self, view: KioskView) -> str:
        parts = [
            f"camera {view.capture_fps:.0f} fps",
            f"preview {self.preview_fps():.0f} fps",
            f"inference {view.inference_fps:.0f} fps",
        ]
        if view.latency_ms is not None:
            parts.append(f"latency {view.latency_ms:.0f} ms")
        if view.message and view.state not in (KioskState.OUT_OF_SERVICE, KioskState.CAMERA_LOST):
            parts.append(view.message)
        if view.store:
            parts.append(f"on its replica alone: {view.store}")
        if view.warning:
            parts.append(f"warning: {view.warning}")
        return "  ·  ".join(parts)

    # -- admin ------------------------------------------------------------------------
    def _audit(self, action: str, detail: dict | None = None) -> None:
        actions = AdminActions(self.gallery_path, self.audit_path, self.session.settings.kiosk.name)
        self.tasks.run(lambda: actions.log(action, None, detail))

    def _pin_failed(self, why: str) -> None:
        self._audit("pin-failed", {"why": why})

    def open_admin(self) -> None:
        if self.admin is not None and self.admin.isVisible():
            self.admin.raise_()
            return
        dialog: SetPinDialog | PinDialog
        if not self.pin.is_set():
            dialog = SetPinDialog(self.pin, self)
            dialog.accepted.connect(self.show_admin)
        else:
            dialog = PinDialog(self.pin, self, on_failure=self._pin_failed)
            dialog.accepted.connect(self.show_admin)
        dialog.open()

    def show_admin(self) -> None:
        """The admin area (after the PIN)."""
        self._audit("unlock")
        self.admin = AdminDialog(
            self.session.settings, self.pin, self, gallery_path=self.gallery_path, audit_path=self.audit_path
        )
        self.admin.settings_saved.connect(self.apply_settings)
        self.admin.enroll_requested.connect(self.open_wizard)
        self.admin.open()

    def apply_settings(self, settings: Settings) -> None:
        self.video.mirror = settings.kiosk.mirror
        self.title.setText(settings.kiosk.name)
        self.session.restart(settings)

    def open_wizard(self) -> None:
        """Enrollment needs the camera: the kiosk lets go of it until the wizard closes."""
        self.session.stop()
        self.wizard = EnrollWizard(
            self.session.sources,
            self.session.settings,
            self.pin,
            realtime=self.session.realtime,
            unlocked=True,
            gallery_path=self.gallery_path,
            audit_path=self.audit_path,
            parent=self,
        )
        if self.admin is not None:
            self.wizard.enrolled.connect(self._refresh_admin_people)
        self.wizard.finished.connect(self._wizard_closed)
        self.wizard.open()

    def _refresh_admin_people(self, _employee_id: object = None) -> None:
        if self.admin is not None:
            self.admin.refresh_people()

    def _wizard_closed(self, _result: int) -> None:
        self.session.start()
