"""Screenshots of the real kiosk window, admin area and enrollment wizard for the README.

Run by scripts/screenshots under Xvfb: the windows are real X11 windows and each
picture is grabbed from the X server's screen, not rendered offscreen. The kiosk plays
the demo videos (accessctl.kiosk.demo) frame by frame, so the same moments are caught every
time.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtWidgets import QApplication, QCheckBox, QLineEdit

from accessctl.config import load_settings
from accessctl.gui.app import application
from accessctl.gui.kiosk_window import KioskWindow
from accessctl.kiosk.demo import prepare_demo
from accessctl.kiosk.session import KioskSession


def wait(app: QApplication, cond: Callable[[], bool], timeout_s: float = 180.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise SystemExit("screenshots: timed out waiting for the screen to show what was expected")
        app.processEvents()
        time.sleep(0.005)


def grab(app: QApplication, widget, path: Path) -> None:
    for _ in range(10):  # let the last frame and banner be painted and flushed to the X server
        app.processEvents()
        time.sleep(0.02)
    g = widget.frameGeometry()
    app.primaryScreen().grabWindow(0, g.x(), g.y(), g.width(), g.height()).save(str(path))
    print(f"wrote {path}")


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="accessctl-shots-", ignore_cleanup_errors=True) as home:
        sources, demo_pin = prepare_demo(Path(home))
        app = application()
        if app.platformName() != "xcb":
            raise SystemExit(f"screenshots: needs a real X display (Xvfb), not {app.platformName()!r}")
        from accessctl.storage.adminpin import AdminPin

        window = KioskWindow(KioskSession(sources, load_settings(), realtime=False), AdminPin())
        window.move(0, 0)
        window.start()

        def showing(headline: str, detail: str) -> Callable[[], bool]:
            return lambda: window.text is not None and (window.text.headline, window.text.detail) == (headline, detail)

        wait(app, showing("ACCESS GRANTED", "Welcome, Pair One"))
        grab(app, window, out / "kiosk-granted.png")
        spoofs = lambda: [d for d in window.session.measurements.decisions if d.reason == "spoof"]  # noqa: E731
        # the second refusal: the face on the phone's screen (the first is the person
        # holding it up, a hand over the chin, whom the texture CNNs refuse too)
        wait(app, lambda: len(spoofs()) >= 2 and showing("ACCESS DENIED", "Photo or screen detected")())
        grab(app, window, out / "kiosk-denied-replay.png")
        wait(app, showing("ACCESS DENIED", "Not recognised"))
        grab(app, window, out / "kiosk-denied-stranger.png")
        wait(app, lambda: window.view is not None and window.view.state == "ended")
        window.close()

        # A door that asks everyone ([liveness] challenge = always): the prompt.
        asking = load_settings()
        asking.liveness.challenge = "always"
        window = KioskWindow(KioskSession(sources[:1], asking, realtime=False), AdminPin())
        window.move(0, 0)
        window.start()
        wait(app, lambda: window.text is not None and "TURN YOUR HEAD" in window.text.headline)
        grab(app, window, out / "kiosk-challenge.png")
        wait(app, lambda: window.view is not None and window.view.state == "ended")

        window.show_admin()
        admin = window.admin
        admin.move(60, 40)
        wait(app, lambda: admin.people_table.rowCount() == 1 and admin.tasks.pending == 0)
        grab(app, admin, out / "admin-people.png")
        admin.tabs.setCurrentIndex(2)
        admin.refresh_events()
        wait(app, lambda: admin.tasks.pending == 0)
        grab(app, admin, out / "admin-audit-log.png")

        window.open_wizard()
        wizard = window.wizard
        wizard.move(60, 40)
        wizard.findChild(QLineEdit, "employeeId").setText("E042")
        wizard.findChild(QLineEdit, "name").setText("Ada Lovelace")
        wizard.next()
        wizard.findChild(QCheckBox, "consent").setChecked(True)
        grab(app, wizard, out / "wizard-consent.png")
        wizard.next()
        wizard.next()
        page = wizard.camera_page
        wait(app, lambda: page.session.latest()[1] is not None and len(page.session.latest()[1].poses_done) == 1)
        grab(app, wizard, out / "wizard-capture.png")
        wait(app, page.isComplete)
        wizard.next()
        wait(app, lambda: wizard.review_page.checked)
        grab(app, wizard, out / "wizard-review.png")
        wizard.reject()
        admin.close()
        window.close()
    print(f"demo admin PIN was {demo_pin}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
