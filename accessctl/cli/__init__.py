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

from accessctl import __version__
from accessctl.cli import admin, bench, encoder, evaluate, kiosk, liveness, people, store
from accessctl.cli.common import EXIT_ERROR
from accessctl.errors import AccessctlError

GROUPS = (people, evaluate, encoder, liveness, kiosk, store, admin, bench)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accessctl", description="Face access control with liveness detection.")
    parser.add_argument("--version", action="version", version=f"accessctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_parsers(sub)
    return parser


ADMIN_DETAIL_ARGS = ("employee_id", "name", "file", "run", "pairs", "far", "threshold", "images", "skip_existing",
                     "append", "yes", "accept_risk", "source", "without_faces", "setting", "challenge")


def admin_action(args: argparse.Namespace) -> str | None:
    """The admin change a command line makes, or None for one that only reads."""
    func, dry = args.func, getattr(args, "dry_run", False)
    if func is people.cmd_enroll:
        return "enroll"
    if func is people.cmd_gallery and args.gallery_cmd in ("remove", "rename", "enable", "disable", "challenge", "export",
                                                           "import"):
        return f"gallery {args.gallery_cmd}"  # export too: it copies every template out
    if func is encoder.cmd_encoder_use and not dry:
        return "encoder use"
    if func is encoder.cmd_encoder_fit_head:
        return "encoder fit-head"
    if func is evaluate.cmd_calibrate and not dry:
        return "calibrate"
    if func is store.cmd_store_init and not args.print_sql:
        return "store init"
    if func is store.cmd_store_migrate:
        return "store migrate"
    if func is admin.cmd_admin_set_pin:
        return "set-pin"
    if func is kiosk.cmd_run and args.threshold is not None:
        return "run --threshold"
    return None


def _admin_gate(args: argparse.Namespace, action: str) -> None:
    """Before a CLI change: the PIN where ``[admin] require_pin_for_cli``, then an
    ``admin`` event naming the OS user. An unloggable change is not made."""
    import getpass

    from accessctl.config import load_settings
    from accessctl.storage.audit import log_admin

    settings = load_settings()
    if settings.admin.require_pin_for_cli and action != "set-pin":  # set-pin asks for the current PIN itself
        from accessctl.storage.adminpin import AdminPin

        pin = AdminPin()
        if not pin.is_set():
            raise AccessctlError("[admin] require_pin_for_cli is on but no admin PIN is set; run `accessctl admin set-pin`")
        given = os.environ.get("ACCESSCTL_ADMIN_PIN")
        if given is None:
            if not sys.stdin.isatty():
                raise AccessctlError(f"{action} needs the admin PIN ([admin] require_pin_for_cli): run it at a terminal "
                                     "or set ACCESSCTL_ADMIN_PIN")
            given = getpass.getpass("admin PIN: ")
        why = pin.refusal(given)
        if why is not None:
            log_admin(f"{action} refused", None, {"why": why}, kiosk=settings.kiosk.name, via="cli")
            raise AccessctlError(f"{why}; nothing changed")
    detail = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
              if k in ADMIN_DETAIL_ARGS and v not in (None, False, [])}
    try:
        log_admin(action, None, detail, kiosk=settings.kiosk.name, via="cli")
    except AccessctlError as exc:
        raise AccessctlError(f"{action} not done: the audit log cannot record it ({exc})") from None
    if settings.store.url and action not in ("store init", "store migrate"):
        from accessctl.storage.replica import upload_now

        try:
            upload_now(settings.store.url)  # a site's log is the central one: there first, or no change
        except AccessctlError as exc:
            _admin_failed(action, str(exc))
            raise AccessctlError(f"{action} not done: the central audit log cannot record it ({exc})") from None


def _admin_failed(action: str, why: str) -> None:
    """The change logged as begun did not happen: say so in the log too (best effort)."""
    from accessctl.config import load_settings
    from accessctl.storage.audit import log_admin

    try:
        settings = load_settings()
        log_admin(f"{action} failed", None, {"error": why}, kiosk=settings.kiosk.name, via="cli")
        if settings.store.url:
            from accessctl.storage.replica import upload_now

            upload_now(settings.store.url)
    except AccessctlError:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        action = admin_action(args)
        if action is None:
            code = args.func(args)
        else:
            _admin_gate(args, action)
            try:
                code = args.func(args)
            except AccessctlError as exc:
                _admin_failed(action, str(exc))
                raise
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
