from __future__ import annotations

import json
import sqlite3
import stat
from pathlib import Path

import numpy as np
import pytest

from accessctl.errors import GalleryError
from accessctl.identity.match import identify, verify
from accessctl.storage.gallery import (
    SCHEMA_VERSION,
    Gallery,
    NewTemplate,
    TemplateIndex,
)

ENC = "test-encoder"


def vec(seed: int, scale: float = 0.05) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(128) * scale).astype(np.float32)


def near(v: np.ndarray, seed: int, eps: float = 0.002) -> np.ndarray:
    return (v + np.random.default_rng(seed).standard_normal(128).astype(np.float32) * eps).astype(np.float32)


@pytest.fixture
def gallery(gallery_path: Path):
    with Gallery(gallery_path, encoder_id=ENC) as g:
        yield g


def test_file_is_private_wal_and_versioned(gallery: Gallery) -> None:
    gallery.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg")])
    assert stat.S_IMODE(gallery.path.stat().st_mode) == 0o600
    for extra in ("-wal", "-shm"):
        side = Path(str(gallery.path) + extra)
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) & 0o077 == 0
    conn = sqlite3.connect(gallery.path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_identify_verify_and_unknown(gallery: Gallery) -> None:
    a, b = vec(1), vec(2)
    gallery.add_person("E1", "Ada", [NewTemplate(a, 0.9, "a.jpg")])
    gallery.add_person("E2", "Bob", [NewTemplate(b, 0.9, "b.jpg")])
    m = identify(gallery, near(a, 5), 0.6)
    assert m.accepted and m.person.employee_id == "E1" and m.distance < 0.1
    stranger = identify(gallery, vec(99, scale=0.5), 0.6)
    assert not stranger.accepted and stranger.person is None and stranger.nearest is not None
    assert verify(gallery, "E2", near(b, 6), 0.6).accepted
    assert not verify(gallery, "E2", a, 0.6).accepted
    with pytest.raises(GalleryError, match="no enrolled person"):
        verify(gallery, "E9", a, 0.6)


def test_several_templates_per_person_and_append(gallery: Gallery) -> None:
    a1, a2 = vec(1), vec(3)
    gallery.add_person("E1", "Ada", [NewTemplate(a1, 0.9, "1.jpg")])
    with pytest.raises(GalleryError, match="already enrolled"):
        gallery.add_person("E1", "Ada", [NewTemplate(a2, 0.9, "2.jpg")])
    p = gallery.add_person("E1", "Ada", [NewTemplate(a2, 0.8, "2.jpg")], append=True)
    assert p.templates == 2
    m = identify(gallery, near(a2, 7), 0.6)
    assert m.person.employee_id == "E1"


def test_disabled_people_are_not_matched(gallery: Gallery) -> None:
    a = vec(1)
    gallery.add_person("E1", "Ada", [NewTemplate(a, 0.9, "a.jpg")])
    gallery.set_active("E1", False)
    assert not identify(gallery, a, 0.6).accepted
    with pytest.raises(GalleryError, match="disabled"):
        verify(gallery, "E1", a, 0.6)
    gallery.set_active("E1", True)
    assert identify(gallery, a, 0.6).accepted


def test_a_person_can_be_marked_for_a_head_turn_every_time(gallery: Gallery) -> None:
    a = vec(1)
    gallery.add_person("E1", "Ada", [NewTemplate(a, 0.9, "a.jpg")])
    assert not gallery.get("E1").challenge
    assert gallery.set_challenge("E1", True).challenge
    assert identify(gallery, a, 0.6).person.challenge  # the door sees it with the match
    assert not gallery.set_challenge("E1", False).challenge
    with pytest.raises(GalleryError, match="no enrolled person"):
        gallery.set_challenge("E9", True)


def test_remove_and_rename(gallery: Gallery) -> None:
    a = vec(1)
    gallery.add_person("E1", "Ada", [NewTemplate(a, 0.9, "a.jpg")])
    assert gallery.rename("E1", "Ada Lovelace").name == "Ada Lovelace"
    assert identify(gallery, a, 0.6).person.name == "Ada Lovelace"
    gallery.remove("E1")
    assert gallery.people() == [] and not identify(gallery, a, 0.6).accepted
    count = sqlite3.connect(gallery.path).execute("SELECT COUNT(*) FROM templates").fetchone()[0]
    assert count == 0  # templates go with the person


def test_bad_input_writes_nothing(gallery: Gallery) -> None:
    with pytest.raises(GalleryError):
        gallery.add_person(" ", "Ada", [NewTemplate(vec(1), 0.9, "a")])
    with pytest.raises(GalleryError):
        gallery.add_person("E1", "Ada", [])
    with pytest.raises(GalleryError, match="finite"):
        gallery.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a"), NewTemplate(np.full(128, np.nan), 0.9, "b")])
    assert gallery.people() == []


def test_changes_by_another_process_are_seen(gallery_path: Path) -> None:
    kiosk = Gallery(gallery_path, encoder_id=ENC)
    admin = Gallery(gallery_path, encoder_id=ENC)
    a = vec(1)
    assert not identify(kiosk, a, 0.6).accepted
    admin.add_person("E1", "Ada", [NewTemplate(a, 0.9, "a.jpg")])
    assert identify(kiosk, a, 0.6).accepted
    admin.remove("E1")
    assert not identify(kiosk, a, 0.6).accepted


def test_locked_database_is_a_clear_error(gallery_path: Path) -> None:
    g = Gallery(gallery_path, encoder_id=ENC)
    blocker = sqlite3.connect(gallery_path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    g._conn.execute("PRAGMA busy_timeout=100")
    try:
        with pytest.raises(GalleryError, match="locked"):
            g.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg")])
    finally:
        blocker.execute("ROLLBACK")
    assert g.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg")]).templates == 1


def test_foreign_files_newer_schemas_and_other_encoders_are_refused(tmp_path: Path, gallery_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(GalleryError, match="not an accessctl gallery"):
        Gallery(junk, encoder_id=ENC)
    Gallery(gallery_path, encoder_id=ENC).close()
    with pytest.raises(GalleryError, match="never mix"):
        Gallery(gallery_path, encoder_id="another-encoder")
    conn = sqlite3.connect(gallery_path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(GalleryError, match="schema version"):
        Gallery(gallery_path, encoder_id=ENC)


def test_export_import_round_trip(gallery: Gallery, tmp_path: Path) -> None:
    a, b = vec(1), vec(2)
    gallery.add_person("E1", "Ada", [NewTemplate(a, 0.9, "a.jpg"), NewTemplate(vec(4), 0.7, "a2.jpg")])
    gallery.add_person("E2", "Bob", [NewTemplate(b, 0.8, "b.jpg")])
    gallery.set_active("E2", False)
    gallery.set_challenge("E1", True)
    out = tmp_path / "export.json"
    assert gallery.export(out) == 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    with Gallery(tmp_path / "other.db", encoder_id=ENC) as other:
        with pytest.raises(GalleryError, match="3 template.s. without their stored face.*nothing was imported"):
            other.import_(out)
        assert other.people() == []
        assert other.import_(out, without_faces=True) == (2, 0)
        people = {p.employee_id: p for p in other.people()}
        assert people["E1"].templates == 2 and not people["E2"].active
        assert people["E1"].challenge and not people["E2"].challenge
        assert np.allclose(other.embeddings("E1")[0], a)
        assert identify(other, a, 0.6).person.employee_id == "E1"
        with pytest.raises(GalleryError, match="already enrolled"):
            other.import_(out, without_faces=True)
        assert other.import_(out, skip_existing=True, without_faces=True) == (0, 2)


def test_import_is_all_or_nothing_and_checks_the_encoder(gallery: Gallery, tmp_path: Path) -> None:
    gallery.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg")])
    out = tmp_path / "export.json"
    gallery.export(out)
    doc = json.loads(out.read_text())
    with Gallery(tmp_path / "x.db", encoder_id="another-encoder") as other:
        with pytest.raises(GalleryError, match="never mix"):
            other.import_(out)
    doc["people"].append({"employee_id": "E2", "name": "Bob", "templates": [{"embedding": "!!!"}]})
    out.write_text(json.dumps(doc))
    with Gallery(tmp_path / "y.db", encoder_id=ENC) as other:
        with pytest.raises(GalleryError, match="damaged"):
            other.import_(out)
        assert other.people() == []
        (tmp_path / "bad.json").write_text("{not json")
        with pytest.raises(GalleryError, match="not a gallery export"):
            other.import_(tmp_path / "bad.json")


@pytest.mark.parametrize("bad", ["Eve\nGRANTED E1", "\x1b[2Jroot", "Eve\x00", "Ev\u202ee", "x" * 200, "   "])
def test_names_and_ids_with_control_characters_are_refused_everywhere(
    gallery: Gallery, tmp_path: Path, bad: str
) -> None:
    """A newline forges a log line, an escape rewrites a terminal, a NUL breaks the door
    hook, a bidi override disguises a name: refused at enroll, rename and import alike."""
    with pytest.raises(GalleryError):
        gallery.add_person("E9", bad, [NewTemplate(vec(9), 0.9, "a.jpg")])
    with pytest.raises(GalleryError):
        gallery.add_person(bad, "Eve", [NewTemplate(vec(9), 0.9, "a.jpg")])
    gallery.add_person(" E1 ", "  Ada Lovelace ", [NewTemplate(vec(1), 0.9, "a.jpg")])
    assert gallery.get("E1").name == "Ada Lovelace"  # stripped where it enters
    with pytest.raises(GalleryError):
        gallery.rename("E1", bad)
    out = tmp_path / "export.json"
    gallery.export(out)
    doc = json.loads(out.read_text())
    doc["people"][0]["name"] = bad
    out.write_text(json.dumps(doc))
    with Gallery(tmp_path / "y.db", encoder_id=ENC) as other:
        with pytest.raises(GalleryError, match="not a valid gallery export"):
            other.import_(out)
        assert other.people() == []


def test_crafted_imports_cannot_take_the_gallery_down(gallery: Gallery, tmp_path: Path) -> None:
    """Templates of +-3e38, NaN or the wrong length, `"active": "yes"`, and " E1 "
    beside "E1": each refused, nothing imported."""
    import base64

    gallery.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg")])
    out = tmp_path / "export.json"
    gallery.export(out)
    good = json.loads(out.read_text())

    def crafted(edit) -> Path:
        doc = json.loads(json.dumps(good))
        edit(doc["people"][0])
        path = tmp_path / "crafted.json"
        path.write_text(json.dumps(doc))
        return path

    def emb(values: np.ndarray) -> str:
        return base64.b64encode(values.astype("<f4").tobytes()).decode()

    edits = [
        lambda p: p["templates"][0].update(embedding=emb(np.full(128, 3e38))),
        lambda p: p["templates"][0].update(embedding=emb(np.full(128, np.nan))),
        lambda p: p["templates"][0].update(embedding=emb(np.zeros(128))),
        lambda p: p["templates"][0].update(embedding=emb(np.ones(64))),
        lambda p: p.update(active="yes"),
        lambda p: p.update(active=2),
        lambda p: p.update(challenge="no"),  # "no" would be true: a flag must be a flag
        lambda p: p["templates"][0].update(quality=float("nan")),  # NaN would reach SQLite's NOT NULL
    ]
    with Gallery(tmp_path / "z.db", encoder_id=ENC) as other:
        for edit in edits:
            with pytest.raises(GalleryError, match="not a valid gallery export"):
                other.import_(crafted(edit))
        assert other.people() == []
        twin = json.loads(json.dumps(good))
        twin["people"].append(json.loads(json.dumps(good["people"][0])))
        twin["people"][1]["employee_id"] = " E1 "
        (tmp_path / "twin.json").write_text(json.dumps(twin))
        with pytest.raises(GalleryError, match="appears twice"):
            other.import_(tmp_path / "twin.json")
        huge = tmp_path / "huge.json"  # sparse: refused by its size, before a byte is read
        with open(huge, "wb") as f:
            f.truncate(300 * 2**20)
        with pytest.raises(GalleryError, match="300 MiB; gallery exports over 256 MiB are refused"):
            other.import_(huge)
        assert other.people() == []


def test_csv_cells_that_a_spreadsheet_would_run_are_escaped() -> None:
    from accessctl.storage.audit import to_csv

    text = to_csv([{"name": '=HYPERLINK("http://x")', "event": "granted", "reason": "-1+1", "kiosk": "@SUM(A1)"}])
    assert "'=HYPERLINK" in text and "'-1+1" in text and "'@SUM" in text and ",granted," in text


def test_template_index_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    emb = rng.standard_normal((5000, 128)).astype(np.float32) * 0.1
    index = TemplateIndex(emb, np.arange(5000) // 5)
    for _ in range(20):
        q = rng.standard_normal(128).astype(np.float32) * 0.1
        d = np.linalg.norm(emb - q, axis=1)
        row, dist = index.nearest(q)
        assert row == int(np.argmin(d)) and abs(dist - d.min()) < 1e-5
    assert TemplateIndex(np.zeros((0, 128)), np.zeros(0)).nearest(q) == (-1, float("inf"))


def chip(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(150, 150, 3), dtype=np.uint8)


def mean_colour(chips: np.ndarray) -> np.ndarray:
    """A deterministic stand-in encoder for the gallery's own bookkeeping (no faces here)."""
    out = np.zeros((len(chips), 128), np.float32)
    out[:, :3] = chips.reshape(len(chips), -1, 3).mean(axis=1) / 255.0
    return out


def test_a_version_1_gallery_is_migrated_and_keeps_its_people(gallery_path: Path) -> None:
    from accessctl.storage.gallery import MIGRATIONS

    conn = sqlite3.connect(gallery_path, isolation_level=None)
    conn.executescript(MIGRATIONS[0])
    conn.execute("PRAGMA user_version=1")
    conn.execute("INSERT INTO meta VALUES ('encoder', ?)", (ENC,))
    conn.execute("INSERT INTO people(employee_id, name, active, created) VALUES ('E1', 'Ada', 1, 'then')")
    conn.execute(
        "INSERT INTO templates(person_id, embedding, quality, source, encoder, created) "
        "VALUES (1, ?, 1, 'a', ?, 'then')",
        (vec(1).astype("<f4").tobytes(), ENC),
    )
    conn.close()
    with Gallery(gallery_path) as g:  # no encoder given: the file's own
        assert g.encoder_id == ENC and identify(g, vec(1), 0.6).person.employee_id == "E1"
        assert [p.employee_id for p in g.without_chips()] == ["E1"]
    conn = sqlite3.connect(gallery_path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
    assert "chip" in [r[1] for r in conn.execute("PRAGMA table_info(templates)")]
    conn.close()


def test_reencode_moves_every_template_to_the_new_encoder(gallery: Gallery, gallery_path: Path) -> None:
    gallery.add_person(
        "E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg", chip(1)), NewTemplate(vec(2), 0.9, "b.jpg", chip(2))]
    )
    gallery.add_person("E2", "Bob", [NewTemplate(vec(3), 0.9, "c.jpg", chip(3))])
    kiosk = Gallery(gallery_path, encoder_id=ENC)
    assert identify(kiosk, vec(3), 0.1).accepted
    assert gallery.reencode("trained-123", mean_colour) == 3
    assert gallery.encoder_id == "trained-123"
    assert np.allclose(gallery.embeddings("E2")[0], mean_colour(chip(3)[None])[0], atol=1e-6)  # PNG is lossless
    assert identify(gallery, mean_colour(chip(1)[None])[0], 0.01).person.employee_id == "E1"
    assert {t.encoder for t in gallery.templates("E1")} == {"trained-123"}
    with pytest.raises(GalleryError, match="never mix"):  # a running kiosk on the old encoder fails closed
        identify(kiosk, vec(3), 0.1)
    kiosk.close()
    with Gallery(gallery_path) as reopened:
        assert reopened.encoder_id == "trained-123"


def test_reencode_refuses_templates_without_a_face_and_changes_nothing(gallery: Gallery) -> None:
    gallery.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg", chip(1))])
    gallery.add_person("E2", "Bob", [NewTemplate(vec(2), 0.9, "imported")])
    with pytest.raises(GalleryError, match=r"Bob \(E2\).*nothing was changed"):
        gallery.reencode("trained-123", mean_colour)
    assert gallery.encoder_id == ENC and np.allclose(gallery.embeddings("E1")[0], vec(1))
    with pytest.raises(GalleryError, match="must be"):
        gallery.add_person("E3", "Cy", [NewTemplate(vec(3), 0.9, "x", np.zeros((10, 10, 3), np.uint8))])


def test_export_carries_the_faces_and_version_1_exports_still_import(gallery: Gallery, tmp_path: Path) -> None:
    gallery.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg", chip(1))])
    out = tmp_path / "export.json"
    gallery.export(out)
    with Gallery(tmp_path / "other.db", encoder_id=ENC) as other:
        other.import_(out)
        assert other.without_chips() == [] and other.reencode("x", mean_colour) == 1
    doc = json.loads(out.read_text())
    doc["version"] = 1
    for t in doc["people"][0]["templates"]:
        del t["chip"]
    out.write_text(json.dumps(doc))
    with Gallery(tmp_path / "old.db", encoder_id=ENC) as old:
        old.import_(out, without_faces=True)
        assert [p.employee_id for p in old.without_chips()] == ["E1"]


def test_data_files_are_never_links_and_keep_their_owners_read_only_bit(tmp_path: Path, monkeypatch, capsys) -> None:
    import os
    import stat as st

    from accessctl import config
    from accessctl.errors import AccessctlError
    from accessctl.storage.audit import AuditLog

    target = tmp_path / "target.txt"
    target.write_text("not yours")
    target.chmod(0o644)
    (tmp_path / "events.db").symlink_to(target)
    with pytest.raises(AccessctlError, match="symbolic link"):
        AuditLog(tmp_path / "events.db")
    (tmp_path / "g.db").symlink_to(target)
    with pytest.raises(AccessctlError, match="symbolic link"):
        Gallery(tmp_path / "g.db", encoder_id=ENC)
    assert st.S_IMODE(target.stat().st_mode) == 0o644 and target.read_text() == "not yours"

    with Gallery(tmp_path / "ro.db", encoder_id=ENC) as g:
        g.add_person("E1", "Ada", [NewTemplate(vec(1), 0.9, "a.jpg")])
    (tmp_path / "ro.db").chmod(0o400)  # the admin made it read-only
    with Gallery(tmp_path / "ro.db", encoder_id=ENC) as g:
        assert [p.employee_id for p in g.people()] == ["E1"]
    assert st.S_IMODE((tmp_path / "ro.db").stat().st_mode) == 0o400  # not re-chmodded writable

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ACCESSCTL_HOME", str(home))
    if os.getuid() == 0:  # root can hand the folder to someone else, as a careless install would
        os.chown(home, 4242, -1)
        home.chmod(0o777)
        config.data_dir()
        err = capsys.readouterr().err
        assert "is owned by user id 4242" in err, err
        assert home.stat().st_mode & 0o077 == 0  # root could close it, and did
        config.data_dir()
        assert capsys.readouterr().err == ""  # said once
        # where it cannot be closed (another user's folder, for anyone but root), both are said
        shared = tmp_path / "shared"
        shared.mkdir()
        os.chown(shared, 4242, -1)
        shared.chmod(0o777)
        config._warn_unsafe_folder(shared)
        err = capsys.readouterr().err
        assert "is owned by user id 4242" in err and "and can be written by every user" in err, err


def test_a_replicas_index_is_patched_with_only_the_people_an_update_changed(tmp_path: Path) -> None:
    """A kiosk of a 100 000-person site must not rebuild its whole index for one
    enrollment: the replica logs whom each update touched, and the index is patched;
    the answers are those of a full rebuild."""
    from accessctl.storage.gallery import REPLICA_LOG_MAX, PersonRecord, encode_embedding

    def rec(eid: str, seed: int, active: bool = True) -> PersonRecord:
        return PersonRecord(eid, f"name {eid}", active, "then", [(encode_embedding(vec(seed)), 0.9, "s", ENC, "then")])

    path = tmp_path / "replica.db"
    with Gallery(path, encoder_id=ENC) as writer, Gallery(path, encoder_id=ENC) as kiosk:
        writer.apply_changes([rec(f"E{i}", i) for i in range(REPLICA_LOG_MAX + 5)], [], 1)  # a first copy: not logged
        assert identify(kiosk, vec(3), 0.5).person.employee_id == "E3" and len(kiosk.index()) == REPLICA_LOG_MAX + 5
        before = kiosk.index()
        writer.apply_changes([rec("E3", 3, active=False), rec("NEW", 9999)], ["E4"], 2)
        after = kiosk.index()
        assert after is not before and after.employee_ids is not None
        assert identify(kiosk, vec(3), 0.5).person is None  # disabled at once
        assert identify(kiosk, vec(4), 0.5).person is None  # removed
        assert identify(kiosk, vec(9999), 0.5).person.employee_id == "NEW"
        with Gallery(path, encoder_id=ENC) as fresh:  # what a full rebuild gives
            full = fresh.index()
            assert sorted(full.employee_ids) == sorted(after.employee_ids) and len(full) == len(after)
            assert np.allclose(np.sort(full.embeddings, axis=0), np.sort(after.embeddings, axis=0))
