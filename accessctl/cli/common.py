"""What every command module shares: exit codes, the gallery and settings a command
runs with, the encoder an evaluation uses, and the options several commands take."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from accessctl.errors import AccessctlError

EXIT_REFUSED = 1
EXIT_ERROR = 2

# Every command says on its parser (``set_defaults(admin=...)``) whether it changes what
# the door does: READS for one that does not, the action's name for one that does (it
# then passes the admin gate: the PIN where asked, and its audit event first), or a
# function of the arguments for one that does only with some (a dry run changes
# nothing). A command that says nothing is refused: none is silently unaudited.
READS = ""


def when_not_dry(action: str) -> Callable[[argparse.Namespace], str]:
    return lambda args: READS if args.dry_run else action


def open_gallery(*, local_only: str = ""):
    """The gallery the admin's commands work on: the site's central store where
    ``[store] url`` names one, else this door's own SQLite gallery. ``local_only``
    names a command that only works on a SQLite gallery (refused on the store)."""
    from accessctl.config import load_settings
    from accessctl.storage.central import CentralGallery
    from accessctl.storage.gallery import Gallery

    url = load_settings().store.url
    if url and local_only:
        raise AccessctlError(
            f"{local_only} works on a door's own SQLite gallery, not on the central store; "
            "move a gallery there with `accessctl store migrate`"
        )
    return CentralGallery(url) if url else Gallery()


def eval_encoder(args: argparse.Namespace):
    """The encoder an evaluation uses: --encoder (sface, dlib or a training run), else the gallery's."""
    from accessctl.identity.encoders import BUILTIN, load_encoder, load_run_encoder
    from accessctl.storage.gallery import recorded_encoder

    run = getattr(args, "encoder", None)
    if run in BUILTIN:
        return load_encoder(BUILTIN[run])
    return load_run_encoder(run) if run else load_encoder(recorded_encoder())


def pair_head(args: argparse.Namespace, encoder_id: str):
    """The binary verification head when --method binary, else None (distance threshold)."""
    if getattr(args, "method", "distance") != "binary":
        return None
    from accessctl.identity.installed import read_run
    from accessctl.identity.pairhead import HEAD_FILE, load_head, load_head_file

    run = getattr(args, "encoder", None)
    if run:
        read_run(run)
        return load_head_file(Path(run) / HEAD_FILE)
    return load_head(encoder_id)


def run_settings(args: argparse.Namespace):
    from accessctl.config import check_settings, load_settings

    settings = load_settings()
    if getattr(args, "threshold", None) is not None:
        if not args.threshold > 0:  # 0 would mean "the encoder's default" in the configuration
            raise AccessctlError(f"--threshold {args.threshold:g} must be above 0")
        settings.match.threshold, settings.match.encoder = args.threshold, ""  # for this command, any encoder
        check_settings(settings)  # the configuration's own range; the encoder's ceiling is checked where it is used
    return settings


def threshold_text(settings, encoder_id: str) -> str:
    """The threshold a gallery of ``encoder_id`` runs at, or why it cannot run, for people to read."""
    from accessctl.thresholds import match_threshold

    try:
        value = match_threshold(settings, encoder_id)
    except AccessctlError as exc:
        return f"none usable ({exc})"
    return f"{value:.4f}" + (" (the encoder's default)" if settings.match.threshold == 0 else "")


def read_images(paths: Sequence[str]):
    from accessctl.frames.images import load_image

    return [(p, load_image(p)) for p in paths]


def confirm(args: argparse.Namespace, question: str) -> bool:
    """--yes, or a y at the terminal; refuses to guess when nobody can answer."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise AccessctlError("this change needs --yes when not run at a terminal (or use --dry-run)")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def threshold_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threshold",
        type=float,
        help="match threshold (Euclidean distance; default from config, else the encoder's: SFace 1.0, dlib 0.6)",
    )


def method_opt(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--method",
        choices=["distance", "binary"],
        default="distance",
        help="distance threshold (default) or the fitted binary head's P(same)",
    )
