"""Property-based checks: random bytes and random JSON/TOML at the three loaders that
take files from outside (images, the configuration, gallery imports). Each must give a
clean result or one clean AccessctlError, never a traceback, and never change a gallery."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accessctl.config import load_settings
from accessctl.errors import AccessctlError
from accessctl.frames.images import load_image
from accessctl.identity.match import identify
from accessctl.storage.gallery import Gallery, NewTemplate

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
PNG = b"\x89PNG\r\n\x1a\n"
JPEG = b"\xff\xd8\xff"

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)


@FAST
@given(
    head=st.sampled_from([b"", PNG, JPEG, b"GIF89a", b"BM", b"RIFF"]),
    body=st.binary(max_size=600),
    suffix=st.sampled_from([".png", ".jpg", ".gif", ".bmp", ".webp", ".hdr", ".tif"]),
)
def test_random_bytes_as_an_image_give_an_image_or_one_clean_error(
    tmp_path: Path, head: bytes, body: bytes, suffix: str
) -> None:
    path = tmp_path / f"x{suffix}"
    path.write_bytes(head + body)
    try:
        image = load_image(path)
    except AccessctlError as exc:
        assert "\n" not in str(exc)
        return
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


@FAST
@given(
    text=st.one_of(
        st.text(max_size=300),
        st.dictionaries(
            st.sampled_from(["match", "enroll", "access", "hook", "kiosk", "audit", "admin", "x"]),
            st.dictionaries(st.text(min_size=1, max_size=20), json_values, max_size=4),
            max_size=3,
        ).map(
            lambda d: "\n".join(
                f"[{k}]\n" + "\n".join(f"{json.dumps(kk)} = {json.dumps(v)}" for kk, v in sec.items())
                for k, sec in d.items()
            )
        ),
        st.sampled_from(
            [
                "[match]\nthreshold = 1e999\n",
                "[access]\nmatches_needed = 1.9\n",
                "a=" + "[" * 5000,
                "[match]\nthreshold = nan\n",
                '[kiosk]\nname = "\\u0000"\n',
            ]
        ),
    )
)
def test_random_configuration_text_gives_settings_or_one_clean_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    try:
        load_settings(path)
    except AccessctlError as exc:
        assert "\n" not in str(exc).strip()


@pytest.fixture
def two_people(tmp_path: Path):
    enc = "dlib-resnet-v1"
    g = Gallery(tmp_path / "g.db", encoder_id=enc)
    rng = np.random.default_rng(0)
    for i in range(2):
        v = rng.normal(size=128).astype(np.float32)
        g.add_person(f"E{i}", f"Person {i}", [NewTemplate(v / np.linalg.norm(v), 0.9, "x.jpg")])
    g.export(tmp_path / "base.json")
    yield g
    g.close()


def _mutate(doc: object, path: list, value: object) -> object:
    """Replace the value at ``path`` (list of keys/indexes, stopped where it no longer fits)."""
    node = doc
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return doc
    try:
        node[path[-1]] = value
    except (KeyError, IndexError, TypeError):
        return doc
    return doc


@FAST
@given(
    where=st.sampled_from(
        [
            ["format"],
            ["version"],
            ["encoder"],
            ["people"],
            ["people", 0],
            ["people", 0, "employee_id"],
            ["people", 0, "name"],
            ["people", 0, "active"],
            ["people", 0, "created"],
            ["people", 0, "templates"],
            ["people", 0, "templates", 0],
            ["people", 0, "templates", 0, "embedding"],
            ["people", 0, "templates", 0, "quality"],
            ["people", 0, "templates", 0, "chip"],
            ["people", 1, "employee_id"],
        ]
    ),
    value=json_values | st.binary(max_size=600).map(lambda b: base64.b64encode(b).decode()),
    raw=st.none() | st.binary(max_size=300),
)
def test_random_exports_import_cleanly_or_change_nothing(
    tmp_path: Path, two_people: Gallery, where: list, value: object, raw: bytes | None
) -> None:
    path = tmp_path / "crafted.json"
    if raw is not None:
        path.write_bytes(raw)
    else:
        doc = json.loads((tmp_path / "base.json").read_text())
        for p in doc["people"]:
            p["employee_id"] = "N" + p["employee_id"]  # new people, so an import could add them
        path.write_text(json.dumps(_mutate(doc, where, value)))
    before = [(p.employee_id, p.templates) for p in two_people.people()]
    try:
        two_people.import_(path, without_faces=True)
    except AccessctlError as exc:
        assert "\n" not in str(exc)
        assert [(p.employee_id, p.templates) for p in two_people.people()] == before  # nothing half-imported
        return
    for p in two_people.people():  # what was imported can be searched: no NaN, no crash
        for e in two_people.embeddings(p.employee_id):
            assert np.isfinite(e).all()
    identify(two_people, np.ones(128, np.float32) / np.sqrt(128), 0.6)


@pytest.mark.parametrize(
    "text, why",
    [
        ("[access]\nmatches_needed = 1.9\n", "must be a whole number"),
        ('[kiosk]\nname = "door\\u0000one"\n', "control character"),
        ('[kiosk]\nname = "door\\u001b[31m"\n', "control character"),
        ("[match]\nthreshold = -1\n", "out of range"),
        ("[nope]\nx = 1\n", "unknown section"),
    ],
)
def test_configuration_mistakes_are_refused_by_name(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(AccessctlError, match=why):
        load_settings(path)


def test_a_deeply_nested_export_is_one_clean_error(tmp_path: Path, two_people: Gallery) -> None:
    path = tmp_path / "deep.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(AccessctlError, match="not a gallery export"):
        two_people.import_(path)
    assert len(two_people.people()) == 2
