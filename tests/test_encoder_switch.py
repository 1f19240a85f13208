"""Switching the gallery to a trained encoder, and verification with the binary head,
through the CLI on real ORL faces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_cli import run

pytestmark = pytest.mark.shared


def orl_subset(shared_data: Path, dest: Path, people: list[str]) -> Path:
    for person in people:
        (dest / person).mkdir(parents=True)
        for f in sorted((shared_data / "faces" / "orl" / person).iterdir()):
            (dest / person / f.name).symlink_to(f)
    return dest


def test_switch_to_a_trained_encoder_and_back(home: Path, capsys, shared_data: Path, tmp_path: Path) -> None:
    data = orl_subset(shared_data, tmp_path / "orl", ["s1", "s2", "s3", "s4", "s5", "s6"])
    run_dir = tmp_path / "run"
    code, out, _ = run(
        capsys,
        "encoder",
        "train",
        "--data",
        str(data),
        "--out",
        str(run_dir),
        "--arch",
        "small",
        "--init",
        "random",
        "--loss",
        "binary",
        "--epochs",
        "1",
        "--people-per-batch",
        "4",
        "--images-per-person",
        "2",
        "--val-people",
        "2",
    )
    assert code == 0 and (run_dir / "head.pt").is_file()
    enrolled = data / "s1" / "1.pgm"
    code, _, _ = run(capsys, "enroll", "--employee-id", "E1", "--name", "First", str(enrolled))
    assert code == 0

    code, out, _ = run(capsys, "encoder", "use", str(run_dir), "--dry-run")
    assert code == 0 and "sface-2021dec -> small-" in out and "1 people to re-encode" in out
    code, out, err = run(capsys, "encoder", "use", str(run_dir))
    assert code == 2 and "--yes" in err  # never switches without a yes

    # A run whose config says 999 would let anyone in: refused before anything is written.
    import shutil

    bad_run = tmp_path / "bad_run"
    shutil.copytree(run_dir, bad_run)
    doc = json.loads((bad_run / "config.json").read_text())
    doc["threshold"] = 999.0
    (bad_run / "config.json").write_text(json.dumps(doc))
    code, _, err = run(capsys, "encoder", "use", str(bad_run), "--yes")
    assert code == 2 and "threshold 999 refused" in err and "nothing was changed" in err, err
    code, out, _ = run(capsys, "encoder", "show")
    assert "gallery encoder: sface-2021dec" in out and not (home / "encoders").exists()
    assert not (home / "config.toml").exists() or "999" not in (home / "config.toml").read_text()
    code, out, err = run(capsys, "encoder", "use", str(run_dir), "--yes")
    assert code == 0 and "re-encoded 1 template(s)" in out, err
    new_id = json.loads((run_dir / "config.json").read_text())["encoder_id"]
    code, out, _ = run(capsys, "encoder", "show")
    assert f"gallery encoder: {new_id}" in out and "binary head: yes" in out

    # The enrollment photo, seen again, lands on its own re-encoded template.
    code, out, _ = run(capsys, "identify", "--json", str(enrolled))
    row = json.loads(out.splitlines()[0])
    assert row["accepted"] and row["employee_id"] == "E1" and row["distance"] < 1e-3, json.dumps(row)
    code, out, _ = run(capsys, "verify", "--json", "--method", "binary", "--employee-id", "E1", str(enrolled))
    row = json.loads(out)
    assert row["method"] == "binary" and 0 <= row["probability"] <= 1
    assert code == (0 if row["probability"] >= 0.5 else 1)

    code, out, _ = run(capsys, "encoder", "use", "pretrained", "--yes")
    assert code == 0
    code, out, _ = run(capsys, "identify", "--json", str(enrolled))
    row = json.loads(out.splitlines()[0])
    assert row["accepted"] and row["distance"] < 1e-3 and row["threshold"] == 0.6


def test_binary_head_fitted_on_site_pairs(home: Path, capsys, shared_data: Path, tmp_path: Path) -> None:
    fit = orl_subset(shared_data, tmp_path / "fit", [f"s{i}" for i in range(1, 9)])
    test = orl_subset(shared_data, tmp_path / "test", [f"s{i}" for i in range(30, 36)])
    for name, folder in (("fit", fit), ("test", test)):
        assert (
            run(
                capsys,
                "eval",
                "make-pairs",
                str(folder),
                "--out",
                str(tmp_path / f"{name}.csv"),
                "--max-impostors",
                "4",
            )[0]
            == 0
        )
    code, _, err = run(capsys, "eval", "pairs", str(tmp_path / "test.csv"), "--method", "binary")
    assert code == 2 and "fit-head" in err
    code, out, _ = run(capsys, "encoder", "fit-head", "--pairs", str(tmp_path / "fit.csv"))
    assert code == 0 and "written to" in out
    code, out, _ = run(capsys, "eval", "pairs", str(tmp_path / "test.csv"), "--method", "binary", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert report["threshold"] == 0.5 and report["failed"] == 0
    assert report["accuracy"] >= 0.95  # people the head never saw

    code, _, _ = run(capsys, "enroll", "--employee-id", "E30", "--name", "Thirty", str(test / "s30" / "1.pgm"))
    code, out, _ = run(capsys, "verify", "--method", "binary", "--employee-id", "E30", str(test / "s30" / "2.pgm"))
    assert code == 0 and out.startswith("MATCH") and "P(same)" in out
    code, out, _ = run(capsys, "verify", "--method", "binary", "--employee-id", "E30", str(test / "s31" / "2.pgm"))
    assert code == 1 and out.startswith("NO MATCH")


def test_a_new_gallery_is_sface_and_switches_to_dlib_and_back_through_the_stored_faces(
    home: Path, capsys, shared_data: Path
) -> None:
    """A new gallery uses SFace at its door threshold (1.0); `encoder use dlib` re-encodes
    from the stored faces and moves the threshold to dlib's scale, and back; people
    enrolled under SFace directly get the same templates as re-encoded ones."""
    johns = sorted((shared_data / "faces" / "dlib_johns").iterdir())
    a, b = sorted(johns[0].iterdir()), sorted(johns[1].iterdir())
    assert run(capsys, "enroll", "--employee-id", "A", "--name", "Alpha", str(a[0]))[0] == 0
    code, out, _ = run(capsys, "encoder", "show")
    assert "gallery encoder: sface-2021dec" in out and "match threshold: 1.0000 (the encoder's default)" in out
    code, out, _ = run(capsys, "identify", "--json", str(a[0]))
    row = json.loads(out.splitlines()[0])
    assert row["accepted"] and row["employee_id"] == "A" and row["distance"] < 1e-3 and row["threshold"] == 1.0
    code, out, err = run(capsys, "encoder", "use", "dlib", "--yes")
    assert code == 0 and "sface-2021dec -> dlib-resnet-v1" in out and "threshold 0.6000" in out, err
    code, out, _ = run(capsys, "identify", "--json", str(a[0]))
    row = json.loads(out.splitlines()[0])
    assert row["accepted"] and row["employee_id"] == "A" and row["threshold"] == 0.6
    assert run(capsys, "encoder", "use", "sface", "--yes")[0] == 0
    code, out, _ = run(capsys, "identify", "--json", str(a[3]))  # another photo of the same man
    assert json.loads(out.splitlines()[0])["employee_id"] == "A"
    code, out, _ = run(capsys, "identify", "--json", str(b[0]))  # somebody else
    assert not json.loads(out.splitlines()[0])["accepted"]

    from accessctl.storage.gallery import Gallery

    assert run(capsys, "enroll", "--employee-id", "B", "--name", "Bravo", str(b[0]))[0] == 0
    with Gallery() as g:
        fresh = g.embeddings("B")[0].copy()
    assert run(capsys, "encoder", "use", "dlib", "--yes")[0] == 0
    assert run(capsys, "encoder", "use", "sface", "--yes")[0] == 0
    with Gallery() as g:
        assert float(abs(g.embeddings("B")[0] - fresh).max()) < 1e-5  # re-encoded == enrolled


def test_sface_is_checked_by_its_hash_and_gives_unit_descriptors(tmp_path: Path, monkeypatch) -> None:
    import shutil

    import numpy as np

    from accessctl import config
    from accessctl.errors import EncoderError
    from accessctl.identity.sface import MODEL_FILE, SFaceEncoder

    enc = SFaceEncoder()
    chips = np.random.default_rng(0).integers(0, 255, (3, 150, 150, 3), dtype=np.uint8)
    e = enc.encode(chips)
    assert e.shape == (3, 128) and np.allclose(np.linalg.norm(e, axis=1), 1, atol=1e-5)
    (tmp_path / "sface").mkdir()
    shutil.copyfile(config.assets_dir() / "sface" / MODEL_FILE, tmp_path / "sface" / MODEL_FILE)
    with open(tmp_path / "sface" / MODEL_FILE, "r+b") as f:
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(config, "assets_dir", lambda: tmp_path)
    with pytest.raises(EncoderError, match="damaged or replaced"):
        SFaceEncoder()


def test_an_old_dlib_gallery_keeps_working_until_switched(home: Path, capsys, shared_data: Path) -> None:
    """A gallery that records dlib's templates stays dlib at dlib's threshold; nothing
    is re-encoded behind the admin's back."""
    from accessctl.config import PRETRAINED_ENCODER_ID
    from accessctl.storage.gallery import Gallery

    home.mkdir(parents=True, exist_ok=True)
    Gallery(encoder_id=PRETRAINED_ENCODER_ID).close()  # made by an accessctl that only had dlib
    johns = sorted((shared_data / "faces" / "dlib_johns").iterdir())
    a = sorted(johns[0].iterdir())
    assert run(capsys, "enroll", "--employee-id", "A", "--name", "Alpha", str(a[0]))[0] == 0
    code, out, _ = run(capsys, "encoder", "show")
    assert "gallery encoder: dlib-resnet-v1" in out and "match threshold: 0.6000 (the encoder's default)" in out
    code, out, _ = run(capsys, "identify", "--json", str(a[3]))
    row = json.loads(out.splitlines()[0])
    assert row["accepted"] and row["employee_id"] == "A" and row["threshold"] == 0.6


def test_a_threshold_chosen_for_one_encoder_is_never_used_for_another(home: Path, capsys, shared_data: Path) -> None:
    """Distances of two encoders are on different scales: a dlib threshold on an SFace
    gallery would refuse everyone, an SFace one on dlib would let strangers in. It is
    refused by name, and the door fails closed."""
    from accessctl.config import Settings
    from accessctl.errors import AccessctlError
    from accessctl.thresholds import match_threshold

    s = Settings()
    assert match_threshold(s, "sface-2021dec") == 1.0 and match_threshold(s, "dlib-resnet-v1") == 0.6
    with pytest.raises(AccessctlError, match="not set for encoder small-1"):
        match_threshold(s, "small-1")
    s.match.threshold, s.match.encoder = 0.55, "dlib-resnet-v1"
    assert match_threshold(s, "dlib-resnet-v1") == 0.55
    with pytest.raises(AccessctlError, match="chosen for encoder dlib-resnet-v1, but the gallery uses sface-2021dec"):
        match_threshold(s, "sface-2021dec")

    johns = sorted((shared_data / "faces" / "dlib_johns").iterdir())
    a = sorted(johns[0].iterdir())
    assert run(capsys, "enroll", "--employee-id", "A", "--name", "Alpha", str(a[0]))[0] == 0  # an SFace gallery
    home.joinpath("config.toml").write_text('[match]\nthreshold = 0.55\nencoder = "dlib-resnet-v1"\n')
    code, _, err = run(capsys, "identify", str(a[0]))
    assert code == 2 and "chosen for encoder dlib-resnet-v1" in err
    code, out, _ = run(capsys, "encoder", "show")
    assert "match threshold: none usable" in out
