"""Command-line interface: argument parsing only; each subcommand calls the functions
that do the work. One module per command group (``people``, ``evaluate``, ``encoder``,
``liveness``, ``kiosk``, ``admin``, ``bench``), each with its ``add_parsers``.

Errors a user can act on are printed as one line, ``accessctl: error: ...``, with exit
status 2. ``verify`` exits 0 when the face is accepted and 1 when it is refused, so a
script can branch on it. A command that changes what the door does is an admin
action: gated by the PIN where configured, and audited before it runs.
"""

from __future__ import annotations

import argparse
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from accessctl import __version__
from accessctl.cli import admin, bench, encoder, evaluate, kiosk, liveness, people, store
from accessctl.cli.common import EXIT_ERROR, READS
from accessctl.errors import AccessctlError

if TYPE_CHECKING:
    from accessctl.kiosk.admin import AdminActions

GROUPS = (people, evaluate, encoder, liveness, kiosk, store, admin, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accessctl", description="Face access control with liveness detection.")
    parser.add_argument("--version", action="version", version=f"accessctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


ADMIN_DETAIL_ARGS = (
    "employee_id",
    "name",
    "file",
    "run",
    "pairs",
    "far",
    "threshold",
    "images",
    "skip_existing",
    "append",
    "yes",
    "accept_risk",
    "source",
    "without_faces",
    "setting",
    "challenge",
)


def admin_action(args: argparse.Namespace) -> str:
    """The admin change a command line makes (its parser says so), or READS."""
    label = getattr(args, "admin", None)
    if label is None:  # fail closed: a command that does not say is not run unaudited
        raise AccessctlError(f"internal error: the {args.command} command does not say whether it is an admin change")
    return str(label(args) if callable(label) else label)


def _admin_gate(args: argparse.Namespace, action: str) -> AdminActions:
    """Before a CLI change: the PIN where ``[admin] require_pin_for_cli``; then the
    change goes through the same :class:`~accessctl.kiosk.admin.AdminActions` as the
    admin area's, logged with the OS user before it is made."""
    import getpass

    from accessctl.config import load_settings
    from accessctl.kiosk.admin import AdminActions

    settings = load_settings()
    # store init and migrate make the central store: their events stay here until it exists
    url = settings.store.url if action not in ("store init", "store migrate") else ""
    actions = AdminActions(kiosk=settings.kiosk.name, store_url=url, via="cli")
    if settings.admin.require_pin_for_cli and action != "set-pin":  # set-pin asks for the current PIN itself
        from accessctl.storage.adminpin import AdminPin

        pin = AdminPin()
        if not pin.is_set():
            raise AccessctlError(
                "[admin] require_pin_for_cli is on but no admin PIN is set; run `accessctl admin set-pin`"
            )
        given = os.environ.get("ACCESSCTL_ADMIN_PIN")
        if given is None:
            if not sys.stdin.isatty():
                raise AccessctlError(
                    f"{action} needs the admin PIN ([admin] require_pin_for_cli): run it at a terminal "
                    "or set ACCESSCTL_ADMIN_PIN"
                )
            given = getpass.getpass("admin PIN: ")
        why = pin.refusal(given)
        if why is not None:
            actions.log(f"{action} refused", None, {"why": why})
            raise AccessctlError(f"{why}; nothing changed")
    return actions


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        action = admin_action(args)
        if action == READS:
            code = args.func(args)
        else:
            detail = {
                k: str(v) if isinstance(v, Path) else v
                for k, v in vars(args).items()
                if k in ADMIN_DETAIL_ARGS and v not in (None, False, [])
            }
            code = _admin_gate(args, action).audited(action, None, detail, lambda: args.func(args))
        sys.stdout.flush()  # a full disk or closed pipe shows here, not as a traceback at exit
        return code
    except AccessctlError as exc:
        print(f"accessctl: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("accessctl: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - the reader left; nothing more goes there
        return 0
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more can be written there
        print(f"accessctl: error: cannot write: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
