"""``store init|migrate|status``: a many-door site's central PostgreSQL store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from accessctl.cli.common import READS
from accessctl.errors import AccessctlError


def _url(args: argparse.Namespace) -> str:
    from accessctl.config import load_settings

    url = getattr(args, "url", None) or load_settings().store.url
    if not url:
        raise AccessctlError("no central store: give --url postgresql://... or set [store] url in config.toml")
    if not url.startswith(("postgresql://", "postgres://")):
        raise AccessctlError(f"{url.split('://')[0]}:// is not a PostgreSQL URL (postgresql://...)")
    return url


def cmd_store_init(args: argparse.Namespace) -> int:
    from accessctl.storage.central import CentralStore, redact, schema_sql

    if args.print_sql:
        print(schema_sql(), end="")
        return 0
    url = _url(args)
    with CentralStore(url) as store:
        start, end = store.init()
    done = "created" if start == 0 else ("already current" if start == end else f"upgraded from version {start}")
    print(
        f"central store {redact(url)}: schema version {end} {done}; roles accessctl_kiosk (read people, append "
        "events) and accessctl_admin granted"
    )
    return 0


def cmd_store_migrate(args: argparse.Namespace) -> int:
    from accessctl import config
    from accessctl.storage.audit import AUDIT_FILE
    from accessctl.storage.central import redact
    from accessctl.storage.gallery import default_path
    from accessctl.storage.migrate import migrate

    gallery = Path(args.gallery) if args.gallery else default_path()
    if not gallery.is_file():
        raise AccessctlError(f"{gallery}: no gallery to migrate")
    audit = Path(args.audit) if args.audit else config.data_dir() / AUDIT_FILE
    people, templates, events = migrate(args.to, gallery, audit if audit.is_file() else None)
    print(f"migrated {people} people, {templates} templates and {events} events from {gallery} to {redact(args.to)}")
    print("set [store] url in each door's config.toml to use it")
    return 0


def cmd_store_status(args: argparse.Namespace) -> int:
    from accessctl.storage.replica import local_status

    s = local_status(_url(args))
    if args.json:
        print(json.dumps(s))
        return 0
    print(f"central store: {s['url']}: " + ("reachable" if s["reachable"] else f"NOT reachable ({s['error']})"))
    replica = (
        "none yet"
        if s["replica_version"] is None
        else (f"version {s['replica_version']}, {s.get('replica_people', 0)} people ({s['replica']})")
    )
    print(f"replica: {replica}")
    if s["server_version"] is not None:
        print(
            f"server: version {s['server_version']}; lag: {s['lag']} change(s)"
            if s["lag"] is not None
            else f"server: version {s['server_version']}"
        )
    print(f"spooled events not yet uploaded: {s['spooled_events']}")
    return 0 if s["reachable"] else 1


def add_parsers(sub: argparse._SubParsersAction) -> None:
    st = sub.add_parser("store", help="a many-door site's central PostgreSQL store ([store] url)")
    ssub = st.add_subparsers(dest="store_cmd", required=True, metavar="ACTION")
    q = ssub.add_parser("init", help="create or upgrade the schema and grant the kiosk and admin roles")
    q.add_argument("--url", metavar="postgresql://...", help="the store (default: [store] url)")
    q.add_argument("--print-sql", action="store_true", help="print the SQL (schema and roles) instead of running it")
    q.set_defaults(func=cmd_store_init, admin=lambda a: READS if a.print_sql else "store init")
    q = ssub.add_parser("migrate", help="copy this door's SQLite gallery and audit log into an empty central store")
    q.add_argument("--to", required=True, metavar="postgresql://...")
    q.add_argument("--gallery", metavar="GALLERY.db", help="default: this data folder's gallery.db")
    q.add_argument("--audit", metavar="EVENTS.db", help="default: this data folder's events.db")
    q.set_defaults(func=cmd_store_migrate, admin="store migrate")
    q = ssub.add_parser("status", help="the replica's version and lag, spooled events, whether the server answers")
    q.add_argument("--url", metavar="postgresql://...", help="the store (default: [store] url)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_store_status, admin=READS)
