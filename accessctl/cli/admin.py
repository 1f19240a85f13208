"""``admin set-pin`` and ``config show``."""

from __future__ import annotations

import argparse
import sys

from accessctl.cli.common import READS, run_settings
from accessctl.errors import AccessctlError


def cmd_admin_set_pin(args: argparse.Namespace) -> int:
    import getpass

    from accessctl.storage.adminpin import AdminPin

    pin = AdminPin()
    if args.stdin:
        lines = sys.stdin.read().splitlines()
        current, new = (lines[0], lines[1]) if pin.is_set() and len(lines) >= 2 else (None, lines[0] if lines else "")
        again = new
    else:
        if not sys.stdin.isatty():
            raise AccessctlError("set-pin asks at a terminal; use --stdin to give the PIN(s) on standard input")
        current = getpass.getpass("current admin PIN: ") if pin.is_set() else None
        new = getpass.getpass("new admin PIN (digits, at least 6): ")
        again = getpass.getpass("new admin PIN again: ")
    if new != again:
        raise AccessctlError("the two PINs differ; nothing changed")
    pin.set(new, current)
    print(f"admin PIN set ({pin.path})")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """Every setting, the store's password replaced by ``***`` as in every other
    message: a screen or a terminal log is no place for it."""
    import dataclasses

    from accessctl.config import config_path, settings_toml
    from accessctl.storage.central import redact

    settings = run_settings(args)
    shown = redact(settings.store.url) if settings.store.url else ""
    if "***" in shown:
        settings = dataclasses.replace(settings, store=dataclasses.replace(settings.store, url=shown))
    print(f"# {config_path()}{'' if config_path().exists() else ' (not written yet: these are the defaults)'}")
    print(settings_toml(settings), end="")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    a = sub.add_parser("admin", help="the kiosk's admin PIN")
    asub = a.add_subparsers(dest="admin_cmd", required=True, metavar="ACTION")
    q = asub.add_parser("set-pin", help="set or change the admin PIN (asks at the terminal)")
    q.add_argument(
        "--stdin",
        action="store_true",
        help="read the PIN from standard input (when one is set: the current PIN, then the new one)",
    )
    q.set_defaults(func=cmd_admin_set_pin, admin="set-pin")

    c = sub.add_parser("config", help="the configuration")
    csub = c.add_subparsers(dest="config_cmd", required=True, metavar="ACTION")
    csub.add_parser("show", help="every setting with its current value").set_defaults(func=cmd_config_show, admin=READS)
