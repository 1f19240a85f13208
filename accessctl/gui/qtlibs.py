"""Whether Qt's xcb platform (an X display) can load here, asked before Qt is.

PyQt6's wheel carries Qt but not the X11 libraries its xcb plugin links to; on a bare
system Qt then aborts the process ("Could not load the Qt platform plugin xcb", a
core dump) instead of raising. ``ldd`` on the plugin names what is missing, which we
turn into one line with the Debian/Ubuntu packages to install. Kept free of Qt
imports so that the check runs before any of Qt is loaded.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

# The shared libraries the xcb plugin (and Qt's xcb glue) link to that a bare system
# may lack, and the Debian/Ubuntu package of each. The README's apt-get line is this.
PACKAGES = {
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libX11.so.6": "libx11-6",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb.so.1": "libxcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
}


def qt_dir() -> Path | None:
    """PyQt6's bundled Qt folder, found without importing PyQt6."""
    spec = importlib.util.find_spec("PyQt6")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "Qt6"


def missing_libraries(plugin: Path, qt_lib: Path) -> list[str]:
    """The libraries ``ldd`` cannot find for ``plugin`` (Qt's own folder on the path,
    as Qt's loader has it); empty when ldd is not there to ask."""
    ldd = shutil.which("ldd")
    if ldd is None or not plugin.is_file():
        return []
    env = dict(
        os.environ, LD_LIBRARY_PATH=os.pathsep.join(filter(None, [str(qt_lib), os.environ.get("LD_LIBRARY_PATH")]))
    )
    try:
        out = subprocess.run(
            [ldd, str(plugin)], capture_output=True, text=True, timeout=10, env=env, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return sorted({line.split()[0] for line in out.splitlines() if "not found" in line})


def uses_xcb() -> bool:
    """Whether Qt will pick the xcb platform: named in QT_QPA_PLATFORM, or the Linux
    default with an X display and no other platform asked for."""
    asked = os.environ.get("QT_QPA_PLATFORM", "")
    if asked:
        return any(p.strip().startswith("xcb") for p in asked.split(";")[:1])
    return bool(os.environ.get("DISPLAY")) and not os.environ.get("WAYLAND_DISPLAY")


def xcb_problem() -> str | None:
    """One line saying what the xcb platform lacks here, or None when it can load."""
    qt = qt_dir()
    if qt is None:
        return None
    plugin = qt / "plugins" / "platforms" / "libqxcb.so"
    missing = missing_libraries(plugin, qt / "lib")
    for glue in sorted((qt / "lib").glob("libQt6XcbQpa.so*"))[:1]:
        missing = sorted(set(missing) | set(missing_libraries(glue, qt / "lib")))
    missing = [m for m in missing if "Qt6" not in m]
    if not missing:
        return None
    packages = sorted({PACKAGES.get(m, m) for m in missing})
    return (
        f"the kiosk window cannot open on this X display: Qt's xcb platform needs {', '.join(missing)}; "
        f"install them (sudo apt-get install {' '.join(packages)}), or use --headless"
    )
