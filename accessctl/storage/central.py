"""The central store of a many-door site: people, templates and the audit log in PostgreSQL.

One server holds the site's people and every door's events. Kiosks never decide on it
directly: each keeps a local SQLite replica (:mod:`accessctl.storage.replica`),
brought up to date from here, and spools its events locally before uploading them.

Change tracking: every change to a person takes the next value of one sequence as
its version, under one transaction-scoped advisory lock, so versions commit in the
order they were taken and a reader that has seen version *v* has seen everything
below it. A removal leaves a tombstone with its version. Each change also sends a
``NOTIFY`` on :data:`CHANNEL` (delivered on commit), which replicas listen to; a
periodic catch-up by version covers a missed notification.

Events carry the unique id their kiosk gave them; inserting one twice does nothing,
so a backlog uploaded again after an outage adds no duplicate. A trigger keeps the
events table append-only for every role; the kiosk role may only insert there.
"""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from accessctl import config
from accessctl.clock import now
from accessctl.errors import AccessctlError, GalleryError
from accessctl.storage.audit import event_filter
from accessctl.storage.gallery import (
    MAX_ID_CHARS,
    MAX_NAME_CHARS,
    NewTemplate,
    Person,
    PersonRecord,
    Template,
    TemplateIndex,
    clean_text,
    decode_embeddings,
    encode_chip,
    encode_embedding,
)

CHANNEL = "accessctl_gallery"
KIOSK_ROLE, ADMIN_ROLE = "accessctl_kiosk", "accessctl_admin"
WRITE_LOCK = 0x61636374  # pg_advisory_xact_lock key: one writer at a time, versions in commit order

# Each entry upgrades the schema by one version; accessctl_meta.schema_version records it.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE accessctl_meta (key text PRIMARY KEY, value text NOT NULL);
    CREATE SEQUENCE accessctl_version;
    CREATE TABLE people (
        employee_id text PRIMARY KEY,
        name text NOT NULL,
        active boolean NOT NULL DEFAULT true,
        created text NOT NULL,
        version bigint NOT NULL
    );
    CREATE INDEX people_version ON people(version);
    CREATE TABLE templates (
        id bigserial PRIMARY KEY,
        employee_id text NOT NULL REFERENCES people(employee_id) ON DELETE CASCADE,
        embedding bytea NOT NULL,
        quality real NOT NULL,
        source text NOT NULL,
        encoder text NOT NULL,
        created text NOT NULL,
        chip bytea
    );
    CREATE INDEX templates_person ON templates(employee_id);
    CREATE TABLE removed (employee_id text PRIMARY KEY, version bigint NOT NULL);
    CREATE INDEX removed_version ON removed(version);
    CREATE TABLE events (
        uid uuid PRIMARY KEY,
        time text NOT NULL,
        kiosk text NOT NULL,
        kiosk_seq bigint NOT NULL,
        event text NOT NULL,
        reason text,
        person_id text,
        name text,
        distance double precision,
        liveness double precision,
        stream_t double precision,
        frame bigint,
        detail text,
        received timestamptz NOT NULL DEFAULT now()
    );
    CREATE INDEX events_time ON events(time);
    CREATE FUNCTION accessctl_append_only() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$;
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION accessctl_append_only();
    CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
        FOR EACH STATEMENT EXECUTE FUNCTION accessctl_append_only();
    """,
    # v2: people whose access always needs a head-turn challenge.
    "ALTER TABLE people ADD COLUMN challenge boolean NOT NULL DEFAULT false",
    # v3: who sent each event, as the server authenticated it (``login``, beside the
    # door's own ``kiosk`` name), and when it arrived (``received``): set by the server
    # whatever the client sends. Doors append through one function, so that they need
    # neither INSERT nor SELECT on the log.
    """
    ALTER TABLE events ADD COLUMN login text;
    CREATE FUNCTION accessctl_event_origin() RETURNS trigger LANGUAGE plpgsql AS
        $$ BEGIN NEW.login := session_user; NEW.received := now(); RETURN NEW; END $$;
    CREATE TRIGGER events_origin BEFORE INSERT ON events
        FOR EACH ROW EXECUTE FUNCTION accessctl_event_origin();
    CREATE FUNCTION accessctl_append_event(p_uid uuid, p_time text, p_kiosk text, p_seq bigint, p_event text,
            p_reason text, p_person_id text, p_name text, p_distance double precision,
            p_liveness double precision, p_stream_t double precision, p_frame bigint, p_detail text)
        RETURNS integer LANGUAGE sql SECURITY DEFINER SET search_path = public, pg_temp AS
        $$ WITH added AS (
               INSERT INTO events(uid, time, kiosk, kiosk_seq, event, reason, person_id, name, distance, liveness,
                                  stream_t, frame, detail)
               VALUES (p_uid, p_time, p_kiosk, p_seq, p_event, p_reason, p_person_id, p_name, p_distance, p_liveness,
                       p_stream_t, p_frame, p_detail)
               ON CONFLICT (uid) DO NOTHING RETURNING 1)
           SELECT count(*)::integer FROM added $$;
    REVOKE EXECUTE ON FUNCTION accessctl_append_event(uuid, text, text, bigint, text, text, text, text,
        double precision, double precision, double precision, bigint, text) FROM PUBLIC;
    """,
]
# What a door sends of each event, in the order accessctl_append_event takes it.
EVENT_COLUMNS = (
    "uid",
    "time",
    "kiosk",
    "kiosk_seq",
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
APPEND_EVENT = (
    "accessctl_append_event(uuid, text, text, bigint, text, text, text, text, double precision, "
    "double precision, double precision, bigint, text)"
)
SCHEMA_VERSION = len(MIGRATIONS)

ROLES_SQL = f"""\
-- Two roles (cluster-wide; give them passwords or certificates as your site does):
DO $$ BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{KIOSK_ROLE}') THEN CREATE ROLE {KIOSK_ROLE} LOGIN; END IF;
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ADMIN_ROLE}') THEN CREATE ROLE {ADMIN_ROLE} LOGIN; END IF;
END $$;
-- The kiosk reads people and their templates (not their stored faces: a stolen door
-- credential is no copy of every employee's face) and appends events through one
-- function (it cannot read the log, nor choose the login or time of arrival recorded).
-- A door of its own: CREATE ROLE door_front LOGIN IN ROLE {KIOSK_ROLE} (its events say so).
GRANT USAGE ON SCHEMA public TO {KIOSK_ROLE}, {ADMIN_ROLE};
REVOKE ALL ON templates, events FROM {KIOSK_ROLE};
GRANT SELECT ON accessctl_meta, people, removed TO {KIOSK_ROLE};
GRANT SELECT (id, employee_id, embedding, quality, source, encoder, created) ON templates TO {KIOSK_ROLE};
GRANT EXECUTE ON FUNCTION {APPEND_EVENT} TO {KIOSK_ROLE}, {ADMIN_ROLE};
-- The admin enrolls and changes people, and reads (and appends to) the log.
GRANT SELECT ON accessctl_meta TO {ADMIN_ROLE};
GRANT SELECT, INSERT, UPDATE, DELETE ON people, templates, removed TO {ADMIN_ROLE};
GRANT SELECT, INSERT ON events TO {ADMIN_ROLE};
GRANT USAGE ON SEQUENCE accessctl_version, templates_id_seq TO {ADMIN_ROLE};
"""


class StoreError(AccessctlError):
    """The central store cannot be reached or refused a request."""


class SchemaError(StoreError):
    """The central store's schema is not the one this accessctl reads and writes: a
    door stays on its replica, and keeps its events, until it is."""


def load_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - a dependency; only a broken install lacks it
        raise StoreError("[store] url is a PostgreSQL server, but psycopg is not installed") from None
    return psycopg


def schema_sql() -> str:
    """Everything `store init` runs, for a DBA to read or run with psql."""
    steps = "\n".join(f"-- schema version {i + 1}\n{textwrap.dedent(m).strip()}\n" for i, m in enumerate(MIGRATIONS))
    meta = f"INSERT INTO accessctl_meta(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
    return f"BEGIN;\n{steps}{meta}{ROLES_SQL}COMMIT;\n"


def event_uid(install: str, seq: int) -> uuid.UUID:
    """The id of a kiosk's event: its events file's own id and the row number in it."""
    return uuid.uuid5(uuid.UUID(install), str(seq))


@dataclass(frozen=True)
class Changes:
    version: int  # everything up to this version is in these changes (or was before)
    people: list[PersonRecord]
    removed: list[str]


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        d = conninfo_to_dict(url)
        if "password" in d:
            d["password"] = "***"
        return make_conninfo("", **d)
    except Exception:
        return "the configured [store] url"


class CentralStore:
    """One connection to the central store. Not shared between threads."""

    def __init__(self, url: str, *, connect_timeout_s: float = 3.0, autocommit: bool = True) -> None:
        pg = load_psycopg()
        self.url = url
        try:
            self.conn = pg.connect(url, connect_timeout=max(1, int(connect_timeout_s)), autocommit=autocommit)
        except pg.Error as exc:
            raise StoreError(f"the central store at {redact(url)} cannot be reached: {first_line(exc)}") from None

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> CentralStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        pg = load_psycopg()
        try:
            yield
        except pg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"the central store refused this role: {first_line(exc)}") from None
        except pg.Error as exc:
            raise StoreError(f"central store {redact(self.url)}: {first_line(exc)}") from None

    @contextmanager
    def _write(self, *, upgrading: bool = False) -> Iterator[Any]:
        """One transaction holding the writers' lock, with its version taken after the
        lock; and, unless it is the upgrade itself, on the schema this accessctl writes."""
        with self._errors(), self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
            if not upgrading:
                self.check_schema()
            yield cur

    def _next_version(self, cur: Any) -> int:
        cur.execute("SELECT nextval('accessctl_version')")
        version = int(cur.fetchone()[0])
        cur.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(version)))
        return version

    # -- schema -----------------------------------------------------------------------
    def schema_version(self) -> int:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute("SELECT to_regclass('accessctl_meta') IS NOT NULL")
            if not cur.fetchone()[0]:
                return 0
            cur.execute("SELECT value FROM accessctl_meta WHERE key = 'schema_version'")
            row = cur.fetchone()
        return int(row[0]) if row else 0

    def check_schema(self) -> None:
        """Every path that reads or writes the store calls this first (SchemaError)."""
        version = self.schema_version()
        if version == 0:
            raise SchemaError(
                f"the central store at {redact(self.url)} has no accessctl schema: run `accessctl store init`"
            )
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"the central store has schema version {version}; this accessctl reads up to "
                f"{SCHEMA_VERSION} (upgrade accessctl)"
            )
        if version < SCHEMA_VERSION:
            raise SchemaError(
                f"the central store has schema version {version}: run `accessctl store init` to upgrade it"
            )

    def init(self, encoder_id: str | None = None) -> tuple[int, int]:
        """Create or upgrade the schema and grant the two roles; returns (from, to) versions."""
        with self._write(upgrading=True) as cur:
            start = self.schema_version()
            if start > SCHEMA_VERSION:
                raise StoreError(f"the central store has schema version {start}, newer than this accessctl")
            for step in range(start, SCHEMA_VERSION):
                cur.execute(MIGRATIONS[step])
            cur.execute(
                "INSERT INTO accessctl_meta(key, value) VALUES ('schema_version', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )
            cur.execute(
                "INSERT INTO accessctl_meta(key, value) VALUES ('encoder', %s), ('created', %s) "
                "ON CONFLICT (key) DO NOTHING",
                (encoder_id or config.NEW_GALLERY_ENCODER, now()),
            )
            cur.execute(ROLES_SQL)
        return start, SCHEMA_VERSION

    def meta(self, key: str) -> str | None:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute("SELECT value FROM accessctl_meta WHERE key = %s", (key,))
            row = cur.fetchone()
        return None if row is None else str(row[0])

    def version(self) -> int:
        """The newest committed change (0: none yet)."""
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT GREATEST(COALESCE((SELECT max(version) FROM people), 0), "
                "COALESCE((SELECT max(version) FROM removed), 0))"
            )
            return int(cur.fetchone()[0])

    # -- what replicas read -------------------------------------------------------------
    def changes_since(self, version: int) -> Changes:
        """Every person changed or removed after ``version``, read in one snapshot."""
        with self._errors(), self.conn.transaction(), self.conn.cursor() as cur:
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            cur.execute(
                "SELECT employee_id, name, active, created, version, challenge FROM people WHERE version > %s",
                (version,),
            )
            people = cur.fetchall()
            cur.execute(
                "SELECT t.employee_id, t.embedding, t.quality, t.source, t.encoder, t.created "
                "FROM templates t JOIN people p ON p.employee_id = t.employee_id "
                "WHERE p.version > %s ORDER BY t.id",
                (version,),
            )
            templates: dict[str, list[tuple[bytes, float, str, str, str]]] = {}
            for eid, emb, q, src, enc, created in cur.fetchall():
                templates.setdefault(eid, []).append((bytes(emb), float(q), src, enc, created))
            cur.execute("SELECT employee_id, version FROM removed WHERE version > %s", (version,))
            removed = cur.fetchall()
        top = max([version] + [int(p[4]) for p in people] + [int(r[1]) for r in removed])
        records = [PersonRecord(p[0], p[1], bool(p[2]), p[3], templates.get(p[0], []), bool(p[5])) for p in people]
        return Changes(top, records, [r[0] for r in removed])

    # -- admin writes -----------------------------------------------------------------
    def add_person(
        self, employee_id: str, name: str, templates: Sequence[NewTemplate], *, append: bool = False, encoder_id: str
    ) -> None:
        employee_id = clean_text(employee_id, "employee id", MAX_ID_CHARS)
        name = clean_text(name, "name", MAX_NAME_CHARS)
        if not templates:
            raise GalleryError("at least one face template is needed to enroll")
        rows = [
            (encode_embedding(t.embedding), float(t.quality), str(t.source), encode_chip(t.chip)) for t in templates
        ]
        with self._write() as cur:
            cur.execute("SELECT name FROM people WHERE employee_id = %s", (employee_id,))
            existing = cur.fetchone()
            if existing is not None and not append:
                raise GalleryError(
                    f"employee id {employee_id!r} is already enrolled ({existing[0]}); use --append to add photos to it"
                )
            version = self._next_version(cur)
            if existing is None:
                cur.execute(
                    "INSERT INTO people(employee_id, name, active, created, version) VALUES (%s, %s, true, %s, %s)",
                    (employee_id, name, now(), version),
                )
                cur.execute("DELETE FROM removed WHERE employee_id = %s", (employee_id,))
            else:
                cur.execute("UPDATE people SET version = %s WHERE employee_id = %s", (version, employee_id))
            stamp = now()
            cur.executemany(
                "INSERT INTO templates(employee_id, embedding, quality, source, encoder, created, chip) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(employee_id, emb, q, src, encoder_id, stamp, chip) for emb, q, src, chip in rows],
            )

    def _update(self, employee_id: str, sql: str, args: tuple) -> None:
        with self._write() as cur:
            version = self._next_version(cur)
            cur.execute(sql, (*args, version, employee_id))
            if cur.rowcount == 0:
                raise GalleryError(f"no enrolled person has employee id {employee_id!r}")

    def rename(self, employee_id: str, name: str) -> None:
        name = clean_text(name, "name", MAX_NAME_CHARS)
        self._update(employee_id, "UPDATE people SET name = %s, version = %s WHERE employee_id = %s", (name,))

    def set_active(self, employee_id: str, active: bool) -> None:
        self._update(employee_id, "UPDATE people SET active = %s, version = %s WHERE employee_id = %s", (active,))

    def set_challenge(self, employee_id: str, on: bool) -> None:
        self._update(employee_id, "UPDATE people SET challenge = %s, version = %s WHERE employee_id = %s", (on,))

    def remove(self, employee_id: str) -> None:
        with self._write() as cur:
            cur.execute("DELETE FROM people WHERE employee_id = %s", (employee_id,))
            if cur.rowcount == 0:
                raise GalleryError(f"no enrolled person has employee id {employee_id!r}")
            version = self._next_version(cur)
            cur.execute(
                "INSERT INTO removed(employee_id, version) VALUES (%s, %s) "
                "ON CONFLICT (employee_id) DO UPDATE SET version = excluded.version",
                (employee_id, version),
            )

    # -- admin reads ------------------------------------------------------------------
    _PEOPLE = (
        "SELECT p.employee_id, p.name, p.active, p.created, "
        "(SELECT count(*) FROM templates t WHERE t.employee_id = p.employee_id), p.challenge FROM people p"
    )

    def people(self) -> list[Person]:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(self._PEOPLE + " ORDER BY p.employee_id")
            rows = cur.fetchall()
        return [Person(i, r[0], r[1], bool(r[2]), r[3], int(r[4]), bool(r[5])) for i, r in enumerate(rows, start=1)]

    def get(self, employee_id: str) -> Person:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(self._PEOPLE + " WHERE p.employee_id = %s", (employee_id,))
            r = cur.fetchone()
        if r is None:
            raise GalleryError(f"no enrolled person has employee id {employee_id!r}")
        return Person(0, r[0], r[1], bool(r[2]), r[3], int(r[4]), bool(r[5]))

    def templates(self, employee_id: str) -> list[Template]:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT id, quality, source, encoder, created FROM templates WHERE employee_id = %s ORDER BY id",
                (employee_id,),
            )
            rows = cur.fetchall()
        return [Template(int(r[0]), 0, float(r[1]), r[2], r[3], r[4]) for r in rows]

    def active_templates(self, encoder_id: str) -> tuple[list[str], np.ndarray]:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT t.employee_id, t.embedding FROM templates t JOIN people p USING (employee_id) "
                "WHERE p.active AND t.encoder = %s ORDER BY t.id",
                (encoder_id,),
            )
            rows = cur.fetchall()
        return [r[0] for r in rows], decode_embeddings([bytes(r[1]) for r in rows])

    def embeddings(self, employee_id: str) -> np.ndarray:
        """All of one person's templates (as :meth:`Gallery.embeddings`)."""
        with self._errors(), self.conn.cursor() as cur:
            cur.execute("SELECT embedding FROM templates WHERE employee_id = %s ORDER BY id", (employee_id,))
            rows = cur.fetchall()
        return decode_embeddings([bytes(r[0]) for r in rows])

    # -- the audit log ----------------------------------------------------------------
    def insert_events(self, rows: Sequence[dict]) -> int:
        """Append events (each with its ``uid``); one already there is skipped. Returns
        how many were new."""
        if not rows:
            return 0
        sql = f"SELECT accessctl_append_event({', '.join(['%s'] * len(EVENT_COLUMNS))})"
        with self._errors(), self.conn.transaction(), self.conn.cursor() as cur:
            new = 0
            for r in rows:
                cur.execute(sql, tuple(r[c] for c in EVENT_COLUMNS))
                new += int(cur.fetchone()[0])
        return new

    def events(self, *, kiosk: str | None = None) -> list[dict]:
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(
                "SELECT uid, time, kiosk, kiosk_seq, event, reason, person_id, name FROM events"
                + (" WHERE kiosk = %s" if kiosk else "")
                + " ORDER BY kiosk, kiosk_seq",
                (kiosk,) if kiosk else (),
            )
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def query(self, *, since: str | None = None, person: str | None = None) -> list[dict]:
        """Every door's events as :meth:`AuditLog.query` gives one door's (same columns; ``id``
        is the kiosk's own row number), in time order; and two the server recorded: the
        ``login`` that sent each, and when it was ``received``."""
        where, args = event_filter(since, person, "%s")
        sql = (
            "SELECT kiosk_seq AS id, time, kiosk, event, reason, person_id, name, distance, liveness, stream_t, "
            "frame, detail, login, received FROM events" + where + " ORDER BY time, kiosk, kiosk_seq"
        )
        with self._errors(), self.conn.cursor() as cur:
            cur.execute(sql, args)
            names = [d.name for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def fill_empty(
        self, encoder_id: str, people: Sequence[Person], templates: Sequence[tuple], events: Sequence[dict]
    ) -> None:
        """Fill an empty store in one transaction (``store migrate``): people, their
        templates as stored (employee id, embedding, quality, source, encoder, created,
        chip) and events by :data:`EVENT_COLUMNS`; the counts are checked before it
        commits, so it is all or nothing."""
        with self._write() as cur:
            cur.execute("SELECT count(*) FROM people")
            if cur.fetchone()[0]:
                raise StoreError(
                    "the central store already holds people; `store migrate` only fills an empty one "
                    "(move further people with `gallery export` and `enroll`)"
                )
            cur.execute("UPDATE accessctl_meta SET value = %s WHERE key = 'encoder'", (encoder_id,))
            version = self._next_version(cur)
            cur.executemany(
                "INSERT INTO people(employee_id, name, active, created, version, challenge) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [(p.employee_id, p.name, p.active, p.created, version, p.challenge) for p in people],
            )
            cur.executemany(
                "INSERT INTO templates(employee_id, embedding, quality, source, encoder, created, chip) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                templates,
            )
            cols = EVENT_COLUMNS
            cur.executemany(
                f"INSERT INTO events({', '.join(cols)}) VALUES ({', '.join(['%s'] * len(cols))}) "
                "ON CONFLICT (uid) DO NOTHING",
                [tuple(e[c] for c in cols) for e in events],
            )
            counts = []
            for table in ("people", "templates"):
                cur.execute(f"SELECT count(*) FROM {table}")
                counts.append(int(cur.fetchone()[0]))
            cur.execute("SELECT count(*) FROM events WHERE uid = ANY(%s)", ([e["uid"] for e in events],))
            counts.append(int(cur.fetchone()[0]))
            if counts != [len(people), len(templates), len(events)]:
                raise StoreError(
                    f"copied {counts[0]} people, {counts[1]} templates, {counts[2]} events, but the door "
                    f"has {len(people)}, {len(templates)}, {len(events)}; nothing was migrated"
                )


class CentralGallery:
    """The central store behind the gallery's own interface, for the admin's commands
    (enroll, list, show, rename, enable, disable, remove, identify, verify): the
    same calls as :class:`~accessctl.storage.gallery.Gallery`, so a command does not
    care which one it was given."""

    def __init__(self, url: str) -> None:
        self.store = CentralStore(url)
        self.store.check_schema()
        self.encoder_id = self.store.meta("encoder") or config.NEW_GALLERY_ENCODER
        self.path = redact(url)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> CentralGallery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def people(self, *, include_inactive: bool = True) -> list[Person]:
        return [p for p in self.store.people() if include_inactive or p.active]

    def get(self, employee_id: str) -> Person:
        return self.store.get(employee_id)

    def templates(self, employee_id: str) -> list[Template]:
        return self.store.templates(employee_id)

    def embeddings(self, employee_id: str) -> np.ndarray:
        return self.store.embeddings(employee_id)

    def add_person(
        self, employee_id: str, name: str, templates: Sequence[NewTemplate], *, append: bool = False
    ) -> Person:
        self.store.add_person(employee_id, name, templates, append=append, encoder_id=self.encoder_id)
        return self.get(employee_id)

    def rename(self, employee_id: str, name: str) -> Person:
        self.store.rename(employee_id, name)
        return self.get(employee_id)

    def set_active(self, employee_id: str, active: bool) -> Person:
        self.store.set_active(employee_id, active)
        return self.get(employee_id)

    def set_challenge(self, employee_id: str, on: bool) -> Person:
        self.store.set_challenge(employee_id, on)
        return self.get(employee_id)

    def remove(self, employee_id: str) -> Person:
        person = self.get(employee_id)
        self.store.remove(employee_id)
        return person

    def index(self) -> TemplateIndex:
        """The active templates of this encoder as one matrix, read afresh (the admin's
        commands ask once), each row with its employee id."""
        ids, emb = self.store.active_templates(self.encoder_id)
        number = {e: i for i, e in enumerate(sorted(set(ids)))}
        return TemplateIndex(
            emb, np.array([number[e] for e in ids], np.int64), employee_ids=np.array(ids, dtype=object)
        )

    def indexed_person(self, index: TemplateIndex, row: int) -> Person | None:
        assert index.employee_ids is not None  # this store's index names each row's person
        try:
            return self.get(str(index.employee_ids[row]))
        except GalleryError:  # removed since the index was read
            return None


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
