"""A built wheel works on its own: installed into a fresh venv outside the checkout,
it carries its models (package data, found through importlib.resources) and runs
the liveness evaluation on a shared clip and identification on a photo."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL, **kw)  # type: ignore[call-overload, no-any-return]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from this checkout and installed (without its dependencies,
    which come from the test venv through a .pth line, never the checkout itself)."""
    tmp = tmp_path_factory.mktemp("wheel")
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp), str(ROOT)],
        cwd=tmp,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(tmp.glob("accessctl-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "accessctl/assets/liveness/liveness.pt",
        "accessctl/assets/liveness/cnn_tuned.pt",
        "accessctl/assets/liveness/2.7_80x80_MiniFASNetV2.pth",
        "accessctl/assets/liveness/LICENSE-MiniFASNet",
        "accessctl/assets/sface/SHA256SUMS",
        "accessctl/assets/yunet/face_detection_yunet_2023mar_int8bq.onnx",
        "accessctl/assets/warmup_face.jpg",
    ):
        assert needed in names, f"{needed} is not in the wheel"
    venv = tmp / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "accessctl-test-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = _run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel)])
    assert done.returncode == 0, done.stderr[-3000:]
    where = _run([str(python), "-c", "import accessctl, sys; print(accessctl.__file__)"], cwd=tmp)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr  # not the checkout
    return venv


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ACCESSCTL_") and k != "PYTHONPATH"}
    return env | {"ACCESSCTL_HOME": str(home), "QT_QPA_PLATFORM": "offscreen"}


def test_the_wheel_evaluates_liveness_and_identifies_outside_the_checkout(
    installed: Path, shared_data: Path, tmp_path: Path, astronaut_path: Path
) -> None:
    accessctl = str(installed / "bin" / "accessctl")
    web = shared_data / "liveness_web"
    clips = tmp_path / "clips.csv"
    with clips.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "attack"])
        w.writerow([web / "Afzal91004__FaceGuard/live_none_00", "live", "none"])
        w.writerow([web / "Chamindu77__Anti_Spoofing-Liveliness_Detector/spoof_replay_00", "spoof", "replay"])
    env, cwd = _env(tmp_path / "home"), tmp_path
    ev = _run([accessctl, "liveness", "eval", "--json", str(clips)], env=env, cwd=cwd)
    assert ev.returncode == 0, ev.stderr[-3000:]
    figures = json.loads(ev.stdout.splitlines()[-1])
    assert figures["clips"] == 2 and figures["no_face"] == 0 and figures["bpcer"] == 0.0

    enrolled = _run(
        [accessctl, "enroll", "--employee-id", "E1", "--name", "Eileen Collins", str(astronaut_path)], env=env, cwd=cwd
    )
    assert enrolled.returncode == 0, enrolled.stderr[-3000:]
    found = _run([accessctl, "identify", "--json", str(astronaut_path)], env=env, cwd=cwd)
    assert found.returncode == 0, found.stderr[-3000:]
    row = json.loads(found.stdout.splitlines()[0])
    assert row["accepted"] and row["employee_id"] == "E1"
