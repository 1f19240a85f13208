"""``encoder train|use|fit-head|show|report``: the face encoder and its runs."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from accessctl.cli.common import (
    EXIT_REFUSED,
    READS,
    confirm,
    eval_encoder,
    open_gallery,
    threshold_text,
    when_not_dry,
)


def cmd_encoder_train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from accessctl.config import cpu_threads, load_settings
    from accessctl.training.trainer import Progress, TrainConfig, train

    torch.set_num_threads(cpu_threads(load_settings()))
    cfg = TrainConfig(
        data=args.data,
        out=args.out,
        arch=args.arch,
        init=args.init,
        loss=args.loss,
        mining=args.mining,
        margin=args.margin,
        epochs=args.epochs,
        p=args.people_per_batch,
        k=args.images_per_person,
        lr=args.lr,
        val_people=args.val_people,
        test_people=args.test_people,
        steps_per_epoch=args.steps_per_epoch,
        patience=args.patience,
        seed=args.seed,
        split_seed=args.split_seed,
        id_weight=args.id_weight,
        whiten=not args.no_whiten,
        device=args.device,
    )
    bar = tqdm(total=args.epochs, unit="epoch", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(p: Progress) -> None:
        if p.record is not None:  # an epoch ended
            bar.update(1)
            bar.write(str(p))
        else:
            bar.set_postfix_str(f"step {p.step}/{p.steps} loss {p.loss:.4f}")

    result = train(cfg, resume=args.resume, progress=progress)
    bar.close()
    best = "the starting weights" if result.best_epoch == 0 else f"epoch {result.best_epoch}"
    print(f"trained {result.epochs_run} epoch(s) at {result.images_per_second:.0f} images/s; best: {best}")
    for split, fig in result.best.items():
        if split.endswith("_binary"):
            print(
                f"{split[:-7]}, binary head: accuracy {fig['accuracy']:.4f} at P(same) >= 0.5, "
                f"10-fold {fig['accuracy_10fold']:.4f}, EER {fig['eer']:.4f}"
            )
        elif split.endswith("_unwhitened"):
            print(
                f"{split[:-11]}, before whitening: best {fig['best_accuracy']:.4f}, "
                f"10-fold {fig['accuracy_10fold']:.4f}, EER {fig['eer']:.4f}"
            )
        elif split == "before":
            for name, f in fig.items():
                print(f"{name} before fine-tuning: accuracy {f['accuracy']:.4f}, EER {f['eer']:.4f}")
        elif isinstance(fig, dict):
            line = (
                f"{split}: {fig['pairs']} balanced pairs, accuracy {fig['accuracy']:.4f} at distance "
                f"{result.threshold:.3f} (chosen on the training people), best {fig['best_accuracy']:.4f}"
            )
            if "accuracy_10fold" in fig:
                line += f", 10-fold {fig['accuracy_10fold']:.4f}"
            print(f"{line}, EER {fig['eer']:.4f}")
    print(f"weights: {result.out / 'best.pt'}; configuration and history: {result.out / 'config.json'}")
    return 0


def cmd_encoder_use(args: argparse.Namespace) -> int:
    from accessctl.config import load_settings, save_settings
    from accessctl.identity.switch import (
        check_switchable,
        choose_encoder,
        switch_encoder,
    )

    settings = load_settings()
    choice = choose_encoder(args.run)
    with open_gallery(local_only="encoder use") as gallery:
        people = gallery.people()
        print(f"gallery encoder: {gallery.encoder_id} -> {choice.encoder_id}; {len(people)} people to re-encode")
        print(
            f"match threshold: {threshold_text(settings, gallery.encoder_id)} -> {choice.threshold:.4f}"
            + ("" if choice.run is None else " (chosen on the training people; calibrate it on your own pairs)")
        )
        check_switchable(gallery)
        if args.dry_run:
            return 0
        if gallery.encoder_id == choice.encoder_id:
            print("the gallery already uses this encoder; nothing to do")
            return 0
        if not confirm(args, "re-encode every enrolled person and switch?"):
            print("gallery unchanged")
            return EXIT_REFUSED
        n = switch_encoder(gallery, choice, settings)
    save_settings(settings)
    print(
        f"re-encoded {n} template(s) of {len(people)} people with {choice.encoder_id}; threshold {choice.threshold:.4f}"
    )
    print("restart running kiosks: they refuse everyone until they load the new encoder")
    return 0


def cmd_encoder_fit_head(args: argparse.Namespace) -> int:
    from accessctl.evaluation.verification import pair_embeddings, verification_metrics
    from accessctl.identity.pairhead import fit_head, same_probability, save_head

    encoder = eval_encoder(args)
    pe = pair_embeddings(args.pairs, encoder=encoder)
    ok = ~pe.failed
    head = fit_head(pe.a[ok], pe.b[ok], pe.same[ok])
    score = np.where(pe.failed, np.inf, 1.0 - same_probability(head, pe.a, pe.b))
    m = verification_metrics(score, pe.same, pe.failed, 0.5)
    print(
        f"fitted on {int(ok.sum())} pairs ({int(pe.failed.sum())} without a face); on these pairs: "
        f"accuracy {m['accuracy']:.4f} at P(same) >= 0.5, EER {m['eer']:.4f}"
    )
    path = save_head(encoder.encoder_id, head)
    print(f"head for encoder {encoder.encoder_id} written to {path}; use it with --method binary")
    return 0


def cmd_encoder_show(args: argparse.Namespace) -> int:
    from accessctl.config import load_settings
    from accessctl.identity.installed import encoders_dir
    from accessctl.identity.pairhead import head_path
    from accessctl.storage.gallery import recorded_encoder

    active = recorded_encoder()
    installed = sorted(d.name for d in encoders_dir().iterdir() if d.is_dir()) if encoders_dir().is_dir() else []
    print(f"gallery encoder: {active}")
    print(f"match threshold: {threshold_text(load_settings(), active)}")
    print(f"binary head: {'yes' if head_path(active).is_file() else 'none (accessctl encoder fit-head)'}")
    if installed:
        print("installed: " + ", ".join(installed))
    return 0


def cmd_encoder_report(args: argparse.Namespace) -> int:
    from accessctl.training.report import FIGURES, report

    doc = report(args.runs)
    if args.json:
        print(json.dumps(doc))
        return 0

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    print(f"{'run':40s} {'loss':12s} {'split':>5s} {'10-fold':>8s} {'at thr':>7s} {'unwhit':>7s} {'head':>6s}")
    for r in doc["runs"]:
        print(
            f"{r['run'][-40:]:40s} {r['loss']:12s} {r['split_seed']:5d} {pct(r['accuracy_10fold']):>8s} "
            f"{pct(r['accuracy_at_threshold']):>7s} {pct(r['before_whitening_10fold']):>7s} {pct(r['head_10fold']):>6s}"
        )
    for loss, summary in doc["summary"].items():
        for stat in ("mean", "sd", "min", "max"):
            cells = [pct(summary[f][stat]) if f in summary else "-" for f in FIGURES]
            print(f"{stat:40s} {loss:12s} {'':5s} {cells[0]:>8s} {cells[1]:>7s} {cells[2]:>7s} {cells[3]:>6s}")
    splits = [(r["loss"], r["split_seed"]) for r in doc["runs"]]
    if len(set(splits)) < len(splits):
        print(
            "note: some runs hold out the same people (same split seed); "
            "their spread is the training's, not the split's"
        )
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    enc = sub.add_parser("encoder", help="train or fine-tune the face encoder")
    encsub = enc.add_subparsers(dest="encoder_cmd", required=True, metavar="ACTION")
    q = encsub.add_parser("train", help="train on a folder with one folder of face images per person")
    q.add_argument("--data", required=True, metavar="DIR")
    q.add_argument("--out", required=True, metavar="DIR", help="checkpoints, best weights and config.json")
    q.add_argument("--arch", choices=["dlib-resnet", "small"], default="dlib-resnet")
    q.add_argument("--init", choices=["pretrained", "random"], default="pretrained")
    q.add_argument("--loss", choices=["triplet", "contrastive", "binary"], default="triplet")
    q.add_argument("--mining", choices=["semi-hard", "batch-hard", "batch-all"], default="semi-hard")
    q.add_argument("--margin", type=float, help="triplet alpha (squared distance) or contrastive margin")
    q.add_argument("--epochs", type=int, default=20, help="0: only measure the starting weights")
    q.add_argument("--people-per-batch", type=int, default=8, metavar="P")
    q.add_argument("--images-per-person", type=int, default=4, metavar="K")
    q.add_argument("--lr", type=float, default=0.0, help="learning rate (default 2e-5 fine-tuning, 1e-3 from random)")
    q.add_argument(
        "--val-people",
        type=int,
        default=0,
        metavar="N",
        help="hold out N people to choose the best epoch by (and to stop early)",
    )
    q.add_argument(
        "--test-people",
        type=int,
        default=0,
        metavar="N",
        help="hold out N people from training and from every choice; measured once at the end",
    )
    q.add_argument("--steps-per-epoch", type=int, default=0, metavar="S", help="batches per epoch (default: one pass)")
    q.add_argument(
        "--id-weight",
        type=float,
        default=0.0,
        metavar="W",
        help="add W x an identity loss over the training people (cosine softmax); 0 = off",
    )
    q.add_argument(
        "--no-whiten",
        action="store_true",
        help="leave out the small net's within-class whitening, fitted on the training people at the end",
    )
    q.add_argument("--patience", type=int, default=5, help="stop after this many epochs without improvement")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="S",
        help="which people --test-people/--val-people hold out (default: --seed); "
        "vary --seed alone to see the spread between runs on the same people",
    )
    q.add_argument(
        "--device",
        default="cpu",
        metavar="DEV",
        help="where the training steps run: cpu (default) or cuda on a machine with a GPU",
    )
    q.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    q.set_defaults(func=cmd_encoder_train, admin=READS)  # writes a run folder, not the door
    q = encsub.add_parser("use", help="switch the gallery to another encoder, re-encoding everyone")
    q.add_argument(
        "run",
        metavar="sface|dlib|RUN_DIR",
        help="a built-in pretrained encoder (sface, dlib; 'pretrained' is dlib) or a finished `encoder train` folder",
    )
    q.add_argument("--yes", action="store_true", help="switch without asking")
    q.add_argument("--dry-run", action="store_true", help="only say what would change")
    q.set_defaults(func=cmd_encoder_use, admin=when_not_dry("encoder use"))
    q = encsub.add_parser("fit-head", help="fit the binary verification head (logistic regression) on a pair list")
    q.add_argument("--pairs", required=True, metavar="PAIRS.csv")
    q.set_defaults(func=cmd_encoder_fit_head, admin="encoder fit-head")
    q = encsub.add_parser("report", help="the held-out figures of finished runs side by side, with mean and worst")
    q.add_argument("runs", nargs="+", metavar="RUN_DIR")
    q.add_argument("--json", action="store_true", help="one JSON object: every run's figures and the summary")
    q.set_defaults(func=cmd_encoder_report, admin=READS)
    q = encsub.add_parser("show", help="the gallery's encoder, threshold and head")
    q.set_defaults(func=cmd_encoder_show, admin=READS)
