"""Whether a running door is deciding, for `accessctl health`, monitoring and a
service manager.

A running door writes a small state file (``doors/<kiosk>.json`` in its data folder)
about once a second from its loop: when it last processed a frame, at what pace,
whether its audit log is written and whether it is out of service. `accessctl health`
reads it from another process; a door whose loop is stuck stops writing, and the file
goes stale. The same loop feeds systemd's watchdog through ``$NOTIFY_SOCKET``
(sd_notify's datagram protocol, written here: one ``sendto``), so a stuck door is
restarted by its unit.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

from accessctl import config
from accessctl.errors import AccessctlError

WRITE_EVERY_S = 1.0  # the state file is rewritten at most this often
STALE_S = 10.0  # a state file older than this: the door's loop is stuck or gone
FRESH_FRAME_S = 5.0  # a deciding door processed a frame within this long


def state_path(kiosk: str, home: Path | None = None) -> Path:
    return (home or config.data_dir()) / "doors" / f"{quote(kiosk, safe='')}.json"


def sd_notify(message: str) -> bool:
    """Tell systemd (``Type=notify`` units) something: READY=1, WATCHDOG=1, STATUS=...,
    STOPPING=1. False when not run by systemd or the socket is gone."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address or address[0] not in "@/":
        return False
    target = "\0" + address[1:] if address[0] == "@" else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK) as sock:
            sock.sendto(message.encode(), target)  # a full queue drops the message: the door never waits on it
    except OSError:
        return False
    return True


@dataclass
class DoorState:
    """What the state file holds (times are Unix seconds)."""

    kiosk: str
    pid: int
    started: float
    updated: float = 0.0
    last_frame: float | None = None
    fps: float | None = None  # frames per second of the stream lately (the runner's PaceWatch)
    min_fps: float = 0.0  # the pace the liveness check needs
    audit_backlog: int = 0  # events the audit log could not take yet
    out_of_service: str = ""  # why nobody can be let in, while so
    camera: str = ""  # why the camera delivers nothing, while so
    store: str = ""  # why the site's central store is unreachable, while so


class Heartbeat:
    """The door's side: its state, written about once a second, and systemd's watchdog."""

    def __init__(self, kiosk: str, home: Path | None = None) -> None:
        self.path = state_path(kiosk, home)
        config.private_dir(self.path.parent)
        self.state = DoorState(kiosk, os.getpid(), time.time())
        self._written = 0.0

    def frame(self, fps: float | None, min_fps: float, audit_backlog: int) -> None:
        """A frame processed; ``fps``: the pace the runner measures for the liveness
        check (its PaceWatch), None before a whole span of the stream."""
        s = self.state
        first = s.last_frame is None
        s.last_frame, s.fps, s.min_fps, s.audit_backlog = time.time(), fps, min_fps, audit_backlog
        self.beat(force=first)  # the first frame is news at once: the door decides

    def ready(self) -> None:
        """Models loaded, the loop starting: the service is up (a camera that is not
        there yet is the loop's to wait for, not a failed start)."""
        sd_notify("READY=1")
        self.beat(force=True)

    def beat(self, force: bool = False) -> None:
        """The loop is alive: rewrite the state file (at most once a second) and feed the watchdog."""
        now = time.time()
        if not force and now - self._written < WRITE_EVERY_S:
            return
        self._written = self.state.updated = now
        try:
            config.write_private(self.path, json.dumps(asdict(self.state)))
        except AccessctlError:
            pass  # a full disk is the audit log's to report; health sees the file go stale
        sd_notify("WATCHDOG=1")

    def close(self) -> None:
        sd_notify("STOPPING=1")
        self.path.unlink(missing_ok=True)


@dataclass(frozen=True)
class Health:
    ok: bool
    problems: tuple[str, ...]
    state: DoorState | None


def check_health(kiosk: str, home: Path | None = None) -> Health:
    """Whether the door named ``kiosk`` is running from this data folder and deciding."""
    path = state_path(kiosk, home)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        state = DoorState(**raw)
    except FileNotFoundError:
        return Health(False, (f"no door named {kiosk!r} is running from {path.parent.parent}",), None)
    except (OSError, ValueError, TypeError) as exc:
        return Health(False, (f"the door's state file {path} cannot be read: {exc}",), None)
    now = time.time()
    problems = []
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        problems.append(f"the door's process {state.pid} is gone")
    except PermissionError:
        pass  # another user's process: it exists
    if now - state.updated > STALE_S:
        problems.append(f"the door has not reported for {now - state.updated:.0f} s (stuck or stopped)")
    if state.out_of_service:
        problems.append(f"out of service: {state.out_of_service}")
    if state.camera:
        problems.append(f"camera: {state.camera}")
    if state.last_frame is None:
        problems.append("no frame processed yet")
    elif now - state.last_frame > FRESH_FRAME_S:
        problems.append(f"no frame processed for {now - state.last_frame:.0f} s")
    if state.fps is not None and state.fps < state.min_fps:
        problems.append(
            f"frames are processed {state.fps:.1f} per second, fewer than the {state.min_fps:.1f} "
            "the liveness check needs"
        )
    if state.audit_backlog:
        problems.append(f"the audit log is not being written ({state.audit_backlog} event(s) held)")
    return Health(not problems, tuple(problems), state)
