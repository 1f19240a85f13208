"""The audit log: every decision and hook result, in an append-only SQLite table.

Append-only is enforced by the database itself (triggers refuse UPDATE and DELETE),
not by politeness. The file is private (0600) like the gallery: it names people and
says when they came and went. Each event is one transaction, so a crash loses at most
the event being written, never leaves half of one.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from accessctl import config
from accessctl.clock import now, stamp
from accessctl.errors import AccessctlError
from accessctl.storage.gallery import Person

AUDIT_FILE = "events.db"
SNAPSHOT_DIR = "snapshots"
SNAPSHOT_MAX_SIDE = 320  # enough to recognise a face in a review, no more

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    kiosk TEXT NOT NULL,
    event TEXT NOT NULL,
    reason TEXT,
    person_id TEXT,
    name TEXT,
    distance REAL,
    liveness REAL,
    stream_t REAL,
    frame INTEGER,
    detail TEXT
);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE TRIGGER IF NOT EXISTS events_no_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS events_no_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

COLUMNS = (
    "id",
    "time",
    "kiosk",
    "event",
    "reason",
    "person_id",
    "name",
    "distance",
    "liveness",
    "stream_t",
    "frame",
    "detail",
)


class AuditError(AccessctlError):
    pass


@dataclass(frozen=True)
class Event:
    event: str  # granted | denied | hook | alert | camera | ...
    reason: str | None = None
    person_id: str | None = None
    name: str | None = None
    distance: float | None = None
    liveness: float | None = None
    stream_t: float | None = None
    frame: int | None = None
    detail: dict | None = None


class AuditLog:
    def __init__(self, path: str | os.PathLike[str] | None = None, *, kiosk: str = "kiosk") -> None:
        self.path = Path(path) if path is not None else config.data_dir() / AUDIT_FILE
        self.kiosk = kiosk
        self._lock = threading.Lock()
        config.private_file(self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=2.0, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise self._failed(exc) from None

    def _failed(self, exc: sqlite3.Error, what: str = "") -> AuditError:
        return AuditError(f"audit log {self.path}{what}: {config.storage_problem(exc, self.path)}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_writable(self) -> None:
        """Write a row and take it back: a door must not start on a log it cannot write
        (a read-only file, a full disk), or it would open for events that are never
        recorded. AuditError says why."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.execute(
                        "INSERT INTO events(time, kiosk, event) VALUES (?, ?, ?)", (now(), self.kiosk, "check")
                    )
                finally:
                    self._conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise AuditError(
                f"{self._failed(exc, ' cannot be written')}; the door does not start without its log"
            ) from None

    def append(self, e: Event) -> int:
        """Write one event; AuditError (nothing written) if the file is locked too long.

        Safe to call from the hook thread and the pipeline's at once."""
        try:
            with self._lock:
                cur = self._conn.execute(
                    "INSERT INTO events(time, kiosk, event, reason, person_id, name, distance, liveness, stream_t, "
                    "frame, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        now(),
                        self.kiosk,
                        e.event,
                        e.reason,
                        e.person_id,
                        e.name,
                        e.distance,
                        e.liveness,
                        e.stream_t,
                        e.frame,
                        json.dumps(e.detail) if e.detail is not None else None,
                    ),
                )
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        return int(cur.lastrowid or 0)

    def query(self, *, since: str | None = None, person: str | None = None, last: int | None = None) -> list[dict]:
        """Events in the order they happened; ``last``: only the newest N of them."""
        where, args = event_filter(since, person, "?")
        sql = f"SELECT {', '.join(COLUMNS)} FROM events" + where
        if last is not None:
            sql += " ORDER BY id DESC LIMIT ?"
            args.append(last)
        else:
            sql += " ORDER BY id"
        try:
            rows = self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise self._failed(exc) from None
        out = [dict(zip(COLUMNS, r, strict=True)) for r in rows]
        return out[::-1] if last is not None else out


def event_filter(since: str | None, person: str | None, mark: str) -> tuple[str, list[str | int]]:
    """The WHERE clause (with its arguments) of an events query, for SQLite (``mark``
    ``?``) and the central store (``%s``) alike."""
    where: list[str] = []
    args: list[str | int] = []
    if since:
        where.append(f"time >= {mark}")
        args.append(since)
    if person:
        where.append(f"person_id = {mark}")
        args.append(person)
    return (" WHERE " + " AND ".join(where) if where else ""), args


def parse_since(text: str | None) -> str | None:
    """``--since`` as the log's own time format: an ISO time (UTC when it names no
    zone), or an age (``30s``, ``30m``, ``12h``, ``7d``) counted back from now; None:
    from the start. Anything else is refused: a word the log cannot read must not
    quietly select nothing."""
    if text and text[:-1].isdigit() and text[-1] in "smhd":
        seconds = int(text[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[text[-1]]
        try:
            since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
        except OverflowError:  # further back than the calendar goes: everything
            return None
        return stamp(since)
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AccessctlError(
            f"--since {text!r}: expected an ISO time (2026-12-07, 2026-12-07T08:00:00Z) or an age (30s, 30m, 12h, 7d)"
        ) from None
    return stamp(when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc))  # a time without a zone: UTC


def _cell(value: object) -> object:
    """A spreadsheet must not run what a name says: text starting with = + - @ (or a
    tab or carriage return) is prefixed with an apostrophe (OWASP's CSV injection rule)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    w.writerows([{k: _cell(v) for k, v in row.items()} for row in rows])
    return buf.getvalue()


def snapshot_dir() -> Path:
    return config.private_dir(config.data_dir() / SNAPSHOT_DIR)


def save_snapshot(image: np.ndarray, box: tuple[float, float, float, float], name: str) -> Path:
    """A private JPEG of the face in ``box`` with twice its size of context (the photo or
    phone held up is part of the evidence), at most :data:`SNAPSHOT_MAX_SIDE` pixels."""
    h, w = image.shape[:2]
    x0, y0, x1, y1 = box
    cx, cy, side = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 2
    left, top = max(0, int(cx - side / 2)), max(0, int(cy - side / 2))
    crop = image[top : min(h, int(cy + side / 2)), left : min(w, int(cx + side / 2))]
    if crop.size == 0:
        crop = image
    scale = SNAPSHOT_MAX_SIDE / max(crop.shape[:2])
    if scale < 1:
        crop = cv2.resize(
            crop,
            (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
            interpolation=cv2.INTER_AREA,
        )
    ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise AuditError("could not encode a snapshot")
    path = snapshot_dir() / name
    config.write_private(path, lambda tmp: Path(tmp).write_bytes(jpg.tobytes()))
    return path


def prune_snapshots(days: float) -> int:
    """Delete snapshots older than ``days``; returns how many went."""
    folder = config.data_dir() / SNAPSHOT_DIR
    if not folder.is_dir():
        return 0
    cutoff = time.time() - days * 86400
    gone = 0
    for f in folder.glob("*.jpg"):
        try:
            if f.stat().st_mtime < cutoff:
                f.unlink()
                gone += 1
        except FileNotFoundError:
            pass
    return gone


def os_user() -> str:
    """Who is logged in to the machine: the admin of a CLI change, beside any PIN."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name and no passwd entry (a bare container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def log_admin(
    action: str,
    person: Person | None = None,
    detail: dict | None = None,
    audit_path: Path | None = None,
    kiosk: str = "kiosk",
    *,
    via: str = "gui",
) -> None:
    """One ``admin`` event, with the OS user and where it came from (the GUI or the CLI).

    Raises AuditError when it cannot be written: callers log before they change anything,
    so an admin change that cannot be logged does not happen."""
    with AuditLog(audit_path, kiosk=kiosk) as audit:
        audit.append(
            Event(
                "admin",
                action,
                person.employee_id if person else None,
                person.name if person else None,
                detail={**(detail or {}), "os_user": os_user(), "via": via},
            )
        )
