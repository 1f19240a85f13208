"""accessctl: a face access-control kiosk with liveness detection.

The small public API lives in :mod:`accessctl.api`; everything else is the machinery
behind it and the kiosk.
"""

__version__ = "0.1.0"
