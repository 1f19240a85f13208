"""The kiosk on a real X display: Qt's xcb platform checked before Qt loads it (a bare
system gets one line naming the packages, never a core dump), and the kiosk window
running on xcb under Xvfb."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from accessctl.errors import AccessctlError
from accessctl.gui import qtlibs


def _library_needing(tmp_path: Path, soname: str) -> Path:
    """A real shared object that links ``soname``, which is then removed: what ldd
    sees on a system that lacks that library."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build a library with a missing dependency")
    stub_src, user_src = tmp_path / "stub.c", tmp_path / "user.c"
    stub_src.write_text("int stub_symbol(void) { return 1; }\n")
    user_src.write_text("int stub_symbol(void);\nint use(void) { return stub_symbol(); }\n")
    link_name = soname.split(".so")[0][3:]  # libxcb-icccm.so.4 -> xcb-icccm
    stub = tmp_path / f"lib{link_name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", f"-Wl,-soname,{soname}", "-o", str(stub), str(stub_src)], check=True)
    user = tmp_path / "libqxcb.so"
    subprocess.run(
        [
            "gcc",
            "-shared",
            "-fPIC",
            "-Wl,--no-as-needed",
            "-o",
            str(user),
            str(user_src),
            f"-L{tmp_path}",
            f"-l{link_name}",
        ],
        check=True,
    )
    stub.unlink()
    return user


def test_a_missing_xcb_library_is_one_line_with_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "build").mkdir()
    # A name no system has (a real one such as libxcb-icccm.so.4 may well be installed).
    soname = "libxcb-accessctltest.so.4"
    monkeypatch.setitem(qtlibs.PACKAGES, soname, "libxcb-accessctltest4")
    plugin = _library_needing(tmp_path / "build", soname)
    qt = tmp_path / "Qt6"
    (qt / "plugins" / "platforms").mkdir(parents=True)
    (qt / "lib").mkdir()
    shutil.copy(plugin, qt / "plugins" / "platforms" / "libqxcb.so")
    assert qtlibs.missing_libraries(qt / "plugins" / "platforms" / "libqxcb.so", qt / "lib") == [soname]
    monkeypatch.setattr(qtlibs, "qt_dir", lambda: qt)
    problem = qtlibs.xcb_problem()
    assert problem is not None and "\n" not in problem
    assert soname in problem and "apt-get install libxcb-accessctltest4" in problem and "--headless" in problem

    # The window's own entry point refuses before Qt is asked to load the plugin.
    from accessctl.gui import app

    monkeypatch.setattr(app, "xcb_problem", qtlibs.xcb_problem)
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    with pytest.raises(AccessctlError, match="libxcb-accessctltest4"):
        app.application()


def test_this_machines_qt_has_what_xcb_needs() -> None:
    """The real plugin of the installed PyQt6, checked by the same code (CI installs
    the libraries the README names, so a missing one there is a README that lies)."""
    qt = qtlibs.qt_dir()
    assert qt is not None and (qt / "plugins" / "platforms" / "libqxcb.so").is_file()
    problem = qtlibs.xcb_problem()
    if problem and not os.environ.get("CI"):
        pytest.skip(problem)
    assert problem is None


def test_platform_choice_follows_qt() -> None:
    env = {"QT_QPA_PLATFORM": "", "DISPLAY": ":1", "WAYLAND_DISPLAY": ""}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert qtlibs.uses_xcb()
        mp.setenv("QT_QPA_PLATFORM", "offscreen")
        assert not qtlibs.uses_xcb()
        mp.setenv("QT_QPA_PLATFORM", "xcb;offscreen")
        assert qtlibs.uses_xcb()
        mp.setenv("QT_QPA_PLATFORM", "")
        mp.setenv("WAYLAND_DISPLAY", "wayland-0")
        assert not qtlibs.uses_xcb()


@pytest.mark.gui
def test_kiosk_window_runs_on_xcb_under_xvfb(home: Path, astronaut_video: Path) -> None:
    """The real xcb platform, not offscreen: the kiosk window on a virtual X server,
    through the same command an integrator times it with."""
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:  # .ci/run installs it where it can
        pytest.skip("xvfb-run is not installed (apt-get install xvfb)")
    env = {k: v for k, v in os.environ.items() if k not in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY")}
    env.update(ACCESSCTL_HOME=str(home), QT_QPA_PLATFORM="xcb")
    # The window plays in real time and drops what it cannot keep up with; three plays of
    # the 2 s video leave a loaded machine time to decide after the first, slow frames.
    proc = subprocess.run(
        [
            xvfb,
            "-a",
            "-s",
            "-screen 0 1280x800x24",
            sys.executable,
            "-m",
            "accessctl",
            "bench",
            "--kiosk",
            *[str(astronaut_video)] * 3,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Qt platform: xcb" in proc.stdout
    assert "decisions: denied spoof" in proc.stdout, proc.stdout
