"""``run``, ``demo``, ``events`` and ``health``: the door itself, what it logged, and whether it is deciding."""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from accessctl.cli.common import READS, run_settings, threshold_opt

if TYPE_CHECKING:
    from accessctl.config import Settings


def cmd_run(args: argparse.Namespace) -> int:
    settings = run_settings(args)
    if not args.headless:
        from accessctl.gui.app import run_kiosk

        return run_kiosk(
            args.source,
            settings,
            realtime=not args.every_frame,
            loop=args.loop,
            fullscreen=args.fullscreen or settings.kiosk.fullscreen,
        )
    return run_headless(settings, args.source, realtime=args.realtime, loop=args.loop)


def run_headless(settings: Settings, sources: Sequence[str], *, realtime: bool, loop: bool) -> int:
    """A door without a window: one JSON object per event on stdout, until the files end
    or a service manager's SIGTERM (the frame, the hooks and the uploads finish)."""
    from accessctl.door.assembly import open_door, open_site
    from accessctl.door.events import print_event

    with (
        open_site(settings, print_event) as site,
        open_door(
            settings,
            sources,
            print_event,
            reporter=site.reporter,
            realtime=realtime,
            loop=loop,
            gallery_path=site.gallery_path,
        ) as door,
    ):
        signal.signal(signal.SIGTERM, lambda *_: door.stop())
        stats = door.run()
    fps = stats.frames / stats.seconds if stats.seconds else 0.0
    dropped = f", {door.feed.stats.dropped} dropped to stay current" if door.feed.stats.dropped else ""
    print(
        f"accessctl: {stats.frames} frames, {stats.decisions} decisions, {fps:.1f} frames/s{dropped}", file=sys.stderr
    )
    if stats.frames == 0:  # a source that yields nothing is a failure, not a quiet success
        print("accessctl: error: no frame could be read from the source", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from accessctl.config import load_settings
    from accessctl.kiosk.demo import prepare_demo

    with tempfile.TemporaryDirectory(prefix="accessctl-demo-") as home:
        sources, pin = prepare_demo(Path(home))
        print(
            f"accessctl demo: a throwaway home in {home} (deleted afterwards); Pair One is enrolled from one frame "
            f"of {Path(sources[0]).name}; the admin PIN is {pin}",
            file=sys.stderr,
        )
        settings = load_settings()
        if not args.headless:
            from accessctl.gui.app import run_kiosk

            return run_kiosk(sources, settings, realtime=True, loop=True, fullscreen=args.fullscreen)
        return run_headless(settings, sources, realtime=False, loop=False)


def cmd_events(args: argparse.Namespace) -> int:
    from accessctl.config import load_settings
    from accessctl.storage.audit import AuditLog, parse_since, to_csv

    since = parse_since(args.since)
    url = load_settings().store.url
    if url:  # a many-door site: every door's log, on the central store
        from accessctl.storage.central import CentralStore

        with CentralStore(url) as store:
            rows = store.query(since=since, person=args.person)
    else:
        with AuditLog() as audit:
            rows = audit.query(since=since, person=args.person)
    if args.csv:
        sys.stdout.write(to_csv(rows))
    else:
        for r in rows:
            who = f"{r['name']} ({r['person_id']})" if r["person_id"] else "-"
            print(f"{r['time']} {r['kiosk']} {r['event']:<8} {r['reason'] or '':<8} {who}")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from accessctl.config import load_settings
    from accessctl.door.health import check_health

    health = check_health(args.kiosk or load_settings().kiosk.name)
    if args.json:
        state = dataclasses.asdict(health.state) if health.state is not None else None
        print(json.dumps({"ok": health.ok, "problems": list(health.problems), "state": state}))
    else:
        for problem in health.problems:
            print(f"accessctl health: {problem}")
        if health.ok and health.state is not None:
            fps = "" if health.state.fps is None else f", {health.state.fps:.1f} frames/s"
            print(f"accessctl health: {health.state.kiosk} is deciding (process {health.state.pid}{fps})")
    return 0 if health.ok else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="the kiosk: a camera, a video file or a folder of frames through the access pipeline"
    )
    p.add_argument(
        "--source",
        required=True,
        action="append",
        metavar="SOURCE",
        help="camera index (0), video file or frame folder; give it again to play files one after another",
    )
    p.add_argument("--headless", action="store_true", help="no window: one JSON object per event on stdout")
    p.add_argument("--loop", action="store_true", help="play the video files again when they end")
    p.add_argument("--fullscreen", action="store_true", help="kiosk mode: full screen; leaving needs the admin PIN")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime",
        action="store_true",
        help="headless: play files at their own frame rate, dropping frames the pipeline cannot keep up "
        "with, as a camera does (the window always does)",
    )
    pace.add_argument(
        "--every-frame",
        action="store_true",
        help="window: process every frame of a video file (reproducible; the preview runs at inference speed)",
    )
    threshold_opt(p)
    p.set_defaults(func=cmd_run, admin=lambda a: READS if a.threshold is None else "run --threshold")

    p = sub.add_parser(
        "demo",
        help="the kiosk on the shared data's videos (live, replayed on a phone, a stranger), in a throwaway home",
    )
    p.add_argument("--headless", action="store_true", help="no window: one JSON object per event on stdout")
    p.add_argument("--fullscreen", action="store_true", help="kiosk mode")
    p.set_defaults(func=cmd_demo, admin=READS)  # a throwaway home

    p = sub.add_parser("events", help="read the audit log")
    p.add_argument("--since", help="ISO time (2026-11-22T08:00) or an age: 30m, 12h, 7d")
    p.add_argument("--person", metavar="EMPLOYEE_ID")
    p.add_argument("--csv", action="store_true")
    p.set_defaults(func=cmd_events, admin=READS)

    p = sub.add_parser(
        "health",
        help="exit 0 only when the door running from this data folder is deciding "
        "(frames fresh, pace enough for liveness, audit log written, in service)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object: ok, problems, the door's state")
    p.add_argument("--kiosk", metavar="NAME", help="the door's [kiosk] name (default: this folder's configuration's)")
    p.set_defaults(func=cmd_health, admin=READS)
