"""The enrolled people and their face templates, in one SQLite file.

Why SQLite: one file an admin can back up, WAL so that several kiosks and the admin
tools can read while one writes, and transactions so that an enrollment, a removal or
an import either happens whole or not at all. The file holds biometric templates and
is created readable by its owner only.

Matching never touches SQL: all active templates are held in one float32 matrix and a
query is a single vectorised distance computation (:class:`TemplateIndex`). The matrix
is rebuilt when this process writes or when another process commits a change.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from accessctl import config
from accessctl.clock import now
from accessctl.errors import GalleryError

GALLERY_FILE = "gallery.db"
EXPORT_FORMAT = "accessctl-gallery"
EXPORT_VERSION = 2  # 2 added the face chips
# An export is read whole (JSON), at several times its size in memory: larger files are
# refused before reading (about 4 000 people with their faces, or 300 000 without; a
# larger site copies its people with `store migrate` instead).
MAX_EXPORT_BYTES = 256 * 1024 * 1024
EMBEDDING_DIM = 128

# Each entry upgrades the schema by one version; user_version records how far a file got.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE people (
        id INTEGER PRIMARY KEY,
        employee_id TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1,
        created TEXT NOT NULL
    );
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        person_id INTEGER NOT NULL REFERENCES people(id) ON DELETE CASCADE,
        embedding BLOB NOT NULL,
        quality REAL NOT NULL,
        source TEXT NOT NULL,
        encoder TEXT NOT NULL,
        created TEXT NOT NULL
    );
    CREATE INDEX templates_person ON templates(person_id);
    """,
    # v2: the aligned face chip each template was computed from (PNG), so that switching
    # to another encoder can re-encode everyone without asking them back.
    "ALTER TABLE templates ADD COLUMN chip BLOB",
    # v3: a replica's log of the people each update changed, so that a kiosk's index is
    # patched in place, not rebuilt from 100 000 rows, when one person changes.
    """
    CREATE TABLE replica_log (version INTEGER NOT NULL, employee_id TEXT NOT NULL);
    CREATE INDEX replica_log_version ON replica_log(version);
    """,
    # v4: people whose access always needs a head-turn challenge (a site's choice per person).
    "ALTER TABLE people ADD COLUMN challenge INTEGER NOT NULL DEFAULT 0",
]
SCHEMA_VERSION = len(MIGRATIONS)
# An update touching more people than this is not logged person by person: kiosks then
# rebuild their index once (a replica's first copy, a migration).
REPLICA_LOG_MAX = 1000


@dataclass(frozen=True)
class Person:
    id: int
    employee_id: str
    name: str
    active: bool
    created: str
    templates: int = 0
    challenge: bool = False  # the door asks this person to turn their head before letting them in


@dataclass(frozen=True)
class Template:
    id: int
    person_id: int
    quality: float
    source: str
    encoder: str
    created: str


@dataclass(frozen=True)
class PersonRecord:
    """One person as a replica copies them from the central store (templates without
    their chips: a door matches, it never re-encodes)."""

    employee_id: str
    name: str
    active: bool
    created: str
    templates: list[tuple[bytes, float, str, str, str]]  # embedding, quality, source, encoder, created
    challenge: bool = False


@dataclass(frozen=True)
class NewTemplate:
    """A template to store: the descriptor, how good its face was, where it came from, and
    the aligned chip it was computed from (kept so the gallery can be re-encoded; None
    where it is not known)."""

    embedding: np.ndarray
    quality: float
    source: str
    chip: np.ndarray | None = None


class TemplateIndex:
    """All templates as one matrix; nearest neighbour by Euclidean distance.

    ||a-b||^2 = ||a||^2 - 2 a.b + ||b||^2 with the gallery norms precomputed: one
    matrix-vector product per query, so 1M templates cost one pass over 512 MB.
    """

    def __init__(
        self,
        embeddings: np.ndarray,
        person_ids: np.ndarray,
        template_ids: np.ndarray | None = None,
        employee_ids: np.ndarray | None = None,
    ) -> None:
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32).reshape(-1, EMBEDDING_DIM)
        self.person_ids = np.asarray(person_ids, dtype=np.int64)
        self.template_ids = np.asarray(template_ids if template_ids is not None else np.arange(len(self.person_ids)))
        self.employee_ids = employee_ids  # per row, where the index may be patched (a replica's)
        self._sq_norms = np.einsum("ij,ij->i", self.embeddings, self.embeddings)

    def patched(self, changed: Sequence[str], new: TemplateIndex) -> TemplateIndex:
        """This index without the rows of the ``changed`` people, plus ``new`` (their rows now)."""
        assert self.employee_ids is not None and new.employee_ids is not None
        keep = ~np.isin(self.employee_ids, np.asarray(list(changed), dtype=object))
        return TemplateIndex(
            np.concatenate([self.embeddings[keep], new.embeddings]),
            np.concatenate([self.person_ids[keep], new.person_ids]),
            np.concatenate([self.template_ids[keep], new.template_ids]),
            np.concatenate([self.employee_ids[keep], new.employee_ids]),
        )

    def __len__(self) -> int:
        return len(self.person_ids)

    def nearest(self, query: np.ndarray) -> tuple[int, float]:
        """(row, distance) of the closest template; (-1, inf) when the index is empty."""
        if len(self) == 0:
            return -1, float("inf")
        q = np.asarray(query, dtype=np.float32).reshape(EMBEDDING_DIM)
        sq = self._sq_norms - 2.0 * (self.embeddings @ q)
        row = int(np.argmin(sq))
        # Recompute the winner exactly: the expanded form loses digits to cancellation.
        return row, float(np.linalg.norm(self.embeddings[row] - q))


class PeopleStore(Protocol):
    """What enrolling, matching and the admin's commands need of a gallery: a door's own
    SQLite :class:`Gallery` and a site's :class:`~accessctl.storage.central.CentralGallery`
    both give it."""

    encoder_id: str

    def people(self, *, include_inactive: bool = True) -> list[Person]: ...
    def get(self, employee_id: str) -> Person: ...
    def templates(self, employee_id: str) -> list[Template]: ...
    def embeddings(self, employee_id: str) -> np.ndarray: ...
    def add_person(
        self, employee_id: str, name: str, templates: Sequence[NewTemplate], *, append: bool = False
    ) -> Person: ...
    def rename(self, employee_id: str, name: str) -> Person: ...
    def set_active(self, employee_id: str, active: bool) -> Person: ...
    def set_challenge(self, employee_id: str, on: bool) -> Person: ...
    def remove(self, employee_id: str) -> Person: ...
    def index(self) -> TemplateIndex: ...
    def indexed_person(self, index: TemplateIndex, row: int) -> Person | None: ...


def default_path() -> Path:
    return config.data_dir() / GALLERY_FILE


def recorded_encoder(path: str | os.PathLike[str] | None = None) -> str:
    """The encoder whose templates a gallery holds, read without creating or changing it."""
    path = Path(path) if path is not None else default_path()
    if not path.is_file():
        return config.NEW_GALLERY_ENCODER
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5.0)
        try:
            row = conn.execute("SELECT value FROM meta WHERE key='encoder'").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise GalleryError(f"gallery {path}: {exc}") from None
    return row[0] if row else config.PRETRAINED_ENCODER_ID


MAX_ID_CHARS, MAX_NAME_CHARS = 64, 128
MAX_TEMPLATE_NORM = 100.0  # far above any encoder's descriptors; +-3e38 or NaN never reach the search


def clean_text(value: object, what: str, max_chars: int) -> str:
    """An employee id or name as it may be stored: a string, stripped, not empty, at most
    ``max_chars`` long, and free of control and format characters (a newline forges a
    log line, an ANSI escape rewrites a terminal, a NUL byte breaks the door hook, a
    bidi override disguises a name). Checked where text enters: enroll, rename, import."""
    return config.check_text(value, what, max_chars, GalleryError)


def encode_embedding(vec: np.ndarray) -> bytes:
    arr = np.asarray(vec, dtype="<f4").reshape(-1)
    if arr.size != EMBEDDING_DIM or not np.all(np.isfinite(arr)):
        raise GalleryError(f"a template must be {EMBEDDING_DIM} finite numbers")
    return arr.tobytes()


def decode_embedding(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4").astype(np.float32)


def decode_embeddings(blobs: Sequence[bytes]) -> np.ndarray:
    """Many descriptors at once (one copy, not one array per template)."""
    if not blobs:
        return np.zeros((0, EMBEDDING_DIM), np.float32)
    if any(len(b) != 4 * EMBEDDING_DIM for b in blobs):
        return np.stack([decode_embedding(b) for b in blobs])  # a damaged row fails here, by name
    return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), EMBEDDING_DIM).astype(np.float32)


CHIP_SHAPE = (150, 150, 3)


def encode_chip(chip: np.ndarray | None) -> bytes | None:
    """An aligned RGB chip as lossless PNG bytes (about half the raw size)."""
    if chip is None:
        return None
    chip = np.asarray(chip)
    if chip.shape != CHIP_SHAPE or chip.dtype != np.uint8:
        raise GalleryError(f"a face chip must be {CHIP_SHAPE} uint8, got {chip.shape} {chip.dtype}")
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(chip[:, :, ::-1]))
    if not ok:  # pragma: no cover - PNG encoding of a valid array does not fail
        raise GalleryError("could not encode a face chip")
    return buf.tobytes()


def decode_chip(blob: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(blob, np.uint8), cv2.IMREAD_COLOR)
    if img is None or img.shape != CHIP_SHAPE:
        raise GalleryError("a stored face chip is damaged")
    return np.ascontiguousarray(img[:, :, ::-1])


class Gallery:
    """People and templates in SQLite, for one encoder's template space.

    ``encoder_id`` None means: whichever encoder the file records
    (``config.NEW_GALLERY_ENCODER`` for a new file). Given, it must be the one the file records.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *, encoder_id: str | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()
        self._expected_encoder = encoder_id
        self.encoder_id = encoder_id or config.NEW_GALLERY_ENCODER
        self._index: TemplateIndex | None = None
        self._index_version: tuple[int, int] | None = None
        self._index_replica: int | None = None  # the replica version the index was built at
        self._writes = 0
        self._people_cache: dict[int, Person] = {}
        self._conn = self._open()

    # -- connection ---------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        if self.path.exists() and not self.path.is_file():
            raise GalleryError(f"{self.path}: not a file")
        config.private_file(self.path)
        try:
            conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
            conn.row_factory = sqlite3.Row
            with self._errors():
                conn.execute("PRAGMA foreign_keys=ON")
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode.lower() != "wal":  # pragma: no cover - only on filesystems without shared memory
                    conn.execute("PRAGMA journal_mode=DELETE")
                conn.execute("PRAGMA synchronous=NORMAL")
                self._migrate(conn)
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        return conn

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> "Gallery":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _translate(self, exc: sqlite3.Error) -> GalleryError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return GalleryError(f"gallery {self.path} is locked by another process; try again in a moment")
        if "not a database" in text or "malformed" in text:
            return GalleryError(f"{self.path} is not an accessctl gallery or is damaged ({text})")
        if "readonly" in text or "read-only" in text:
            return GalleryError(f"gallery {self.path} is read-only for this user")
        return GalleryError(f"gallery {self.path}: {config.storage_problem(exc, self.path)}")

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One all-or-nothing write transaction (BEGIN IMMEDIATE takes the write lock up front)."""
        with self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        self._writes += 1

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GalleryError(
                f"{self.path} has schema version {version}; "
                f"this accessctl reads up to {SCHEMA_VERSION} (upgrade accessctl)"
            )
        if version < SCHEMA_VERSION:
            self._upgrade(conn)
        self._check_encoder(conn)

    def _upgrade(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={step + 1}")
            # An existing file without a record can only hold the first encoder's templates.
            recorded = self.encoder_id if version == 0 or self._expected_encoder else config.PRETRAINED_ENCODER_ID
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('encoder', ?)", (recorded,))
            conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)", (now(),))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _check_encoder(self, conn: sqlite3.Connection) -> None:
        row = conn.execute("SELECT value FROM meta WHERE key='encoder'").fetchone()
        if row is not None and self._expected_encoder is None:
            self.encoder_id = self._expected_encoder = row[0]
        elif row is not None and row[0] != self.encoder_id:
            raise GalleryError(
                f"{self.path} holds templates of encoder {row[0]!r}, not {self.encoder_id!r}; "
                "templates of two encoders never mix (re-encode the gallery with the matching encoder)"
            )

    # -- reading --------------------------------------------------------------------
    def _person(self, row: sqlite3.Row) -> Person:
        return Person(
            row["id"],
            row["employee_id"],
            row["name"],
            bool(row["active"]),
            row["created"],
            row["templates"],
            bool(row["challenge"]),
        )

    _PEOPLE_SQL = "SELECT p.*, (SELECT COUNT(*) FROM templates t WHERE t.person_id = p.id) AS templates FROM people p"

    def people(self, *, include_inactive: bool = True) -> list[Person]:
        where = "" if include_inactive else " WHERE p.active = 1"
        with self._errors():
            rows = self._conn.execute(self._PEOPLE_SQL + where + " ORDER BY p.employee_id").fetchall()
        return [self._person(r) for r in rows]

    def get(self, employee_id: str) -> Person:
        """The person with this employee id; GalleryError if there is none."""
        with self._errors():
            row = self._conn.execute(self._PEOPLE_SQL + " WHERE p.employee_id = ?", (employee_id,)).fetchone()
        if row is None:
            raise GalleryError(f"no enrolled person has employee id {employee_id!r}")
        return self._person(row)

    def templates(self, employee_id: str) -> list[Template]:
        person = self.get(employee_id)
        with self._errors():
            rows = self._conn.execute(
                "SELECT id, person_id, quality, source, encoder, created FROM templates "
                "WHERE person_id = ? ORDER BY id",
                (person.id,),
            ).fetchall()
        return [Template(*tuple(r)) for r in rows]

    def template_rows(self) -> list[tuple]:
        """Every template as stored, with its person's employee id (employee id,
        embedding, quality, source, encoder, created, chip), oldest first: for a copy
        into another store."""
        with self._errors():
            rows = self._conn.execute(
                "SELECT p.employee_id, t.embedding, t.quality, t.source, t.encoder, t.created, t.chip "
                "FROM templates t JOIN people p ON p.id = t.person_id ORDER BY t.id"
            ).fetchall()
        return [tuple(r) for r in rows]

    def embeddings(self, employee_id: str) -> np.ndarray:
        person = self.get(employee_id)
        with self._errors():
            rows = self._conn.execute(
                "SELECT embedding FROM templates WHERE person_id = ? ORDER BY id", (person.id,)
            ).fetchall()
        return decode_embeddings([r[0] for r in rows])

    def _version(self) -> tuple[int, int]:
        with self._errors():
            return self._conn.execute("PRAGMA data_version").fetchone()[0], self._writes

    _INDEX_SQL = (
        "SELECT t.id, t.person_id, t.embedding, p.employee_id FROM templates t JOIN people p "
        "ON p.id = t.person_id WHERE p.active = 1 AND t.encoder = ?"
    )

    def _index_rows(self, where: str = "", args: tuple = ()) -> TemplateIndex:
        cur = self._conn.cursor()
        cur.row_factory = None  # plain tuples: a site's 100 000 rows cost a third less
        rows = cur.execute(self._INDEX_SQL + where + " ORDER BY t.id", (self.encoder_id, *args)).fetchall()
        return TemplateIndex(
            decode_embeddings([r[2] for r in rows]),
            np.array([r[1] for r in rows], np.int64),
            np.array([r[0] for r in rows], np.int64),
            np.array([r[3] for r in rows], dtype=object),
        )

    def index(self) -> TemplateIndex:
        """The matrix of active templates, rebuilt only when the gallery changed, and on a
        replica patched with only the people an update changed (its ``replica_log``)."""
        version = self._version()
        if self._index is None or version != self._index_version:
            with self._errors():
                # Another process may have switched the gallery to another encoder: this
                # one's descriptors would then match nothing, so say so (fail closed).
                self._check_encoder(self._conn)
                replica = self.meta("replica_version")
                log_from = int(self.meta("replica_log_from") or 0)
                if (
                    self._index is not None
                    and replica is not None
                    and self._index_replica is not None
                    and self._index_replica >= log_from
                    and self._index.employee_ids is not None
                ):
                    changed = [
                        r[0]
                        for r in self._conn.execute(
                            "SELECT DISTINCT employee_id FROM replica_log WHERE version > ?", (self._index_replica,)
                        )
                    ]
                    marks = ",".join("?" * len(changed))
                    fresh = self._index_rows(f" AND p.employee_id IN ({marks})", tuple(changed)) if changed else None
                    self._index = self._index.patched(changed, fresh) if fresh is not None else self._index
                else:
                    self._index = self._index_rows()
            self._index_replica = int(replica) if replica is not None else None
            self._people_cache = {}  # filled as people are matched: the index never waits for all of them
            self._index_version = version
        return self._index

    # -- matching -------------------------------------------------------------------
    def indexed_person(self, index: TemplateIndex, row: int) -> Person | None:
        """The person of a row of :meth:`index`; None if removed since."""
        pid = int(index.person_ids[row])
        person = self._people_cache.get(pid)
        if person is None:
            with self._errors():
                found = self._conn.execute(self._PEOPLE_SQL + " WHERE p.id = ?", (pid,)).fetchone()
            if found is None:  # removed since the index was built (rebuilt at the next check): nobody
                return None
            person = self._people_cache[pid] = self._person(found)
        return person

    # -- writing --------------------------------------------------------------------
    def add_person(
        self,
        employee_id: str,
        name: str,
        templates: Sequence[NewTemplate],
        *,
        append: bool = False,
    ) -> Person:
        """Enroll ``employee_id`` with its templates, atomically.

        An existing employee id is refused unless ``append``, which adds templates to it.
        """
        employee_id = clean_text(employee_id, "employee id", MAX_ID_CHARS)
        name = clean_text(name, "name", MAX_NAME_CHARS)
        if not templates:
            raise GalleryError("at least one face template is needed to enroll")
        blobs = [
            (encode_embedding(t.embedding), float(t.quality), str(t.source), encode_chip(t.chip)) for t in templates
        ]
        with self._write() as conn:
            row = conn.execute("SELECT id, name FROM people WHERE employee_id = ?", (employee_id,)).fetchone()
            if row is not None and not append:
                raise GalleryError(
                    f"employee id {employee_id!r} is already enrolled ({row['name']}); use --append to add photos to it"
                )
            if row is None:
                pid = conn.execute(
                    "INSERT INTO people(employee_id, name, active, created) VALUES (?, ?, 1, ?)",
                    (employee_id, name, now()),
                ).lastrowid
            else:
                pid = row["id"]
            stamp = now()
            conn.executemany(
                "INSERT INTO templates(person_id, embedding, quality, source, encoder, created, chip) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(pid, blob, q, src, self.encoder_id, stamp, chip) for blob, q, src, chip in blobs],
            )
        return self.get(employee_id)

    def remove(self, employee_id: str) -> Person:
        person = self.get(employee_id)
        with self._write() as conn:
            conn.execute("DELETE FROM people WHERE id = ?", (person.id,))
        return person

    def rename(self, employee_id: str, name: str) -> Person:
        name = clean_text(name, "name", MAX_NAME_CHARS)
        person = self.get(employee_id)
        with self._write() as conn:
            conn.execute("UPDATE people SET name = ? WHERE id = ?", (name, person.id))
        return self.get(employee_id)

    def set_active(self, employee_id: str, active: bool) -> Person:
        person = self.get(employee_id)
        with self._write() as conn:
            conn.execute("UPDATE people SET active = ? WHERE id = ?", (int(active), person.id))
        return self.get(employee_id)

    def set_challenge(self, employee_id: str, on: bool) -> Person:
        person = self.get(employee_id)
        with self._write() as conn:
            conn.execute("UPDATE people SET challenge = ? WHERE id = ?", (int(on), person.id))
        return self.get(employee_id)

    def meta(self, key: str) -> str | None:
        with self._errors():
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def apply_changes(self, people: Sequence[PersonRecord], removed: Sequence[str], version: int) -> None:
        """A replica's update from the central store, in one transaction: each changed
        person replaced whole, each removed one deleted, and the version reached recorded
        (``meta replica_version``), so a kiosk never sees half a change."""
        with self._write() as conn:
            for p in people:
                conn.execute("DELETE FROM people WHERE employee_id = ?", (p.employee_id,))
                pid = conn.execute(
                    "INSERT INTO people(employee_id, name, active, created, challenge) VALUES (?, ?, ?, ?, ?)",
                    (p.employee_id, p.name, int(p.active), p.created, int(p.challenge)),
                ).lastrowid
                conn.executemany(
                    "INSERT INTO templates(person_id, embedding, quality, source, encoder, created) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [(pid, *t) for t in p.templates],
                )
            conn.executemany("DELETE FROM people WHERE employee_id = ?", [(e,) for e in removed])
            touched = [p.employee_id for p in people] + list(removed)
            if len(touched) > REPLICA_LOG_MAX:  # kiosks rebuild once; the log covers what comes after
                conn.execute("DELETE FROM replica_log")
                self._set_meta(conn, "replica_log_from", version)
            else:
                conn.executemany(
                    "INSERT INTO replica_log(version, employee_id) VALUES (?, ?)", [(version, e) for e in touched]
                )
                if conn.execute("SELECT count(*) FROM replica_log").fetchone()[0] > 100_000:  # bounded
                    conn.execute("DELETE FROM replica_log")
                    self._set_meta(conn, "replica_log_from", version)
            self._set_meta(conn, "replica_version", version)

    @staticmethod
    def _set_meta(conn: sqlite3.Connection, key: str, value: object) -> None:
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def without_chips(self) -> list[Person]:
        """People with a template whose face chip is unknown (imported from a v1 export,
        or enrolled before chips were kept): they cannot be re-encoded."""
        with self._errors():
            rows = self._conn.execute("SELECT DISTINCT person_id FROM templates WHERE chip IS NULL").fetchall()
        ids = {r[0] for r in rows}
        return [p for p in self.people() if p.id in ids]

    def reencode(
        self,
        encoder_id: str,
        encode: Callable[[np.ndarray], np.ndarray],
        check: Callable[[np.ndarray, np.ndarray], None] | None = None,
    ) -> int:
        """Move the whole gallery to another encoder, in one transaction; returns templates.

        ``check(embeddings, person_ids)`` sees the new templates before anything is
        written and may refuse them by raising (so a switch is all or nothing).

        ``encode`` maps (N, 150, 150, 3) chips to (N, 128) descriptors. Every template is
        recomputed from its stored chip, so the two encoders' templates never mix; if
        any template has no chip nothing changes and the people concerned are named.
        """
        missing = self.without_chips()
        if missing:
            names = ", ".join(f"{p.name} ({p.employee_id})" for p in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise GalleryError(
                f"{len(missing)} people have templates without a stored face: {names}{more}; "
                "re-enroll or remove them first (nothing was changed)"
            )
        with self._errors():
            rows = self._conn.execute("SELECT id, person_id, chip FROM templates ORDER BY id").fetchall()
        embeddings = (
            np.asarray(encode(np.stack([decode_chip(r["chip"]) for r in rows])), np.float32)
            if rows
            else np.zeros((0, EMBEDDING_DIM), np.float32)
        )
        if embeddings.shape != (len(rows), EMBEDDING_DIM):
            raise GalleryError(f"the new encoder gave {embeddings.shape} descriptors for {len(rows)} chips")
        if check is not None:
            check(embeddings, np.array([r["person_id"] for r in rows], np.int64))
        updates = [(encode_embedding(e), encoder_id, r["id"]) for e, r in zip(embeddings, rows, strict=True)]
        with self._write() as conn:
            now_ids = [r[0] for r in conn.execute("SELECT id FROM templates ORDER BY id")]
            if now_ids != [r["id"] for r in rows]:
                raise GalleryError("the gallery changed while it was being re-encoded; nothing was changed, try again")
            conn.executemany("UPDATE templates SET embedding = ?, encoder = ? WHERE id = ?", updates)
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('encoder', ?)", (encoder_id,))
        self.encoder_id = self._expected_encoder = encoder_id
        self._index = None
        return len(updates)

    # -- export / import ------------------------------------------------------------
    def export(self, path: str | os.PathLike[str]) -> int:
        """Write every person and template to a JSON file (mode 0600); returns people written."""
        path = Path(path)
        people = []
        with self._errors():
            for p in self.people():
                rows = self._conn.execute(
                    "SELECT embedding, quality, source, created, chip FROM templates WHERE person_id = ? ORDER BY id",
                    (p.id,),
                ).fetchall()
                people.append(
                    {
                        "employee_id": p.employee_id,
                        "name": p.name,
                        "active": p.active,
                        "challenge": p.challenge,
                        "created": p.created,
                        "templates": [
                            {
                                "embedding": base64.b64encode(r["embedding"]).decode("ascii"),
                                "quality": r["quality"],
                                "source": r["source"],
                                "created": r["created"],
                                "chip": base64.b64encode(r["chip"]).decode("ascii") if r["chip"] else None,
                            }
                            for r in rows
                        ],
                    }
                )
        doc = {
            "format": EXPORT_FORMAT,
            "version": EXPORT_VERSION,
            "encoder": self.encoder_id,
            "exported": now(),
            "people": people,
        }
        config.write_private(path, json.dumps(doc, indent=1))
        return len(people)

    def import_(
        self,
        path: str | os.PathLike[str],
        *,
        skip_existing: bool = False,
        check: Callable[[np.ndarray, list[np.ndarray | None], list[str]], None] | None = None,
        without_faces: bool = False,
    ) -> tuple[int, int]:
        """Add the people of an exported file, all or nothing; returns (added, skipped).

        A file from another encoder is refused: its templates live in another space.
        Employee ids already enrolled are refused unless ``skip_existing``. A template
        without its stored face is refused unless ``without_faces``: nothing can show
        it is a face at all (a crafted "centroid" matched 89% of ORL). ``check(templates,
        faces, owners)`` sees every template, with its face (None without one) and its
        employee id, before anything is written, to refuse one that is not the encoding
        of its own face, or of any face.
        """
        path = Path(path)
        doc = _read_export(path)
        if doc["encoder"] != self.encoder_id:
            raise GalleryError(
                f"{path} holds templates of encoder {doc['encoder']!r}; this gallery uses {self.encoder_id!r} "
                "(templates of two encoders never mix)"
            )
        templates = [(p["employee_id"], t) for p in doc["people"] for t in p["templates"]]
        faceless = [eid for eid, t in templates if t["chip"] is None]
        if faceless and not without_faces:
            raise GalleryError(
                f"{path}: {len(faceless)} template(s) without their stored face (first: "
                f"{faceless[0]!r}); nothing was imported (--without-faces imports them unchecked)"
            )
        if check is not None and templates:
            check(
                np.stack([t["vector"] for _, t in templates]),
                [t["face"] for _, t in templates],
                [eid for eid, _ in templates],
            )
        added = skipped = 0
        with self._write() as conn:
            for p in doc["people"]:
                exists = conn.execute("SELECT 1 FROM people WHERE employee_id = ?", (p["employee_id"],)).fetchone()
                if exists:
                    if skip_existing:
                        skipped += 1
                        continue
                    raise GalleryError(
                        f"{path}: employee id {p['employee_id']!r} is already enrolled; nothing was imported "
                        "(use --skip-existing to import the others)"
                    )
                pid = conn.execute(
                    "INSERT INTO people(employee_id, name, active, created, challenge) VALUES (?, ?, ?, ?, ?)",
                    (p["employee_id"], p["name"], int(p["active"]), p["created"], int(p["challenge"])),
                ).lastrowid
                conn.executemany(
                    "INSERT INTO templates(person_id, embedding, quality, source, encoder, created, chip) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (pid, t["blob"], t["quality"], t["source"], self.encoder_id, t["created"], t["chip"])
                        for t in p["templates"]
                    ],
                )
                added += 1
        return added, skipped


def _read_export(path: Path) -> dict[str, Any]:
    """Parse and validate an export file completely before anything is written."""
    try:
        size = path.stat().st_size
        if size > MAX_EXPORT_BYTES:
            raise GalleryError(
                f"{path}: {size / 2**20:.0f} MiB; gallery exports over {MAX_EXPORT_BYTES // 2**20} MiB are refused"
            )
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise GalleryError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise GalleryError(f"{path}: not a gallery export ({type(exc).__name__}: {str(exc)[:200]})") from None
    try:
        if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
            raise ValueError("missing the accessctl-gallery format marker")
        if doc.get("version") not in (1, EXPORT_VERSION):
            raise ValueError(f"export version {doc.get('version')!r}, this accessctl reads 1 to {EXPORT_VERSION}")
        if not isinstance(doc.get("encoder"), str) or not isinstance(doc.get("people"), list):
            raise ValueError("no encoder or people")
        seen: set[str] = set()
        for i, p in enumerate(doc["people"]):
            _check_exported_person(p, i, seen)
    except ValueError as exc:
        raise GalleryError(f"{path}: not a valid gallery export: {exc}") from None
    return doc


def _check_exported_person(p: object, i: int, seen: set[str]) -> None:
    """One person of an export, checked and normalised in place (ValueError: why not)."""
    if not isinstance(p, dict):
        raise ValueError(f"person {i + 1} is not an object")
    try:
        p["employee_id"] = clean_text(p.get("employee_id"), f"person {i + 1}'s employee id", MAX_ID_CHARS)
        p["name"] = clean_text(p.get("name"), f"the name of {p['employee_id']!r}", MAX_NAME_CHARS)
    except GalleryError as exc:
        raise ValueError(str(exc)) from None
    if p["employee_id"] in seen:
        raise ValueError(f"employee id {p['employee_id']!r} appears twice")
    seen.add(p["employee_id"])
    p.setdefault("active", True)
    p.setdefault("challenge", False)
    for flag in ("active", "challenge"):  # "yes" or 2 would be listed yet never matched, or worse
        if not isinstance(p[flag], bool):
            raise ValueError(f"person {p['employee_id']!r}: {flag} must be true or false, not {p[flag]!r}")
    p.setdefault("created", now())
    if not isinstance(p["created"], str):
        raise ValueError(f"person {p['employee_id']!r}: created must be a date string")
    if not isinstance(p.get("templates"), list) or not p["templates"]:
        raise ValueError(f"person {p['employee_id']!r} has no templates")
    for t in p["templates"]:
        try:
            _check_exported_template(t)
        except (KeyError, TypeError, ValueError, GalleryError) as exc:
            raise ValueError(f"a template of {p['employee_id']!r} is damaged ({exc})") from None


def _check_exported_template(t: dict[str, Any]) -> None:
    vec = np.frombuffer(base64.b64decode(t["embedding"], validate=True), dtype="<f4")
    if vec.shape != (EMBEDDING_DIM,) or not np.isfinite(vec).all():
        raise ValueError(f"expected {EMBEDDING_DIM} finite numbers")
    if not 0 < float(np.linalg.norm(vec)) <= MAX_TEMPLATE_NORM:
        raise ValueError(f"its length {float(np.linalg.norm(vec)):.3g} is outside (0, {MAX_TEMPLATE_NORM:g}]")
    t["vector"], t["blob"] = vec, encode_embedding(vec)
    t["quality"] = float(t.get("quality", 0.0))
    if not np.isfinite(t["quality"]):
        raise ValueError(f"quality {t['quality']} is not a number")
    t["source"] = str(t.get("source", "import"))
    t["created"] = str(t.get("created", now()))
    chip = t.get("chip")
    t["face"] = decode_chip(base64.b64decode(chip, validate=True)) if chip else None
    t["chip"] = encode_chip(t["face"]) if chip else None
