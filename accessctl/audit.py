"""The audit log: every decision and hook result, in an append-only SQLite table.

Append-only is enforced by the database itself (triggers refuse UPDATE and DELETE),
not by politeness. The file is private (0600) like the gallery: it names people and
says when they came and went. Each event is one transaction, so a crash loses at most
the event being written, never leaves half of one.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from . import config
from .errors import AccessctlError
from .gallery import now

AUDIT_FILE = "events.db"

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

COLUMNS = ("id", "time", "kiosk", "event", "reason", "person_id", "name", "distance", "liveness", "stream_t", "frame",
           "detail")


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
            raise AuditError(f"audit log {self.path}: {exc}") from None

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, e: Event) -> int:
        """Write one event; AuditError (nothing written) if the file is locked too long.

        Safe to call from the hook thread and the pipeline's at once."""
        try:
            with self._lock:
                cur = self._conn.execute(
                    "INSERT INTO events(time, kiosk, event, reason, person_id, name, distance, liveness, stream_t, frame,"
                    " detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (now(), self.kiosk, e.event, e.reason, e.person_id, e.name, e.distance, e.liveness, e.stream_t,
                     e.frame, json.dumps(e.detail) if e.detail is not None else None),
                )
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {self.path}: {exc}") from None
        return int(cur.lastrowid)

    def query(self, *, since: str | None = None, person: str | None = None) -> list[dict]:
        where, args = [], []
        if since:
            where.append("time >= ?")
            args.append(since)
        if person:
            where.append("person_id = ?")
            args.append(person)
        sql = f"SELECT {', '.join(COLUMNS)} FROM events" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
        try:
            rows = self._conn.execute(sql, args).fetchall()
        except sqlite3.Error as exc:
            raise AuditError(f"audit log {self.path}: {exc}") from None
        return [dict(zip(COLUMNS, r)) for r in rows]


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS))
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
