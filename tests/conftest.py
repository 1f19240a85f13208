"""Shared fixtures: a private ACCESSCTL_HOME, the project's own images, the real data set."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
# Qt windows are real but drawn offscreen in tests (scripts/screenshots uses Xvfb).
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def accessctl_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Everything the program writes goes to a throwaway home; the weight cache is shared
    by the whole session so the dlib file is converted once."""
    home = tmp_path_factory.mktemp("home")
    os.environ["ACCESSCTL_HOME"] = str(home)
    return home


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh home (and so a fresh gallery, audit log and PIN) per test; the encoder
    stays loaded in-process."""
    monkeypatch.setenv("ACCESSCTL_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def gallery_path(tmp_path: Path) -> Path:
    return tmp_path / "gallery.db"


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    return FIXTURES / "astronaut.jpg"


@pytest.fixture(scope="session")
def astronaut(astronaut_path: Path) -> np.ndarray:
    from accessctl.frames.images import load_image

    return load_image(astronaut_path)


@pytest.fixture(scope="session")
def cat_path() -> Path:
    return FIXTURES / "cat.jpg"


@pytest.fixture(scope="session")
def two_faces(astronaut: np.ndarray) -> np.ndarray:
    """Two people side by side: the astronaut and a darker, mirrored copy."""
    other = cv2.convertScaleAbs(astronaut[:, ::-1], alpha=0.8, beta=0)
    return np.ascontiguousarray(np.hstack([astronaut, other]))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real face data set of ../shared/data; missing data is a skip here, a failure in CI."""
    from accessctl.config import shared_data_dir

    data = shared_data_dir()
    if data is None:
        message = "real face data not found: put it at ../shared/data or set ACCESSCTL_DATA"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return data


def save_rgb(path: Path, rgb: np.ndarray) -> Path:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="session")
def astronaut_video(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """A 2-second 15 fps video of the astronaut photo drifting sideways: the project's
    own stand-in for a camera (a photo, so liveness must refuse it)."""
    path = tmp_path_factory.mktemp("video") / "astronaut.avi"
    h, w = 240, 320
    small = cv2.resize(astronaut, (200, 200), interpolation=cv2.INTER_AREA)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, (w, h))
    for i in range(30):
        canvas = np.full((h, w, 3), 90, np.uint8)
        x = 30 + i * 2
        canvas[20:220, x : x + 200] = small
        writer.write(cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


T = TypeVar("T")


def real_server(make: Callable[[], T]) -> T:
    """A real server the tests start themselves (PostgreSQL, Mosquitto); its binaries
    missing is a skip here and a failure in CI."""
    try:
        return make()
    except FileNotFoundError as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def pg_server():
    """A real PostgreSQL server for the session."""
    from tests.pgserver import PgServer

    server = real_server(PgServer)
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the session's server, as its owner."""
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    return pg_server.url(db=name)
