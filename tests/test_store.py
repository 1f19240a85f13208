"""Many doors, one site: the central PostgreSQL store, against a real server the tests
start themselves (tests/pgserver.py). Roles, migration, replicas that follow changes,
an event log that loses nothing, and kiosks that keep deciding when the server dies."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psycopg
import pytest

from accessctl.errors import AccessctlError, GalleryError
from accessctl.identity.match import identify
from accessctl.storage.audit import AuditLog, Event
from accessctl.storage.central import (
    ADMIN_ROLE,
    KIOSK_ROLE,
    SCHEMA_VERSION,
    CentralGallery,
    CentralStore,
    StoreError,
)
from accessctl.storage.gallery import Gallery, NewTemplate
from accessctl.storage.migrate import migrate
from accessctl.storage.replica import Spool, StoreLink, StoreNews, sync_once
from tests.certs import make_ca

pytestmark = pytest.mark.store


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal(128).astype(np.float32)
    return v / np.linalg.norm(v)


def as_role(url: str, role: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://{role}@")


@pytest.fixture
def store_url(pg_url: str) -> str:
    with CentralStore(pg_url) as store:
        store.init()
    return pg_url


def test_schema_is_versioned_and_each_role_can_do_only_its_part(store_url: str) -> None:
    with CentralStore(store_url) as store:
        assert store.init() == (SCHEMA_VERSION, SCHEMA_VERSION)  # again: already current, nothing changed
        assert store.schema_version() == SCHEMA_VERSION
    admin = CentralGallery(as_role(store_url, ADMIN_ROLE))
    admin.add_person("E1", "Ada", [NewTemplate(unit(1), 0.9, "a.jpg")])
    admin.close()
    kiosk = CentralStore(as_role(store_url, KIOSK_ROLE))
    changes = kiosk.changes_since(0)
    assert [p.employee_id for p in changes.people] == ["E1"] and changes.version >= 1
    row = {
        "uid": "6f1c7d8e-0000-4000-8000-000000000001",
        "time": "2026-12-02T00:00:00Z",
        "kiosk": "door-1",
        "kiosk_seq": 1,
        "event": "denied",
        "reason": "spoof",
        "person_id": None,
        "name": None,
        "distance": None,
        "liveness": 0.1,
        "stream_t": 1.0,
        "frame": 3,
        "detail": None,
    }
    assert kiosk.insert_events([row]) == 1 and kiosk.insert_events([row]) == 0  # idempotent on the id
    for sql in (
        "UPDATE people SET active = false",
        "DELETE FROM templates",
        "SELECT * FROM events",
        "SELECT uid FROM events",
        "UPDATE events SET kiosk = 'x'",
        "SELECT chip FROM templates",  # a stolen door credential is no copy of everyone's face
        "INSERT INTO events(uid, time, kiosk, kiosk_seq, event, received, login) VALUES "
        "(gen_random_uuid(), '2020-01-01T00:00:00Z', 'vault', 1, 'granted', '2020-01-01', 'admin')",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            kiosk.conn.execute(sql)
    assert kiosk.conn.execute("SELECT count(*) FROM templates").fetchone()[0] == 1  # what the replica reads
    kiosk.close()
    # A door of its own: a login in the kiosk group. The server records who sent each
    # event and when it arrived, whatever the door's own clock and name say.
    with psycopg.connect(store_url, autocommit=True) as owner:
        owner.execute(f"DROP ROLE IF EXISTS door_front; CREATE ROLE door_front LOGIN IN ROLE {KIOSK_ROLE}")
    with CentralStore(as_role(store_url, "door_front")) as door:
        forged = {
            **row,
            "uid": "6f1c7d8e-0000-4000-8000-000000000002",
            "kiosk": "vault",
            "event": "granted",
            "time": "2001-01-01T00:00:00Z",
        }
        assert door.insert_events([forged]) == 1
    with CentralStore(store_url) as owner_store:
        got = {r["kiosk"]: r for r in owner_store.query()}
    assert got["door-1"]["login"] == KIOSK_ROLE and got["vault"]["login"] == "door_front"
    assert got["vault"]["time"] == "2001-01-01T00:00:00Z" and got["vault"]["received"].year >= 2026
    with psycopg.connect(store_url, autocommit=True) as owner:  # append-only for everyone, the owner too
        for sql in ("UPDATE events SET kiosk = 'x'", "DELETE FROM events", "TRUNCATE events"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                owner.execute(sql)
    out = subprocess.run(
        [sys.executable, "-m", "accessctl", "store", "init", "--print-sql"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and "GRANT EXECUTE ON FUNCTION accessctl_append_event" in out.stdout
    assert "CREATE TABLE people" in out.stdout and out.stdout.rstrip().endswith("COMMIT;")


def test_a_store_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="cannot be reached") as err:
        CentralStore("postgresql://nobody:secret@127.0.0.1:1/x", connect_timeout_s=1)
    assert "secret" not in str(err.value) and "\n" not in str(err.value)


def test_migrate_copies_a_door_all_or_nothing(store_url: str, tmp_path: Path) -> None:
    chip = np.full((150, 150, 3), 90, np.uint8)
    with Gallery(tmp_path / "g.db") as g:
        g.add_person("E1", "Ada", [NewTemplate(unit(1), 0.9, "a.jpg", chip), NewTemplate(unit(2), 0.8, "b.jpg", chip)])
        g.add_person("E2", "Bob", [NewTemplate(unit(3), 0.7, "c.jpg", chip)])
        g.set_active("E2", False)
        g.set_challenge("E1", True)
    with AuditLog(tmp_path / "events.db", kiosk="door-1") as log:
        for i in range(5):
            log.append(Event("denied", "spoof", frame=i))
    assert migrate(store_url, tmp_path / "g.db", tmp_path / "events.db") == (2, 3, 5)
    central = CentralGallery(store_url)
    assert [(p.employee_id, p.active, p.templates, p.challenge) for p in central.people()] == [
        ("E1", True, 2, True),
        ("E2", False, 1, False),
    ]
    assert central.encoder_id == "sface-2021dec"
    with pytest.raises(StoreError, match="already holds people"):
        migrate(store_url, tmp_path / "g.db", tmp_path / "events.db")
    assert len(central.people()) == 2 and len(central.store.events()) == 5
    spool = Spool(tmp_path / "events.db")  # the door's events are on the server: its uploads skip them
    assert spool.count_pending() == 0
    spool.close()
    central.close()


def test_a_replica_follows_enrollment_disable_challenge_and_removal_within_a_second(
    store_url: str, tmp_path: Path
) -> None:
    notes: list[StoreNews] = []
    link = StoreLink(
        as_role(store_url, KIOSK_ROLE),
        notify=notes.append,
        sync_s=30.0,
        replica=tmp_path / "replica.db",
        events=tmp_path / "events.db",
    )
    link.start()
    admin = CentralGallery(as_role(store_url, ADMIN_ROLE))
    try:
        with Gallery(tmp_path / "replica.db") as kiosk:  # the kiosk's own connection, as the pipeline holds it

            def reached(check) -> float:  # noqa: ANN001
                t0 = time.monotonic()
                while time.monotonic() - t0 < 5.0:
                    if check():
                        return time.monotonic() - t0
                    time.sleep(0.02)
                raise AssertionError("the change did not reach the replica")

            admin.add_person("E1", "Ada", [NewTemplate(unit(1), 0.9, "a.jpg")])
            lag = [reached(lambda: identify(kiosk, unit(1), 0.5).person is not None)]
            admin.set_active("E1", False)
            lag.append(reached(lambda: identify(kiosk, unit(1), 0.5).person is None))
            admin.set_active("E1", True)
            lag.append(reached(lambda: identify(kiosk, unit(1), 0.5).person is not None))
            admin.set_challenge("E1", True)  # a person the site always asks to turn their head
            lag.append(reached(lambda: kiosk.get("E1").challenge))
            admin.remove("E1")
            lag.append(reached(lambda: kiosk.people() == []))
            # Any role may NOTIFY in PostgreSQL: a forged one only makes doors sync early,
            # since they take the version from the server, never from the message.
            with psycopg.connect(as_role(store_url, KIOSK_ROLE), autocommit=True) as other_door:
                other_door.execute("NOTIFY accessctl_gallery, '999999'")
            time.sleep(0.5)
            with CentralStore(store_url) as server:
                assert int(kiosk.meta("replica_version")) == server.version() < 999999
        assert max(lag) < 1.0, lag
        assert notes and notes[0].online
    finally:
        admin.close()
        link.stop()


def test_a_schema_version_mismatch_keeps_the_door_on_its_replica_and_its_events(store_url: str, tmp_path: Path) -> None:
    """A store at another schema version (a newer accessctl's, or a half-done upgrade):
    said once, and then neither the replica follows it nor are events written into it,
    until it matches again; then both resume, nothing lost. The admin's writes are
    refused meanwhile."""
    notes: list[StoreNews] = []
    events = tmp_path / "events.db"
    link = StoreLink(
        as_role(store_url, KIOSK_ROLE),
        notify=notes.append,
        sync_s=0.3,
        upload_s=0.1,
        replica=tmp_path / "replica.db",
        events=events,
    )
    link.start()
    admin = CentralGallery(as_role(store_url, ADMIN_ROLE))
    pg = psycopg.connect(store_url, autocommit=True)
    try:
        for bad in (SCHEMA_VERSION + 1, 0):
            uploaded = pg.execute("SELECT count(*) FROM events").fetchone()[0]
            pg.execute("UPDATE accessctl_meta SET value = %s WHERE key = 'schema_version'", (str(bad),))
            with pytest.raises(StoreError, match="schema version|no accessctl schema"):  # the admin's writes too
                admin.add_person(f"E{bad}", "New", [NewTemplate(unit(bad + 3), 0.9, "x")])
            with AuditLog(events, kiosk="door-1") as log:
                log.append(Event("denied", "spoof"))
            time.sleep(1.5)
            with Gallery(tmp_path / "replica.db") as kiosk:
                assert [p.employee_id for p in kiosk.people()] == []
            assert pg.execute("SELECT count(*) FROM events").fetchone()[0] == uploaded
            assert not notes[-1].online and "schema" in notes[-1].detail, notes[-1]
            pg.execute("UPDATE accessctl_meta SET value = %s WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
            t0 = time.monotonic()
            while pg.execute("SELECT count(*) FROM events").fetchone()[0] < uploaded + 1 or not notes[-1].online:
                assert time.monotonic() - t0 < 15, "the link did not resume once the schema matched"
                time.sleep(0.1)
    finally:
        pg.close()
        admin.close()
        link.stop()


def test_a_missed_notification_is_caught_up_by_version(store_url: str, tmp_path: Path) -> None:
    with CentralStore(store_url) as store, Gallery(tmp_path / "replica.db", encoder_id="sface-2021dec") as replica:
        admin = CentralGallery(store_url)
        for i in range(3):
            admin.add_person(f"E{i}", f"P{i}", [NewTemplate(unit(i), 0.9, "x")])
        v = sync_once(store, replica)
        admin.remove("E1")
        admin.rename("E2", "Pat")
        assert sync_once(store, replica) == v + 2
        assert [(p.employee_id, p.name) for p in replica.people()] == [("E0", "P0"), ("E2", "Pat")]
        with pytest.raises(GalleryError):
            admin.add_person("E0", "Again", [NewTemplate(unit(9), 0.9, "x")])
        admin.close()


def _kiosk_home(root: Path, name: str, url: str) -> Path:
    home = root / name
    home.mkdir()
    (home / "config.toml").write_text(f'[store]\nurl = "{url}"\nsync_s = 1.0\n[kiosk]\nname = "{name}"\n')
    return home


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSCTL_")}
    return env | {"ACCESSCTL_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}


@pytest.mark.slow
def test_two_kiosks_keep_deciding_through_a_server_crash_and_lose_no_event(
    pg_server, store_url: str, tmp_path: Path, astronaut_video: Path, astronaut_path: Path
) -> None:
    """Two kiosk processes and an admin process against one server; the server killed
    (pg_ctl stop -m immediate) while the kiosks decide, then restarted: every event is
    on the server exactly once, the kiosks decided on their replicas meanwhile, and a
    change made after the restart reaches both."""
    kiosk_url, admin_url = as_role(store_url, KIOSK_ROLE), as_role(store_url, ADMIN_ROLE)
    admin_home = _kiosk_home(tmp_path, "office", admin_url)

    def admin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "accessctl", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=_env(admin_home),
            stdin=subprocess.DEVNULL,
        )

    done = admin("enroll", "--employee-id", "E1", "--name", "Eileen Collins", str(astronaut_path))
    assert done.returncode == 0, done.stderr
    homes = [_kiosk_home(tmp_path, f"door-{i}", kiosk_url) for i in (1, 2)]
    outs = [open(h / "out.jsonl", "w") for h in homes]  # noqa: SIM115 - closed below
    # Every frame, not --realtime: on a loaded machine a realtime kiosk drops frames until
    # its liveness windows cannot form (and, failing closed, decides nothing); this test
    # is about the store, so the kiosks' decisions must not depend on their CPU share.
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "accessctl", "run", "--headless", "--loop", "--source", str(astronaut_video)],
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(h),
            stdin=subprocess.DEVNULL,
        )
        for h, out in zip(homes, outs, strict=True)
    ]

    def lines(home: Path) -> list[dict]:
        return [json.loads(x) for x in (home / "out.jsonl").read_text().splitlines() if x.startswith("{")]

    def decisions(home: Path) -> int:
        return sum(1 for x in lines(home) if x["event"] in ("granted", "denied"))

    def wait(cond, what: str, timeout_s: float = 120.0) -> None:  # noqa: ANN001
        t0 = time.monotonic()
        while not cond():
            assert all(p.poll() is None for p in procs), [p.stderr.read() for p in procs if p.poll() is not None]
            assert time.monotonic() - t0 < timeout_s, what
            time.sleep(0.2)

    try:
        wait(lambda: all(decisions(h) >= 1 for h in homes), "both kiosks decide")
        pg_server.stop("immediate")  # the server dies while kiosks decide and write events
        pg_server.wait_until_down()
        before = [decisions(h) for h in homes]
        wait(lambda: all(any(x.get("state") == "replica-only" for x in lines(h)) for h in homes), "they say so")
        wait(lambda: all(decisions(h) >= b + 1 for h, b in zip(homes, before, strict=True)), "decisions on the replica")
        refused = admin("gallery", "disable", "E1")  # no server: no change, and the admin is told
        assert refused.returncode == 2 and "cannot" in refused.stderr
        pg_server.start()
        wait(
            lambda: all([x.get("state") for x in lines(h) if x["event"] == "store"][-1] == "online" for h in homes),
            "back online",
        )
        done = admin("enroll", "--employee-id", "E2", "--name", "Eileen Again", str(astronaut_path))
        assert done.returncode == 0, done.stderr

        def has_e2(home: Path) -> bool:
            with Gallery(home / "replica.db") as g:
                return any(p.employee_id == "E2" for p in g.people())

        wait(lambda: all(has_e2(h) for h in homes), "the change after the restart reaches both kiosks", 30.0)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(60)
        for out in outs:
            out.close()
    # Every kiosk event is on the server exactly once (after the last upload at exit).
    with CentralStore(store_url) as store:
        for home in homes:
            with AuditLog(home / "events.db") as log:
                local = [r["id"] for r in log.query()]
            remote = [e["kiosk_seq"] for e in store.events(kiosk=home.name)]
            assert sorted(remote) == local and len(set(remote)) == len(remote)
            assert any(r["event"] == "denied" for r in store.events(kiosk=home.name))
        office = [e for e in store.events(kiosk="office") if e["event"] == "admin"]
        # The disable tried during the outage was not made, and the log says so.
        assert [e["reason"] for e in office] == ["enroll", "gallery disable", "gallery disable failed", "enroll"]


def test_a_kiosk_without_a_replica_cannot_start_without_the_server(tmp_path: Path) -> None:
    link = StoreLink(
        "postgresql://nobody@127.0.0.1:1/x", notify=lambda _: None, replica=tmp_path / "r.db", events=tmp_path / "e.db"
    )
    with pytest.raises(AccessctlError, match="no replica yet"):
        link.start()


def test_tls_options_pass_through_and_a_wrong_certificate_is_refused(pg_server, store_url: str, tmp_path: Path) -> None:
    if pg_server.ca is None:
        pytest.skip("openssl is needed to make the test server's certificate")
    tls = f"{store_url}?sslmode=verify-full&sslrootcert={pg_server.ca}"
    with CentralStore(tls) as store:
        assert store.conn.info.pgconn.ssl_in_use and store.schema_version() == SCHEMA_VERSION
    other = make_ca(tmp_path, "someone else")
    with pytest.raises(StoreError, match="cannot be reached") as err:
        CentralStore(f"{store_url}?sslmode=verify-full&sslrootcert={other}")
    assert "\n" not in str(err.value)


def test_store_commands_migrate_and_report_status(store_url: str, home: Path, capsys) -> None:
    from accessctl.cli import main

    with Gallery() as g:  # this door's own gallery and log, before the site has a server
        g.add_person("E1", "Ada", [NewTemplate(unit(1), 0.9, "a.jpg", np.zeros((150, 150, 3), np.uint8))])
    assert main(["store", "migrate", "--to", store_url]) == 0
    assert "migrated 1 people, 1 templates and 1 events" in capsys.readouterr().out  # the migrate's own admin event
    (home / "config.toml").write_text(f'[store]\nurl = "{store_url}"\n')
    assert main(["gallery", "disable", "E1"]) == 0  # now on the central store
    capsys.readouterr()
    with CentralGallery(store_url) as central:
        assert central.get("E1").active is False
    assert main(["store", "status", "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["reachable"] and s["server_version"] == 2 and s["replica_version"] is None and s["spooled_events"] == 0
    assert main(["events"]) == 0  # the site's log, from the central store
    assert "gallery disable" in capsys.readouterr().out
    assert main(["gallery", "export", str(home / "x.json")]) == 2
    assert "own SQLite gallery" in capsys.readouterr().err
    (home / "config.toml").write_text('[store]\nurl = "mysql://x"\n')
    assert main(["store", "status"]) == 2 and "postgresql://" in capsys.readouterr().err


def test_the_admin_area_changes_the_central_store_not_the_replica(store_url: str, tmp_path: Path) -> None:
    from accessctl.kiosk.admin import AdminActions

    with CentralGallery(store_url) as central:
        central.add_person("E1", "Ada", [NewTemplate(unit(1), 0.9, "a.jpg")])
    actions = AdminActions(tmp_path / "replica.db", tmp_path / "events.db", "door-1", store_url)
    assert actions.set_active("E1", False).active is False
    assert actions.enrolled() == {"E1": "Ada"}
    with CentralGallery(store_url) as central:
        assert central.get("E1").active is False
    assert not (tmp_path / "replica.db").exists()  # the replica is only ever written by the store link
    assert [r["reason"] for r in actions.events()] == ["disable"]  # spooled here, uploaded by the kiosk's link
