"""The PyQt6 screens: the kiosk window, the admin area and the enrollment wizard.

Only this package imports Qt. Each widget is a thin view over a model that knows
nothing of Qt (:mod:`accessctl.kiosk.session`, :mod:`accessctl.kiosk.enrollment`,
:mod:`accessctl.storage.adminpin`, the gallery and the audit log): widgets poll or are told,
paint, and forward what the admin asks; they take no access decisions. Anything that
can take longer than a frame (inference, SQLite writes, reading photos) runs off the
GUI thread.
"""

import os as _os

import cv2 as _cv2  # noqa: F401 - imported first, for its side effect undone below

# Importing OpenCV points Qt at OpenCV's own Qt 5 plugins; Qt 6 must use its own, or
# it cannot open a window on X ("could not load the Qt platform plugin xcb").
if "cv2" in _os.environ.get("QT_QPA_PLATFORM_PLUGIN_PATH", ""):
    del _os.environ["QT_QPA_PLATFORM_PLUGIN_PATH"]
