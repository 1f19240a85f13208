"""The PyQt6 screens: the kiosk window, the admin area and the enrollment wizard.

Only this package imports Qt. Each widget is a thin view over a model that knows
nothing of Qt (:mod:`accessctl.kiosk`, :mod:`accessctl.enrollment`,
:mod:`accessctl.adminpin`, the gallery and the audit log): widgets poll or are told,
paint, and forward what the admin asks; they take no access decisions. Anything that
can take longer than a frame (inference, SQLite writes, reading photos) runs off the
GUI thread.
"""
