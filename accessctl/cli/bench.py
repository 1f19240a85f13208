"""``bench``: per-stage timings, or the running kiosk window's."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from accessctl.cli.common import READS


def cmd_bench_kiosk(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from accessctl.gui.bench import run_kiosk_bench

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="accessctl-bench-") as tmp:
        if args.files:
            sources = args.files
        else:
            from accessctl.kiosk.demo import prepare_demo

            sources, _ = prepare_demo(Path(tmp))
        r = run_kiosk_bench(sources)
    print(f"sources: {', '.join(r['sources'])}; Qt platform: {r['platform']}")
    print(
        f"ran {r['seconds']} s: camera {r['capture_fps']} fps, preview {r['preview_fps']} fps, "
        f"inference {r['inference_fps']} fps, {r['frames_dropped']} of {r['frames_captured']} frames dropped"
    )
    if r["latency_ms"]:
        print(
            f"latency, capture to result: median {r['latency_ms']['median_ms']:.1f} ms, "
            f"p95 {r['latency_ms']['p95_ms']:.1f} ms (pipeline {r['pipeline_ms']['median_ms']:.1f} ms median)"
        )
    f2d = r["face_to_decision_s"]
    if f2d:
        print(
            f"a face's first frame to its decision: median {float(np.median(f2d)):.2f} s, max {max(f2d):.2f} s "
            f"({len(f2d)} decisions)"
        )
    print(f"decisions: {', '.join(r['decisions']) or 'none'}")
    print(f"GUI thread longest stall: {r['gui_longest_stall_ms']:.1f} ms")
    if args.json:
        print(json.dumps(r))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from accessctl.evaluation.bench import run_bench

    if args.kiosk:
        return cmd_bench_kiosk(args)

    result = run_bench([Path(p) for p in args.files] or None, startup=not args.no_startup)
    print(f"frames: {result['frames']}, faces: {result['faces']}, torch threads: {result['threads']}")
    if result["startup"]:
        st = result["startup"]
        print(
            f"start-up: a headless run of one frame {st['one_frame_run_s']:.2f} s, process start to exit "
            f"({st['ratio']:.1f}x a bare import of torch, cv2 and mediapipe: {st['bare_imports_s']:.2f} s)"
        )
    print(f"{'stage':<28} {'median ms':>10} {'p95 ms':>10}")
    for name, s in result["stages"].items():
        print(f"{name:<28} {s['median_ms']:>10.3f} {s['p95_ms']:>10.3f}")
    if "pipeline_per_frame" in result["stages"]:
        print(f"headless pipeline: {1000 / result['stages']['pipeline_per_frame']['median_ms']:.0f} frames/s (median)")
    print(
        f"peak memory: {result['peak_rss_mb_pipeline']:.0f} MB (pipeline), "
        f"{result['peak_rss_mb_total']:.0f} MB (with 1M templates)"
    )
    if args.json:
        print(json.dumps(result))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="per-stage timings on real frames")
    p.add_argument("files", nargs="*", metavar="FILE", help="images or videos (default: frames from ../shared/data)")
    p.add_argument("--json", action="store_true", help="last line: the timings as one JSON object")
    p.add_argument("--no-startup", action="store_true", help="leave out the start-up timing (three runs of the kiosk)")
    p.add_argument(
        "--kiosk",
        action="store_true",
        help="time the running kiosk window instead, on FILEs (videos) played at their own pace "
        "(default: the demo videos, in a throwaway home)",
    )
    p.set_defaults(func=cmd_bench, admin=READS)
