"""``eval pairs``, ``eval make-pairs`` and ``calibrate``: verification figures and the threshold they choose."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from accessctl.cli.common import (
    EXIT_REFUSED,
    READS,
    confirm,
    eval_encoder,
    method_opt,
    pair_head,
    run_settings,
    threshold_opt,
    threshold_text,
    when_not_dry,
)
from accessctl.errors import AccessctlError


def cmd_eval_pairs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from accessctl.evaluation.verification import evaluate_pairs, plot_roc
    from accessctl.identity.encoders import BUILTIN
    from accessctl.thresholds import default_threshold, match_threshold

    settings = run_settings(args)
    bar = tqdm(total=0, unit="img", desc="encoding", file=sys.stderr, disable=args.json or not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    encoder = eval_encoder(args)
    head = pair_head(args, encoder.encoder_id)
    run = getattr(args, "encoder", None)
    if head is not None:
        threshold = 1.0 - settings.match.min_probability
    elif args.threshold is not None:
        threshold = args.threshold
    elif run in BUILTIN:
        threshold = default_threshold(BUILTIN[run])  # a built-in encoder at its own scale
    elif run:
        from accessctl.identity.installed import read_run

        threshold = read_run(run).threshold  # chosen on the run's own training people
    else:
        threshold = match_threshold(settings, encoder.encoder_id)
    report, roc = evaluate_pairs(args.pairs, threshold, progress, encoder, head)
    bar.close()
    score = "distance" if head is None else "1 - P(same)"
    lines = [
        f"encoder: {encoder.encoder_id}, score: {score}",
        f"pairs: {report.pairs}",
        f"pairs where no face was found: {report.failed} ({len(report.failed_images)} images)",
        f"accuracy at threshold {report.threshold:.3f}: {report.accuracy:.4f} "
        f"(different people accepted: FAR {report.far:.2%}; same person refused: FRR {report.frr:.2%})",
        f"best accuracy: {report.best_accuracy:.4f} at threshold {report.best_threshold:.3f}",
        f"EER: {report.eer:.4f}",
    ] + [f"TAR at FAR {k}: {v:.4f}" for k, v in report.tar_at_far.items()]
    print("\n".join(lines))
    if args.plot:
        plot_roc(roc, report, args.plot, Path(args.pairs).name)
        print(f"ROC curve written to {args.plot}")
    if args.json:
        print(json.dumps(report.to_json()))
    return 0


def cmd_make_pairs(args: argparse.Namespace) -> int:
    from accessctl.evaluation.verification import pairs_from_clips, pairs_from_folders

    if (args.folder is None) == (not args.clips):
        raise AccessctlError("give either a folder of people or --clips LIST, not both")
    if args.clips:
        genuine, impostor = pairs_from_clips(
            args.clips,
            args.out,
            frames_per_clip=args.frames_per_clip,
            exclude_sources=args.exclude_source,
            max_impostors_per_image=args.max_impostors,
        )
    else:
        genuine, impostor = pairs_from_folders(args.folder, args.out, max_impostors_per_image=args.max_impostors)
    print(f"wrote {genuine} same-person and {impostor} different-person pairs to {args.out}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from accessctl.config import load_settings, save_settings
    from accessctl.evaluation.verification import (
        Calibration,
        pair_distances,
        threshold_for_far,
    )
    from accessctl.thresholds import check_threshold

    settings = load_settings()
    encoder = eval_encoder(args)
    cal = threshold_for_far(pair_distances(args.pairs, encoder=encoder), args.far)
    print(f"pairs: {cal.genuine_pairs} same-person, {cal.impostor_pairs} different-person")
    print(
        f"threshold for FAR <= {args.far:g}: {cal.threshold:.4f} (now {threshold_text(settings, encoder.encoder_id)})"
    )
    print(f"at that threshold on these pairs: FAR {cal.far:.4%}, expected false-reject rate {cal.frr:.2%}")
    needed = Calibration.min_impostor_pairs(args.far)
    if not cal.reliable:
        print(
            f"accessctl: warning: {cal.impostor_pairs} different-person pairs cannot measure a FAR of {args.far:g} "
            f"(at least {needed} are needed); the threshold is optimistic",
            file=sys.stderr,
        )
    if args.dry_run:
        return 0
    if not cal.reliable and not args.accept_risk:
        raise AccessctlError(
            f"not written: {cal.impostor_pairs} different-person pairs, at least {needed} needed for "
            f"a FAR of {args.far:g}; add pairs, or pass --accept-risk to write it anyway"
        )
    check_threshold(cal.threshold, encoder.encoder_id)  # never written above the encoder's ceiling
    if not confirm(args, "write this threshold to the configuration?"):
        print("configuration unchanged")
        return EXIT_REFUSED
    settings.match.threshold, settings.match.encoder = round(cal.threshold, 4), encoder.encoder_id
    path = save_settings(settings)
    print(f"threshold {settings.match.threshold} for encoder {encoder.encoder_id} written to {path}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    e = sub.add_parser("eval", help="measure accuracy")
    esub = e.add_subparsers(dest="eval_cmd", required=True, metavar="WHAT")
    q = esub.add_parser("pairs", help="face verification on a pair list (CSV a,b,same)")
    q.add_argument("pairs", metavar="PAIRS.csv")
    q.add_argument("--json", action="store_true", help="last line: the figures as one JSON object")
    q.add_argument("--plot", metavar="ROC.png", help="write the ROC curve")
    q.add_argument(
        "--encoder",
        metavar="sface|dlib|RUN_DIR",
        help="evaluate a built-in encoder or a training run instead of the gallery's encoder",
    )
    method_opt(q)
    threshold_opt(q)
    q.set_defaults(func=cmd_eval_pairs, admin=READS)

    q = esub.add_parser(
        "make-pairs",
        help="write a pair list from a folder with one folder of images per person, "
        "or from the live frame folders of clip lists (one person per source)",
    )
    q.add_argument("folder", nargs="?")
    q.add_argument(
        "--clips",
        action="append",
        default=[],
        metavar="CLIPS.csv",
        help="a liveness clip list (repeatable): its live frame folders, one person per source",
    )
    q.add_argument("--frames-per-clip", type=int, default=3, metavar="N", help="frames taken from each live clip")
    q.add_argument(
        "--exclude-source",
        action="append",
        default=[],
        metavar="SOURCE",
        help="leave out a source whose clips show more than one person (repeatable)",
    )
    q.add_argument("--out", required=True, metavar="PAIRS.csv")
    q.add_argument(
        "--max-impostors", type=int, default=0, metavar="N", help="at most N different-person pairs per image"
    )
    q.set_defaults(func=cmd_make_pairs, admin=READS)

    p = sub.add_parser("calibrate", help="choose the match threshold for a target false-accept rate")
    p.add_argument("--pairs", required=True, metavar="PAIRS.csv", help="the site's own pair list (a,b,same)")
    p.add_argument("--far", type=float, required=True, help="target false-accept rate, e.g. 0.001")
    p.add_argument("--yes", action="store_true", help="write the threshold without asking")
    p.add_argument("--dry-run", action="store_true", help="only show the threshold")
    p.add_argument(
        "--accept-risk",
        action="store_true",
        help="write it even from too few different-person pairs to measure the target FAR",
    )
    p.set_defaults(func=cmd_calibrate, admin=when_not_dry("calibrate"))
