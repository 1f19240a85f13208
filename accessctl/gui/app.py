"""``accessctl run`` with a window: the Qt application around the kiosk window."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence

from PyQt6.QtCore import QMessageLogContext, QTimer, QtMsgType, qInstallMessageHandler
from PyQt6.QtWidgets import QApplication, QDialog

from accessctl.config import Settings
from accessctl.door.assembly import open_site
from accessctl.door.events import DoorEvent, Problem, StoreNews
from accessctl.errors import AccessctlError
from accessctl.frames.capture import is_camera
from accessctl.frames.sources import open_source
from accessctl.gui.admin import SetPinDialog
from accessctl.gui.kiosk_window import KioskWindow
from accessctl.gui.qtlibs import uses_xcb, xcb_problem
from accessctl.kiosk.session import KioskSession
from accessctl.storage.adminpin import AdminPin


def application() -> QApplication:
    """The one QApplication; a clear error, not Qt's abort, when there is no screen."""
    if (
        sys.platform.startswith("linux")
        and not os.environ.get("QT_QPA_PLATFORM")
        and not os.environ.get("DISPLAY")
        and not os.environ.get("WAYLAND_DISPLAY")
    ):
        raise AccessctlError(
            "no display to open the kiosk window on: run it on the kiosk's screen, use --headless, "
            "or set QT_QPA_PLATFORM=offscreen"
        )
    if sys.platform.startswith("linux") and uses_xcb():
        problem = xcb_problem()  # Qt would abort the process (a core dump), not raise
        if problem:
            raise AccessctlError(problem)
    app = QApplication.instance()
    if app is None:
        qInstallMessageHandler(_qt_message)
        app = QApplication(sys.argv[:1])
        app.setApplicationName("accessctl")
    return app  # type: ignore[return-value]


def _qt_message(kind: QtMsgType, context: QMessageLogContext, message: str | None) -> None:
    """Qt's own messages to stderr, less one that the offscreen platform prints for
    every window (it cannot honour size hints, and nothing here needs it to)."""
    if message and "propagateSizeHints" not in message:
        print(message, file=sys.stderr)


def run_kiosk(
    sources: Sequence[str], settings: Settings, *, realtime: bool = True, loop: bool = False, fullscreen: bool = False
) -> int:
    """Open the kiosk window and run until it is closed.

    On the first run there is no admin PIN yet: it is asked for before anything else,
    and the kiosk does not start without one (the admin area must never be open)."""
    for spec in sources:  # a missing or damaged file is one clear error, before any window
        if not is_camera(spec):
            open_source(spec).close()
    app = application()
    pin = AdminPin()
    if not pin.is_set():
        if SetPinDialog(pin).exec() != QDialog.DialogCode.Accepted:
            raise AccessctlError("an admin PIN is needed on the first run (or set one with `accessctl admin set-pin`)")
    notes: list[StoreNews] = []  # what the store link says before the session exists
    session: KioskSession | None = None

    def store_changed(news: StoreNews) -> None:
        if session is None:
            notes.append(news)
        else:
            session.store_changed(news)

    def reporter_news(event: DoorEvent) -> None:  # the MQTT broker away or back
        if session is not None and isinstance(event, Problem):
            session.problem(event)

    with open_site(settings, reporter_news, store_changed) as site:
        replica = site.gallery_path
        session = KioskSession(
            list(sources), settings, realtime=realtime, loop=loop, gallery_path=replica, reporter=site.reporter
        )
        for news in notes:
            session.store_changed(news)
        window = KioskWindow(session, pin, fullscreen=fullscreen, gallery_path=replica)
        signal.signal(signal.SIGINT, lambda *_: window.close() if not window.kiosk_mode else app.quit())
        keepalive = QTimer()  # lets Python run its signal handlers while Qt's loop runs
        keepalive.start(200)
        keepalive.timeout.connect(lambda: None)
        window.start()
        app.exec()
        window.session.stop(wait_s=10.0)  # the window is gone: let queued hooks and audit writes finish
    return 0
