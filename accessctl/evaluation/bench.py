"""Per-stage timings of the identity pipeline on real frames.

Timings are measured here, by a command, rather than asserted in tests: a loaded CI
machine would make timed tests flaky, and a number in a report is worth more than a
pass/fail. Each stage is timed on its own, in the order the kiosk runs it.
"""

from __future__ import annotations

import functools
import resource
import time
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

import cv2
import numpy as np

from accessctl import config
from accessctl.errors import AccessctlError
from accessctl.frames.images import IMAGE_SUFFIXES, load_image
from accessctl.frames.sources import open_source
from accessctl.identity.encoders import SFACE_ID, load_encoder
from accessctl.liveness.features import Observation, observe
from accessctl.liveness.monitor import LivenessMonitor
from accessctl.liveness.saved import load_liveness
from accessctl.storage.gallery import TemplateIndex
from accessctl.vision.faces import align, analyzer

FRAME_SIZE = (640, 480)


def time_stats(samples: Sequence[float] | np.ndarray) -> dict[str, float]:
    ms = np.asarray(samples) * 1000.0
    return {"median_ms": round(float(np.median(ms)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3), "n": len(ms)}


def _time(fn: Callable[[], object], repeat: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def default_frames(limit: int = 40) -> list[Path]:
    """Real 640x480 webcam frames: NUAA live sequences from the shared data set."""
    data = config.shared_data_dir()
    if data is None:
        raise AccessctlError("no frames given and ../shared/data (or $ACCESSCTL_DATA) not found")
    files = sorted((data / "nuaa_train" / "live").glob("*/*.jpg"))
    if not files:
        raise AccessctlError(f"no frames under {data / 'nuaa_train' / 'live'}")
    step = max(1, len(files) // limit)
    return files[::step][:limit]


def _frames_from(paths: Sequence[Path]) -> list[np.ndarray]:
    frames = []
    for p in paths:
        if p.suffix.lower() in IMAGE_SUFFIXES:
            frames.append(load_image(p))
            continue
        with open_source(p) as source:  # a video or a frame folder, read as the kiosk reads it
            frames += [f.image for f in islice(source, max(0, 200 - len(frames)))]
    return [
        cv2.resize(f, FRAME_SIZE, interpolation=cv2.INTER_AREA) if f.shape[:2] != FRAME_SIZE[::-1] else f
        for f in frames
    ]


def _liveness_times(observations: Sequence[Observation], frames: int = 90) -> list[float]:
    """The monitor's cost per frame (CNN on the new frame, GRU over the window), as
    the kiosk pays it: one face followed over ``frames`` frames at 30 fps."""
    monitor = LivenessMonitor(load_liveness())
    out = []
    for i in range(frames):
        obs = observations[i % len(observations)]
        t = time.perf_counter()
        monitor.update(0, i / 30.0, obs)
        out.append(time.perf_counter() - t)
    return out[10:]


def _opencv_sface(chips: np.ndarray) -> Callable[[], object]:
    """SFace as OpenCV's DNN module runs the same int8 file, one face at a time: the
    baseline the torch network replaced, kept in the report for comparison."""
    from accessctl.identity.sface import SFaceEncoder, model_path

    net = cv2.FaceRecognizerSF.create(str(model_path()), "")
    bgr = [np.ascontiguousarray(SFaceEncoder.chip(c)[:, :, ::-1]) for c in chips]
    return lambda: [net.feature(c) for c in bgr]


def consecutive_frames(n: int = 120) -> list[np.ndarray]:
    """Consecutive 640x480 frames of one live NUAA sequence: tracking needs a real stream."""
    data = config.shared_data_dir()
    seq = sorted((data / "nuaa_train" / "live").iterdir())[0] if data else None
    if seq is None:
        return []
    with open_source(seq) as source:
        return [f.image for f in islice(source, n)]


def _pipeline_times(frames: Sequence[np.ndarray]) -> list[float]:
    """Milliseconds per frame of the whole headless pipeline (faces, tracking, liveness,
    identity against a small gallery), one frame after another as a video plays."""
    import tempfile

    from accessctl.door.pipeline import Pipeline
    from accessctl.frames.sources import Frame
    from accessctl.storage.gallery import Gallery, NewTemplate

    if len(frames) < 2:
        return []
    with tempfile.TemporaryDirectory() as tmp, Gallery(Path(tmp) / "bench.db") as gallery:
        rng = np.random.default_rng(1)
        gallery.add_person(
            "B1", "Bench", [NewTemplate(rng.standard_normal(128).astype(np.float32) * 0.05, 1.0, "bench")]
        )
        pipe = Pipeline(gallery, config.load_settings(), load_liveness())
        out = []
        for i, image in enumerate(frames):
            t = time.perf_counter()
            pipe.process(Frame(image, i, i / 30.0))
            out.append((time.perf_counter() - t) * 1000)
    return out[5:]


def startup_times(image: np.ndarray, runs: int = 2) -> dict[str, float]:
    """Seconds from process start to exit of a headless run of one frame (models loaded,
    warmed up, the frame decided on: the time to a first decision), against a bare
    ``import torch, cv2, mediapipe`` in the same interpreter; medians of ``runs`` after one
    run that fills the caches, as a kiosk restarting would find them."""
    import os
    import subprocess
    import sys
    import tempfile

    def wall(argv: list[str], env: dict[str, str]) -> float:
        t = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300)
        return time.perf_counter() - t

    with tempfile.TemporaryDirectory(prefix="accessctl-bench-") as tmp:
        folder = Path(tmp) / "frame"
        folder.mkdir()
        cv2.imwrite(str(folder / "0001.jpg"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        env = {**os.environ, "ACCESSCTL_HOME": str(Path(tmp) / "home")}
        run = [sys.executable, "-m", "accessctl", "run", "--headless", "--source", str(folder), "--every-frame"]
        wall(run, env)
        one = float(np.median([wall(run, env) for _ in range(runs)]))
        bare = float(
            np.median([wall([sys.executable, "-c", "import torch, cv2, mediapipe"], env) for _ in range(runs)])
        )
    return {"one_frame_run_s": round(one, 2), "bare_imports_s": round(bare, 2), "ratio": round(one / bare, 2)}


def run_bench(
    paths: Sequence[Path] | None = None,
    *,
    search_sizes: Sequence[int] = (1_000, 100_000, 1_000_000),
    startup: bool = True,
) -> dict:
    paths_given = bool(paths)
    paths = list(paths) if paths else default_frames()
    frames = _frames_from(paths)
    if not frames:
        raise AccessctlError("no frames to benchmark")
    encoder = load_encoder()
    fa = analyzer()
    encoded = [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR))[1] for f in frames]

    stages: dict[str, dict] = {}
    decode, detect, mark, aligned, per_face, chips, observations = [], [], [], [], [], [], []
    for f, jpg in zip(frames, encoded, strict=True):
        t0 = time.perf_counter()
        cv2.cvtColor(cv2.imdecode(jpg, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        t1 = time.perf_counter()
        dets = fa.detect(f, frame=True)
        t2 = time.perf_counter()
        decode.append(t1 - t0)
        detect.append(t2 - t1)
        if not dets:
            continue
        pts = fa.landmarks(f, dets[0])
        t3 = time.perf_counter()
        mark.append(t3 - t2)
        if pts is None:
            continue
        chips.append(align(f, pts))
        t4 = time.perf_counter()
        observations.append(observe(f, dets[0].box, pts))
        aligned.append(t4 - t3)
        per_face.append(t4 - t1)  # detect + landmarks + align of one frame with a face
    if not chips:
        raise AccessctlError("no face found in any benchmark frame")
    stages["decode_jpeg_640x480"] = time_stats(decode)
    stages["detect"] = time_stats(detect)
    stages["landmarks"] = time_stats(mark)
    stages["align"] = time_stats(aligned)
    stages["detect_landmarks_align"] = time_stats(per_face)

    one = np.stack(chips[:1])
    eight = np.stack([chips[i % len(chips)] for i in range(8)])
    stages["encode_batch1_per_face"] = time_stats(_time(lambda: encoder.encode(one), 30))
    b8 = _time(lambda: encoder.encode(eight), 10)
    stages["encode_batch8_per_face"] = time_stats([t / 8 for t in b8])
    sface = load_encoder(SFACE_ID)
    stages["encode_sface_per_face"] = time_stats(_time(lambda: sface.encode(one), 30))
    s8 = _time(lambda: sface.encode(eight), 10)
    stages["encode_sface_batch8_per_face"] = time_stats([t / 8 for t in s8])
    stages["encode_sface_opencv_per_face"] = time_stats(_time(_opencv_sface(one), 30))  # how it ran before
    stages["liveness_per_frame"] = time_stats(_liveness_times(observations))
    peak_pipeline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    pipeline_ms = _pipeline_times(frames if paths_given else consecutive_frames())
    if pipeline_ms:
        stages["pipeline_per_frame"] = time_stats([m / 1000 for m in pipeline_ms])

    rng = np.random.default_rng(0)
    query = encoder.encode(one)[0]
    for n in search_sizes:
        emb = (rng.standard_normal((n, 128), dtype=np.float32) * 0.05).astype(np.float32)
        index = TemplateIndex(emb, np.arange(n) // 3)
        stages[f"search_1toN_{n}"] = time_stats(
            _time(functools.partial(index.nearest, query), 20 if n >= 1_000_000 else 50)
        )
        del emb, index
    return {
        "startup": startup_times(frames[0]) if startup else None,
        "frames": len(frames),
        "faces": len(chips),
        "threads": config.cpu_threads(config.load_settings()),
        "stages": stages,
        "peak_rss_mb_pipeline": round(peak_pipeline, 1),
        "peak_rss_mb_total": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
