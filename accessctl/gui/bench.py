"""``bench --kiosk``: the kiosk window itself, timed while it runs on videos.

Here rather than in ``evaluation/`` because it drives Qt: only ``gui/`` imports Qt.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from PyQt6.QtCore import QEventLoop, QTimer

from accessctl import config
from accessctl.errors import AccessctlError
from accessctl.evaluation.bench import time_stats
from accessctl.gui.app import application
from accessctl.gui.kiosk_window import KioskWindow
from accessctl.kiosk.session import KioskSession, KioskState
from accessctl.storage.adminpin import AdminPin


def run_kiosk_bench(sources: Sequence[str], *, max_s: float = 300.0) -> dict:
    """The kiosk window running on videos played at their own pace, as a camera delivers
    frames (stale ones dropped), with the real GUI event loop: rates, latencies, the
    time from a face's first frame to its decision, and the GUI thread's longest stall.

    Counting starts once the first frame is processed (the models are loaded by then,
    on the worker thread; the window is already up and painting)."""
    app = application()  # kept alive for the window's lifetime
    session = KioskSession(list(sources), config.load_settings(), realtime=True)
    window = KioskWindow(session, AdminPin())
    loop = QEventLoop()
    t0 = time.monotonic()
    mark: dict[str, float] = {}

    def check() -> None:
        view = window.view
        if "start" not in mark and view is not None and view.result is not None:
            mark["start"], mark["preview"] = time.monotonic(), window.preview_frames
            session.reset_measurements()
            window.reset_measurements()
        if (
            view is not None and view.state in (KioskState.ENDED, KioskState.OUT_OF_SERVICE)
        ) or time.monotonic() - t0 > max_s:
            mark["end"] = time.monotonic()
            loop.quit()

    timer = QTimer()
    timer.timeout.connect(check)
    timer.start(50)
    window.start()
    loop.exec()
    timer.stop()
    stall_ms = window.longest_stall_ms
    state, message = (window.view.state, window.view.message) if window.view else ("none", "")
    stats = session.feed_stats
    window.close()
    if "start" not in mark:
        raise AccessctlError(f"the kiosk processed no frame ({state}: {message})")
    elapsed = mark["end"] - mark["start"]
    m = session.measurements
    lat = list(m.latencies_ms)
    return {
        "sources": list(sources),
        "platform": app.platformName(),
        "seconds": round(elapsed, 2),
        "capture_fps": round((stats.captured if stats else 0) / elapsed, 1),
        "preview_fps": round((window.preview_frames - mark["preview"]) / elapsed, 1),
        "inference_fps": round(len(lat) / elapsed, 1),
        "frames_dropped": stats.dropped if stats else 0,
        "frames_captured": stats.captured if stats else 0,
        "latency_ms": time_stats(np.asarray(lat) / 1000.0) if lat else None,
        "pipeline_ms": time_stats(np.asarray(m.inference_ms) / 1000.0) if m.inference_ms else None,
        "face_to_decision_s": [round(v, 3) for v in m.face_to_decision_s],
        "decisions": [f"{d.event} {d.reason}" + (f" {d.name}" if d.name else "") for d in m.decisions],
        "gui_longest_stall_ms": round(stall_ms, 1),
        "end_state": state,
    }
