"""A kiosk's side of a many-door site: its local replica of the gallery and its event spool.

Decisions never wait on the network: the kiosk matches against ``replica.db``, a plain
SQLite gallery in its data folder, which :class:`StoreLink` keeps current from the
central store (a full copy first, then each change as ``NOTIFY`` announces it, and a
catch-up by version every ``[store] sync_s`` in case a notification was missed).
When the server is gone the kiosk goes on deciding on the replica, and says so.

Events are written to the kiosk's own ``events.db`` first, as for a single door; the
link uploads them in order, each with an id made from that file's id and the row
number (:func:`~accessctl.storage.central.event_uid`), so a backlog uploaded again
after an outage adds nothing twice. How far the upload got is kept in the same file.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from accessctl import config
from accessctl.config import Settings
from accessctl.errors import AccessctlError, GalleryError
from accessctl.storage.audit import AUDIT_FILE
from accessctl.storage.central import (
    CHANNEL,
    CentralStore,
    SchemaError,
    StoreError,
    event_uid,
    first_line,
    load_psycopg,
    redact,
)
from accessctl.storage.gallery import Gallery
from accessctl.textenum import Label

log = logging.getLogger(__name__)

REPLICA_FILE = "replica.db"
UPLOAD_BATCH = 500
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # reconnect back-off; then every 5 s


def replica_path() -> Path:
    return config.data_dir() / REPLICA_FILE


class Spool:
    """The upload state of a kiosk's ``events.db``: its own id and how far it was sent."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or config.data_dir() / AUDIT_FILE
        config.private_file(self.path)
        try:
            self._conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS spool (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._conn.execute("INSERT OR IGNORE INTO spool(key, value) VALUES ('install', ?)", (str(uuid.uuid4()),))
            self._conn.execute("INSERT OR IGNORE INTO spool(key, value) VALUES ('uploaded', '0')")
        except sqlite3.Error as exc:
            raise AccessctlError(f"event spool {self.path}: {config.storage_problem(exc, self.path)}") from None

    def close(self) -> None:
        self._conn.close()

    def _get(self, key: str) -> str:
        return str(self._conn.execute("SELECT value FROM spool WHERE key = ?", (key,)).fetchone()[0])

    @property
    def install(self) -> str:
        return self._get("install")

    @property
    def uploaded(self) -> int:
        return int(self._get("uploaded"))

    def pending(self, limit: int = UPLOAD_BATCH, after: int | None = None) -> list[dict]:
        """The next events not yet uploaded (or after row ``after``), oldest first, ready for the server."""
        if not self._has_events():
            return []
        install = self.install
        rows = self._conn.execute(
            "SELECT id, time, kiosk, event, reason, person_id, name, distance, liveness, stream_t, frame, detail "
            "FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (self.uploaded if after is None else after, limit),
        ).fetchall()
        return [
            {
                "uid": event_uid(install, r[0]),
                "kiosk_seq": r[0],
                "time": r[1],
                "kiosk": r[2],
                "event": r[3],
                "reason": r[4],
                "person_id": r[5],
                "name": r[6],
                "distance": r[7],
                "liveness": r[8],
                "stream_t": r[9],
                "frame": r[10],
                "detail": r[11],
            }
            for r in rows
        ]

    def _has_events(self) -> bool:
        return bool(self._conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'events'").fetchone()[0])

    def count_pending(self) -> int:
        if not self._has_events():
            return 0
        return int(self._conn.execute("SELECT count(*) FROM events WHERE id > ?", (self.uploaded,)).fetchone()[0])

    def mark(self, upto: int) -> None:
        self._conn.execute("UPDATE spool SET value = ? WHERE key = 'uploaded'", (str(upto),))

    def upload(self, store: CentralStore) -> int:
        """Send everything pending, in order; returns how many events went up."""
        sent = 0
        while True:
            rows = self.pending()
            if not rows:
                return sent
            store.check_schema()  # events written into another schema could be lost or misread
            store.insert_events(rows)  # idempotent: a retry after a lost reply adds nothing
            self.mark(rows[-1]["kiosk_seq"])
            sent += len(rows)


def open_replica(encoder_id: str, path: Path | None = None) -> Gallery:
    """The replica, for the central store's encoder; a replica of another encoder (the
    store was re-initialised) is only a copy, so it is started afresh."""
    path = path or replica_path()
    try:
        return Gallery(path, encoder_id=encoder_id)
    except GalleryError:
        if not path.exists():
            raise
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return Gallery(path, encoder_id=encoder_id)


def sync_once(store: CentralStore, replica: Gallery) -> int:
    """Bring the replica up to the server's newest change; returns the version reached.
    A schema this accessctl does not read is a SchemaError: the replica stays as it is."""
    store.check_schema()
    have = int(replica.meta("replica_version") or 0)
    changes = store.changes_since(have)
    if changes.version != have or changes.people or changes.removed:
        replica.apply_changes(changes.people, changes.removed, changes.version)
    return changes.version


class StoreState(Label):
    ONLINE = "online"
    REPLICA_ONLY = "replica-only"  # the central store cannot be reached: deciding on the replica


@dataclass(frozen=True)
class StoreNews:
    """The central store came or went: a door's event (see ``door/events.py``)."""

    state: StoreState
    detail: str
    replica_version: int

    @property
    def online(self) -> bool:
        return self.state == StoreState.ONLINE

    def to_json(self) -> dict:
        return {
            "event": "store",
            "state": str(self.state),
            "detail": self.detail,
            "replica_version": self.replica_version,
        }


@dataclass
class LinkStatus:
    online: bool = False
    replica_version: int = 0
    error: str = ""  # why the server is not reachable, while it is not


class StoreLink:
    """Keeps a kiosk's replica current and its events uploaded, on two threads.

    ``notify`` hears a :class:`StoreNews` when the server comes and goes, for the
    headless events and the kiosk's status line.
    """

    def __init__(
        self,
        url: str,
        *,
        notify: Callable[[StoreNews], None],
        sync_s: float = 5.0,
        upload_s: float = 0.5,
        replica: Path | None = None,
        events: Path | None = None,
    ) -> None:
        self.url, self.notify, self.sync_s, self.upload_s = url, notify, sync_s, upload_s
        self.replica_file = replica or replica_path()
        self.events_file = events or config.data_dir() / AUDIT_FILE
        self.status = LinkStatus()
        self._stop = threading.Event()
        self._wake_upload = threading.Event()
        self._threads: list[threading.Thread] = []
        self.encoder_id = ""

    # -- start and stop -----------------------------------------------------------------
    def start(self) -> Path:
        """The first copy (or the replica already here when the server cannot be
        reached), then the threads; returns the replica's path for the kiosk to open."""
        try:
            with CentralStore(self.url) as store:
                store.check_schema()
                self.encoder_id = store.meta("encoder") or config.NEW_GALLERY_ENCODER
                with open_replica(self.encoder_id, self.replica_file) as replica:
                    self.status.replica_version = sync_once(store, replica)
                self._online()
        except StoreError as exc:
            if not self.replica_file.exists():
                raise StoreError(
                    f"{exc}; this kiosk has no replica yet, so it cannot start without the server"
                ) from None
            with Gallery(self.replica_file) as replica:
                self.encoder_id = replica.encoder_id
                self.status.replica_version = int(replica.meta("replica_version") or 0)
            self._offline(str(exc))
        for target, name in ((self._follow, "accessctl-replica"), (self._upload, "accessctl-upload")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self.replica_file

    def stop(self, wait_s: float = 10.0) -> None:
        """Stop following; the last events are uploaded first if the server is there."""
        self._stop.set()
        self._wake_upload.set()
        for t in self._threads:
            t.join(wait_s)

    # -- state ----------------------------------------------------------------------------
    def _online(self) -> None:
        was = self.status.online
        self.status.online, self.status.error = True, ""
        if not was:
            self.notify(StoreNews(StoreState.ONLINE, f"central store {redact(self.url)}", self.status.replica_version))

    def _offline(self, why: str) -> None:
        was = self.status.online or not self.status.error
        self.status.online, self.status.error = False, why
        if was:
            self.notify(StoreNews(StoreState.REPLICA_ONLY, why, self.status.replica_version))

    # -- the replica ----------------------------------------------------------------------
    def _follow(self) -> None:
        pg = load_psycopg()
        attempt = 0
        while not self._stop.is_set():
            try:
                with (
                    pg.connect(self.url, autocommit=True, connect_timeout=3) as listen,
                    CentralStore(self.url) as store,
                    open_replica(self.encoder_id, self.replica_file) as replica,
                ):
                    listen.execute(f"LISTEN {CHANNEL}")
                    self.status.replica_version = sync_once(store, replica)  # what was missed while away
                    self._online()
                    attempt = 0
                    last_sync = time.monotonic()
                    while not self._stop.is_set():
                        woke = any(True for _ in listen.notifies(timeout=min(1.0, self.sync_s), stop_after=1))
                        if woke or time.monotonic() - last_sync >= self.sync_s:
                            self.status.replica_version = sync_once(store, replica)
                            self._online()
                            last_sync = time.monotonic()
            except (pg.Error, StoreError, GalleryError, OSError) as exc:
                if self._stop.is_set():
                    return
                if isinstance(exc, SchemaError):
                    self._offline(
                        f"{first_line(exc)}; deciding on the replica (version "
                        f"{self.status.replica_version}) until it matches"
                    )
                else:
                    self._offline(
                        f"the central store cannot be reached ({first_line(exc)}); deciding on the "
                        f"replica (version {self.status.replica_version})"
                    )
                self._stop.wait(RETRY_S[min(attempt, len(RETRY_S) - 1)])
                attempt += 1

    # -- the events -----------------------------------------------------------------------
    def _upload(self) -> None:
        spool = Spool(self.events_file)
        store: CentralStore | None = None
        try:
            while True:
                stopping = self._stop.is_set()
                try:
                    if store is None:
                        store = CentralStore(self.url)
                    spool.upload(store)
                except (StoreError, AccessctlError, sqlite3.Error) as exc:
                    if store is not None:
                        store.close()
                        store = None
                    log.debug("upload failed: %s", exc)
                if stopping:
                    return
                self._wake_upload.wait(self.upload_s)
                self._wake_upload.clear()
        finally:
            if store is not None:
                store.close()
            spool.close()


def local_status(url: str) -> dict:
    """What `accessctl store status` says, from this machine's files and one try at the
    server: the replica's version, the server's, the lag, spooled events, reachability."""
    out: dict = {
        "url": redact(url),
        "replica": str(replica_path()),
        "replica_version": None,
        "server_version": None,
        "lag": None,
        "spooled_events": 0,
        "reachable": False,
        "error": "",
    }
    if replica_path().exists():
        with Gallery(replica_path()) as replica:
            out["replica_version"] = int(replica.meta("replica_version") or 0)
            out["replica_people"] = len(replica.people())
    if (config.data_dir() / AUDIT_FILE).exists():
        spool = Spool()
        out["spooled_events"] = spool.count_pending()
        spool.close()
    try:
        with CentralStore(url) as store:
            store.check_schema()
            out["server_version"] = store.version()
            out["reachable"] = True
    except StoreError as exc:
        out["error"] = str(exc)
    if out["server_version"] is not None and out["replica_version"] is not None:
        out["lag"] = out["server_version"] - out["replica_version"]
    return out


@contextmanager
def door_store(settings: Settings, notify: Callable[[StoreNews], None]) -> Iterator[Path | None]:
    """The gallery file a door decides on: None (its own ``gallery.db``) without a
    ``[store] url``; with one, the replica, kept current while the block runs."""
    if not settings.store.url:
        yield None
        return
    link = StoreLink(settings.store.url, notify=notify, sync_s=settings.store.sync_s)
    path = link.start()
    try:
        yield path
    finally:
        link.stop()


def upload_now(url: str, events: Path | None = None) -> int:
    """Upload this data folder's spooled events at once (an admin command's own event,
    before its change is made); StoreError when the store cannot take them."""
    spool = Spool(events)
    try:
        with CentralStore(url) as store:
            return spool.upload(store)
    finally:
        spool.close()
