"""Command-line interface: argument parsing only; each subcommand calls one function.

Errors a user can act on are printed as one line, ``accessctl: error: ...``, with exit
status 2. ``verify`` exits 0 when the face is accepted and 1 when it is refused, so a
script can branch on it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import __version__
from .errors import AccessctlError

EXIT_REFUSED = 1
EXIT_ERROR = 2


def _gallery():
    from .gallery import Gallery

    return Gallery()


def _eval_encoder(args: argparse.Namespace):
    """The encoder an evaluation uses: --encoder (sface, dlib or a training run), else the gallery's."""
    from .encoder import BUILTIN, load_encoder, load_run_encoder
    from .gallery import recorded_encoder

    run = getattr(args, "encoder", None)
    if run in BUILTIN:
        return load_encoder(BUILTIN[run])
    return load_run_encoder(run) if run else load_encoder(recorded_encoder())


def _head(args: argparse.Namespace, encoder_id: str):
    """The binary verification head when --method binary, else None (distance threshold)."""
    if getattr(args, "method", "distance") != "binary":
        return None
    from .encoder.installed import read_run
    from .pairhead import HEAD_FILE, load_head, load_head_file

    run = getattr(args, "encoder", None)
    if run:
        read_run(run)
        return load_head_file(Path(run) / HEAD_FILE)
    return load_head(encoder_id)


def _settings(args: argparse.Namespace):
    from .config import check_settings, load_settings

    settings = load_settings()
    if getattr(args, "threshold", None) is not None:
        if not args.threshold > 0:  # 0 would mean "the encoder's default" in the configuration
            raise AccessctlError(f"--threshold {args.threshold:g} must be above 0")
        settings.match.threshold, settings.match.encoder = args.threshold, ""  # for this command, any encoder
        check_settings(settings)  # the configuration's own range; the encoder's ceiling is checked where it is used
    return settings


def _own_face_check(gallery, source: str):
    """An import check: each template must be the encoding of its own stored face
    (within the match threshold), so a crafted template cannot stand in for a person."""
    from .config import load_settings, match_threshold
    from .encoder import load_encoder
    from .errors import GalleryError

    threshold = match_threshold(load_settings(), gallery.encoder_id)

    def check(templates: np.ndarray, chips: np.ndarray) -> None:
        d = np.linalg.norm(load_encoder(gallery.encoder_id).encode(chips) - templates, axis=1)
        worst = int(np.argmax(d))
        if d[worst] > threshold:
            raise GalleryError(f"{source}: template {worst + 1} is not the encoding of its own stored face (distance "
                               f"{d[worst]:.3f}, threshold {threshold:.3f}); nothing was imported")
    return check


def _threshold_text(settings, encoder_id: str) -> str:
    """The threshold a gallery of ``encoder_id`` runs at, or why it cannot run, for people to read."""
    from .config import match_threshold

    try:
        value = match_threshold(settings, encoder_id)
    except AccessctlError as exc:
        return f"none usable ({exc})"
    return f"{value:.4f}" + (" (the encoder's default)" if settings.match.threshold == 0 else "")


def _images(paths: Sequence[str]):
    from .images import load_image

    return [(p, load_image(p)) for p in paths]


def _person_json(p) -> dict:
    return {"employee_id": p.employee_id, "name": p.name, "active": p.active, "created": p.created, "templates": p.templates}


def _match_json(m) -> dict:
    near = m.nearest
    return {
        "accepted": m.accepted,
        "employee_id": m.person.employee_id if m.person else None,
        "name": m.person.name if m.person else None,
        "distance": None if m.distance == float("inf") else round(m.distance, 4),
        "threshold": m.threshold,
        "nearest_employee_id": near.employee_id if near else None,
    }


def _box(face) -> list[int]:
    return [round(v) for v in face.face.box]


# -- subcommands ---------------------------------------------------------------------
def cmd_enroll(args: argparse.Namespace) -> int:
    from .identity import enroll

    settings = _settings(args)
    with _gallery() as gallery:
        result = enroll(
            gallery, _images(args.images), args.employee_id, args.name, settings, face_number=args.face, append=args.append
        )
    for warning in result.warnings:
        print(f"accessctl: warning: {warning}", file=sys.stderr)
    p = result.person
    print(f"enrolled {p.name} ({p.employee_id}): {result.templates_added} template(s) added, {p.templates} in total")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .identity import verify

    settings = _settings(args)
    (source, image), = _images([args.image])
    with _gallery() as gallery:
        head = _head(args, gallery.encoder_id)
        face, match = verify(gallery, args.employee_id, image, source, settings, face_number=args.face, head=head)
    row = {"image": source, "box": _box(face), "method": args.method, **_match_json(match)}
    if head is not None:
        row["probability"] = round(1.0 - match.distance, 4)
    if args.json:
        print(json.dumps(row))
    else:
        who = f"{match.nearest.name} ({match.nearest.employee_id})" if match.nearest else args.employee_id
        verdict = "MATCH" if match.accepted else "NO MATCH"
        if head is None:
            print(f"{verdict}: {source} vs {who}: distance {match.distance:.3f} (threshold {match.threshold:.3f})")
        else:
            print(f"{verdict}: {source} vs {who}: P(same) {1 - match.distance:.3f} (at least {1 - match.threshold:.3f})")
    return 0 if match.accepted else EXIT_REFUSED


def cmd_identify(args: argparse.Namespace) -> int:
    from .identity import identify

    settings = _settings(args)
    rows = []
    with _gallery() as gallery:
        for source, image in _images(args.images):
            results = identify(gallery, image, settings)
            if not results:
                rows.append({"image": source, "face": None, "accepted": False, "reason": "no face"})
                if not args.json:
                    print(f"{source}: no face found")
            for i, (face, match) in enumerate(results, start=1):
                rows.append({"image": source, "face": i, "box": _box(face), **_match_json(match)})
                if not args.json:
                    who = f"{match.person.name} ({match.person.employee_id})" if match.person else "unknown"
                    print(f"{source}: face {i} at {_box(face)}: {who}, distance {match.distance:.3f}")
    if args.json:
        for row in rows:
            print(json.dumps(row))
    return 0


def cmd_gallery(args: argparse.Namespace) -> int:
    with _gallery() as gallery:
        if args.gallery_cmd == "list":
            people = gallery.people()
            if args.json:
                print(json.dumps([_person_json(p) for p in people]))
            elif not people:
                print(f"the gallery is empty ({gallery.path})")
            else:
                print(f"{'EMPLOYEE ID':<16} {'NAME':<28} {'ACTIVE':<7} {'TEMPLATES':>9}  CREATED")
                for p in people:
                    active = "yes" if p.active else "no"
                    print(f"{p.employee_id:<16} {p.name:<28} {active:<7} {p.templates:>9}  {p.created}")
        elif args.gallery_cmd == "show":
            p = gallery.get(args.employee_id)
            print(f"employee id: {p.employee_id}\nname: {p.name}\nactive: {'yes' if p.active else 'no'}\ncreated: {p.created}")
            print(f"templates: {p.templates}")
            for t in gallery.templates(args.employee_id):
                print(f"  #{t.id}  quality {t.quality:.2f}  {t.created}  {t.encoder}  {t.source}")
        elif args.gallery_cmd == "remove":
            p = gallery.get(args.employee_id)
            if not args.yes:
                if not sys.stdin.isatty():
                    raise AccessctlError(f"removing {p.name} ({p.employee_id}) needs --yes when not run at a terminal")
                answer = input(f"remove {p.name} ({p.employee_id}) and {p.templates} template(s)? [y/N] ")
                if answer.strip().lower() not in ("y", "yes"):
                    print("nothing removed")
                    return EXIT_REFUSED
            gallery.remove(args.employee_id)
            print(f"removed {p.name} ({p.employee_id})")
        elif args.gallery_cmd == "rename":
            old = gallery.get(args.employee_id)
            p = gallery.rename(args.employee_id, args.name)
            print(f"renamed {old.employee_id}: {old.name} -> {p.name}")
        elif args.gallery_cmd in ("enable", "disable"):
            p = gallery.set_active(args.employee_id, args.gallery_cmd == "enable")
            print(f"{p.name} ({p.employee_id}) is now {'enabled' if p.active else 'disabled'}")
        elif args.gallery_cmd == "export":
            n = gallery.export(args.file)
            print(f"exported {n} people to {args.file} (it holds biometric templates: keep it private)")
        elif args.gallery_cmd == "import":
            added, skipped = gallery.import_(args.file, skip_existing=args.skip_existing,
                                             check=_own_face_check(gallery, args.file), without_faces=args.without_faces)
            print(f"imported {added} people from {args.file}" + (f", skipped {skipped} already enrolled" if skipped else ""))
    return 0


def cmd_eval_pairs(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .config import match_threshold
    from .encoder import BUILTIN, builtin_threshold
    from .evaluate import evaluate_pairs, plot_roc

    settings = _settings(args)
    bar = tqdm(total=0, unit="img", desc="encoding", file=sys.stderr, disable=args.json or not sys.stderr.isatty())

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    encoder = _eval_encoder(args)
    head = _head(args, encoder.encoder_id)
    run = getattr(args, "encoder", None)
    if head is not None:
        threshold = 1.0 - settings.match.min_probability
    elif args.threshold is not None:
        threshold = args.threshold
    elif run in BUILTIN:
        threshold = builtin_threshold(BUILTIN[run])  # a built-in encoder at its own scale
    elif run:
        from .encoder.installed import read_run

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
    from .evaluate import pairs_from_clips, pairs_from_folders

    if (args.folder is None) == (not args.clips):
        raise AccessctlError("give either a folder of people or --clips LIST, not both")
    if args.clips:
        genuine, impostor = pairs_from_clips(args.clips, args.out, frames_per_clip=args.frames_per_clip,
                                             exclude_sources=args.exclude_source, max_impostors_per_image=args.max_impostors)
    else:
        genuine, impostor = pairs_from_folders(args.folder, args.out, max_impostors_per_image=args.max_impostors)
    print(f"wrote {genuine} same-person and {impostor} different-person pairs to {args.out}")
    return 0


def cmd_encoder_train(args: argparse.Namespace) -> int:
    import torch
    from tqdm import tqdm

    from .config import cpu_threads, load_settings
    from .training.trainer import TrainConfig, train

    torch.set_num_threads(cpu_threads(load_settings()))
    cfg = TrainConfig(
        data=args.data, out=args.out, arch=args.arch, init=args.init, loss=args.loss, mining=args.mining,
        margin=args.margin, epochs=args.epochs, p=args.people_per_batch, k=args.images_per_person, lr=args.lr,
        val_people=args.val_people, test_people=args.test_people, steps_per_epoch=args.steps_per_epoch,
        patience=args.patience, seed=args.seed, split_seed=args.split_seed, id_weight=args.id_weight,
        whiten=not args.no_whiten, device=args.device,
    )
    bar = tqdm(total=args.epochs, unit="epoch", file=sys.stderr, disable=not sys.stderr.isatty())

    def progress(line: str) -> None:
        if line.startswith("epoch") and ": {" in line:
            bar.update(1)
            bar.write(line)
        else:
            bar.set_postfix_str(line.split(" ", 2)[-1])

    result = train(cfg, resume=args.resume, progress=progress)
    bar.close()
    best = "the starting weights" if result.best_epoch == 0 else f"epoch {result.best_epoch}"
    print(f"trained {result.epochs_run} epoch(s) at {result.images_per_second:.0f} images/s; best: {best}")
    for split, fig in result.best.items():
        if split.endswith("_binary"):
            print(f"{split[:-7]}, binary head: accuracy {fig['accuracy']:.4f} at P(same) >= 0.5, "
                  f"10-fold {fig['accuracy_10fold']:.4f}, EER {fig['eer']:.4f}")
        elif split.endswith("_unwhitened"):
            print(f"{split[:-11]}, before whitening: best {fig['best_accuracy']:.4f}, "
                  f"10-fold {fig['accuracy_10fold']:.4f}, EER {fig['eer']:.4f}")
        elif split == "before":
            for name, f in fig.items():
                print(f"{name} before fine-tuning: accuracy {f['accuracy']:.4f}, EER {f['eer']:.4f}")
        elif isinstance(fig, dict):
            line = (f"{split}: {fig['pairs']} balanced pairs, accuracy {fig['accuracy']:.4f} at distance "
                    f"{result.threshold:.3f} (chosen on the training people), best {fig['best_accuracy']:.4f}")
            if "accuracy_10fold" in fig:
                line += f", 10-fold {fig['accuracy_10fold']:.4f}"
            print(f"{line}, EER {fig['eer']:.4f}")
    print(f"weights: {result.out / 'best.pt'}; configuration and history: {result.out / 'config.json'}")
    return 0


def _confirm(args: argparse.Namespace, question: str) -> bool:
    """--yes, or a y at the terminal; refuses to guess when nobody can answer."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise AccessctlError("this change needs --yes when not run at a terminal (or use --dry-run)")
    return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def cmd_encoder_use(args: argparse.Namespace) -> int:
    from .config import check_settings, check_trained_threshold, load_settings, save_settings
    from .encoder import load_encoder, load_run_encoder
    from .encoder.installed import install, read_run

    from .encoder import BUILTIN, builtin_threshold

    settings = load_settings()
    if args.run in BUILTIN:
        new_id, run_info = BUILTIN[args.run], None
        threshold = builtin_threshold(new_id)
    else:
        run_info = read_run(args.run)
        new_id, threshold = run_info.encoder_id, run_info.threshold
    with _gallery() as gallery:
        people = gallery.people()
        print(f"gallery encoder: {gallery.encoder_id} -> {new_id}; {len(people)} people to re-encode")
        print(f"match threshold: {_threshold_text(settings, gallery.encoder_id)} -> {threshold:.4f}"
              + ("" if run_info is None else " (chosen on the training people; calibrate it on your own pairs)"))
        missing = gallery.without_chips()
        if missing:
            raise AccessctlError(
                f"{len(missing)} people were enrolled without a stored face (imported from an old export): "
                + ", ".join(p.employee_id for p in missing[:10]) + "; re-enroll or remove them first"
            )
        if args.dry_run:
            return 0
        if gallery.encoder_id == new_id:
            print("the gallery already uses this encoder; nothing to do")
            return 0
        if not _confirm(args, "re-encode every enrolled person and switch?"):
            print("gallery unchanged")
            return EXIT_REFUSED
        encoder = load_encoder(new_id) if run_info is None else load_run_encoder(args.run)
        # A built-in encoder runs at its own default; a run at the threshold it was trained with.
        settings.match.threshold, settings.match.encoder = (0.0, "") if run_info is None else (round(threshold, 4), new_id)
        check_settings(settings)  # the configuration it will write, before anything is written
        check = None
        if run_info is not None:
            unit = bool(run_info.normalize)

            def check(embeddings: np.ndarray, person_ids: np.ndarray) -> None:
                check_trained_threshold(threshold, embeddings, person_ids, unit=unit)
                install(args.run)  # validated, before the gallery's write: a failed write leaves only unused files
        n = gallery.reencode(new_id, encoder.encode, check)
    save_settings(settings)
    print(f"re-encoded {n} template(s) of {len(people)} people with {new_id}; threshold {threshold:.4f}")
    print("restart running kiosks: they refuse everyone until they load the new encoder")
    return 0


def cmd_encoder_fit_head(args: argparse.Namespace) -> int:
    from .evaluate import pair_embeddings, verification_metrics
    from .pairhead import fit_head, same_probability, save_head

    encoder = _eval_encoder(args)
    pe = pair_embeddings(args.pairs, encoder=encoder)
    ok = ~pe.failed
    head = fit_head(pe.a[ok], pe.b[ok], pe.same[ok])
    score = np.where(pe.failed, np.inf, 1.0 - same_probability(head, pe.a, pe.b))
    m = verification_metrics(score, pe.same, pe.failed, 0.5)
    print(f"fitted on {int(ok.sum())} pairs ({int(pe.failed.sum())} without a face); on these pairs: "
          f"accuracy {m['accuracy']:.4f} at P(same) >= 0.5, EER {m['eer']:.4f}")
    path = save_head(encoder.encoder_id, head)
    print(f"head for encoder {encoder.encoder_id} written to {path}; use it with --method binary")
    return 0


def cmd_encoder_show(args: argparse.Namespace) -> int:
    from .config import load_settings
    from .encoder.installed import encoders_dir
    from .gallery import recorded_encoder
    from .pairhead import head_path

    active = recorded_encoder()
    installed = sorted(d.name for d in encoders_dir().iterdir() if d.is_dir()) if encoders_dir().is_dir() else []
    print(f"gallery encoder: {active}")
    print(f"match threshold: {_threshold_text(load_settings(), active)}")
    print(f"binary head: {'yes' if head_path(active).is_file() else 'none (accessctl encoder fit-head)'}")
    if installed:
        print("installed: " + ", ".join(installed))
    return 0


def cmd_encoder_report(args: argparse.Namespace) -> int:
    from .training.report import FIGURES, report

    doc = report(args.runs)
    if args.json:
        print(json.dumps(doc))
        return 0

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    print(f"{'run':40s} {'loss':12s} {'split':>5s} {'10-fold':>8s} {'at thr':>7s} {'unwhit':>7s} {'head':>6s}")
    for r in doc["runs"]:
        print(f"{r['run'][-40:]:40s} {r['loss']:12s} {r['split_seed']:5d} {pct(r['accuracy_10fold']):>8s} "
              f"{pct(r['accuracy_at_threshold']):>7s} {pct(r['before_whitening_10fold']):>7s} {pct(r['head_10fold']):>6s}")
    for loss, summary in doc["summary"].items():
        for stat in ("mean", "sd", "min", "max"):
            cells = [pct(summary[f][stat]) if f in summary else "-" for f in FIGURES]
            print(f"{stat:40s} {loss:12s} {'':5s} {cells[0]:>8s} {cells[1]:>7s} {cells[2]:>7s} {cells[3]:>6s}")
    splits = [(r["loss"], r["split_seed"]) for r in doc["runs"]]
    if len(set(splits)) < len(splits):
        print("note: some runs hold out the same people (same split seed); their spread is the training's, not the split's")
    return 0


def cmd_liveness_train(args: argparse.Namespace) -> int:
    import torch

    from .config import cpu_threads, load_settings
    from .liveness.train import LivenessTrainConfig, train

    torch.set_num_threads(cpu_threads(load_settings()))
    cfg = LivenessTrainConfig(clips=args.clips, out=args.out, steps=args.steps, batch=args.batch, seed=args.seed,
                              cv_by=args.cv_by or "", val_sources=[s for s in (args.val_sources or "").split(",") if s])
    result = train(cfg, log=lambda line: None if line.startswith("reading") else print(line, file=sys.stderr))
    print(f"trained on {len(result['train_sources'])} sources ({result['clips']} clips) in "
          f"{result['train_seconds']:.0f} s; threshold {result['threshold']:.3f}")
    if "cv" in result:
        print(liveness_cv_table(result["cv"]))
    if "validation" in result:
        v = result["validation"]
        apcer = ", ".join(f"{k} {x:.2%}" for k, x in v["apcer"].items())
        print(f"validation ({', '.join(result['validation_sources'])}): {v['presentations']} presentations, "
              f"APCER {apcer}, BPCER {v['bpcer']:.2%}, ACER {v['acer']:.2%}, AUC {v['auc']:.4f}")
    print(f"model written to {Path(args.out) / 'liveness.pt'} with {Path(args.out) / 'liveness.json'}")
    return 0


def liveness_cv_table(cv: dict) -> str:
    """The leave-one-source-out report: per held-out source, then pooled, per method."""
    methods = list(cv)
    sources = sorted(cv[methods[0]]["sources"])
    lines = ["held-out source".ljust(58) + "".join(f"{m:>22s}" for m in methods),
             " " * 58 + "".join(f"{'n  APCER  BPCER  err':>22s}" for _ in methods)]

    def cell(m: dict) -> str:
        apcer = max(m["apcer"].values()) if m["apcer"] else float("nan")
        return f"{m['presentations']:>4d} {apcer:6.1%} {m['bpcer']:6.1%} {m.get('error', m['acer']):5.1%}"

    for src in sources:
        lines.append(src[:57].ljust(58) + "".join(f"{cell(cv[m]['sources'][src]):>22s}" for m in methods))
    lines.append("")
    for m in methods:
        p = cv[m]["pooled"]
        apcer = ", ".join(f"{k} {x:.2%}" for k, x in p["apcer"].items())
        lines.append(f"{m}: threshold {cv[m]['threshold']:.3f}; pooled over {p['presentations']} presentations: "
                     f"APCER {apcer}; BPCER {p['bpcer']:.2%}; ACER {p['acer']:.2%}; AUC {p['auc']:.4f}; "
                     f"worst source {cv[m]['worst_source']} ({cv[m]['worst_error']:.1%})")
    return "\n".join(lines)


def cmd_liveness_eval(args: argparse.Namespace) -> int:
    from .evaluate import pad_metrics
    from .liveness import PRESENTATION_S, load_liveness, score_clip
    from .liveness.clips import read_clip_list

    model = load_liveness(args.model)
    clips = read_clip_list(args.clips)
    scores: list[float | None] = []
    labels: list[bool] = []
    attacks: list[str] = []
    for clip in clips:
        got = score_clip(model, clip.path)
        scores += got
        labels += [clip.live] * len(got)
        attacks += [clip.attack] * len(got)
        if not args.json:
            shown = " ".join("-" if s is None else f"{s:.3f}" for s in got)
            accepted = sum(s is not None and s >= model.threshold for s in got)
            print(f"{clip.label:>5} {clip.attack:<7} live {accepted}/{len(got)}  P(live) {shown}  {clip.path}")
    m = pad_metrics(scores, labels, attacks, model.threshold)
    m["presentations"], m["clips"] = m["clips"], len(clips)
    lines = [
        f"clips: {m['clips']}, presentations: {m['presentations']} (at most {PRESENTATION_S:.0f} s each, "
        f"a new track each), no face found in: {m['no_face']}",
        "APCER: " + ", ".join(f"{k} {v:.2%}" for k, v in m["apcer"].items()),
        f"BPCER: {m['bpcer']:.2%}",
        f"ACER: {m['acer']:.2%}",
        f"AUC: {m['auc']:.4f}, EER: {m['eer']:.2%}",
        f"threshold: {m['threshold']:.3f} (P(live) at or above it is live)",
    ]
    if not args.json:
        print("\n".join(lines))
    else:
        print(json.dumps(m))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if not args.headless:
        from .gui.app import run_kiosk

        return run_kiosk(args.source, settings, realtime=not args.every_frame, loop=args.loop,
                         fullscreen=args.fullscreen or settings.kiosk.fullscreen)
    from .audit import AuditLog
    from .capture import FrameFeed
    from .runner import Runner, print_json

    with _gallery() as gallery, AuditLog(kiosk=settings.kiosk.name) as audit:
        runner = Runner(gallery, settings, audit, print_json)
        feed = FrameFeed(args.source, realtime=args.realtime, loop=args.loop, on_status=runner.feed_status)
        stats = runner.run(feed)
    fps = stats.frames / stats.seconds if stats.seconds else 0.0
    dropped = f", {feed.stats.dropped} dropped to stay current" if feed.stats.dropped else ""
    print(f"accessctl: {stats.frames} frames, {stats.decisions} decisions, {fps:.1f} frames/s{dropped}", file=sys.stderr)
    if stats.frames == 0:  # a source that yields nothing is a failure, not a quiet success
        print("accessctl: error: no frame could be read from the source", file=sys.stderr)
        return 2
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import tempfile

    from .config import load_settings
    from .demo import prepare_demo

    with tempfile.TemporaryDirectory(prefix="accessctl-demo-") as home:
        sources, pin = prepare_demo(Path(home))
        print(f"accessctl demo: a throwaway home in {home} (deleted afterwards); Pair One is enrolled from one frame "
              f"of {Path(sources[0]).name}; the admin PIN is {pin}", file=sys.stderr)
        settings = load_settings()
        if not args.headless:
            from .gui.app import run_kiosk

            return run_kiosk(sources, settings, realtime=True, loop=True, fullscreen=args.fullscreen)
        from .audit import AuditLog
        from .capture import FrameFeed
        from .runner import Runner, print_json

        with _gallery() as gallery, AuditLog(kiosk=settings.kiosk.name) as audit:
            runner = Runner(gallery, settings, audit, print_json)
            runner.run(FrameFeed(sources, on_status=runner.feed_status))
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    from .audit import AuditLog, to_csv

    since = args.since
    if since and since[:-1].isdigit() and since[-1] in "smhd":
        import datetime as dt

        seconds = int(since[:-1]) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[since[-1]]
        try:
            since = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")
            since = since.replace("+00:00", "Z")
        except OverflowError:  # further back than the calendar goes: everything
            since = None
    with AuditLog() as audit:
        rows = audit.query(since=since, person=args.person)
    if args.csv:
        sys.stdout.write(to_csv(rows))
    else:
        for r in rows:
            who = f"{r['name']} ({r['person_id']})" if r["person_id"] else "-"
            print(f"{r['time']} {r['kiosk']} {r['event']:<8} {r['reason'] or '':<8} {who}")
    return 0


def cmd_admin_set_pin(args: argparse.Namespace) -> int:
    import getpass

    from .adminpin import AdminPin

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
    from .config import config_path, settings_toml

    print(f"# {config_path()}{'' if config_path().exists() else ' (not written yet: these are the defaults)'}")
    print(settings_toml(_settings(args)), end="")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .config import check_threshold, load_settings, save_settings
    from .evaluate import Calibration, pair_distances, threshold_for_far

    settings = load_settings()
    encoder = _eval_encoder(args)
    cal = threshold_for_far(pair_distances(args.pairs, encoder=encoder), args.far)
    print(f"pairs: {cal.genuine_pairs} same-person, {cal.impostor_pairs} different-person")
    print(f"threshold for FAR <= {args.far:g}: {cal.threshold:.4f} (now {_threshold_text(settings, encoder.encoder_id)})")
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
        raise AccessctlError(f"not written: {cal.impostor_pairs} different-person pairs, at least {needed} needed for "
                             f"a FAR of {args.far:g}; add pairs, or pass --accept-risk to write it anyway")
    check_threshold(cal.threshold, encoder.encoder_id)  # never written above the encoder's ceiling
    if not _confirm(args, "write this threshold to the configuration?"):
        print("configuration unchanged")
        return EXIT_REFUSED
    settings.match.threshold, settings.match.encoder = round(cal.threshold, 4), encoder.encoder_id
    path = save_settings(settings)
    print(f"threshold {settings.match.threshold} for encoder {encoder.encoder_id} written to {path}")
    return 0


def cmd_bench_kiosk(args: argparse.Namespace) -> int:
    import os
    import tempfile

    from .bench import run_kiosk_bench

    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="accessctl-bench-") as tmp:
        if args.files:
            sources = args.files
        else:
            from .demo import prepare_demo

            sources, _ = prepare_demo(Path(tmp))
        r = run_kiosk_bench(sources)
    print(f"sources: {', '.join(r['sources'])}")
    print(f"ran {r['seconds']} s: camera {r['capture_fps']} fps, preview {r['preview_fps']} fps, "
          f"inference {r['inference_fps']} fps, {r['frames_dropped']} of {r['frames_captured']} frames dropped")
    if r["latency_ms"]:
        print(f"latency, capture to result: median {r['latency_ms']['median_ms']:.1f} ms, "
              f"p95 {r['latency_ms']['p95_ms']:.1f} ms (pipeline {r['pipeline_ms']['median_ms']:.1f} ms median)")
    f2d = r["face_to_decision_s"]
    if f2d:
        print(f"a face's first frame to its decision: median {float(np.median(f2d)):.2f} s, max {max(f2d):.2f} s "
              f"({len(f2d)} decisions)")
    print(f"decisions: {', '.join(r['decisions']) or 'none'}")
    print(f"GUI thread longest stall: {r['gui_longest_stall_ms']:.1f} ms")
    if args.json:
        print(json.dumps(r))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    if args.kiosk:
        return cmd_bench_kiosk(args)

    result = run_bench([Path(p) for p in args.files] or None)
    print(f"frames: {result['frames']}, faces: {result['faces']}, torch threads: {result['threads']}")
    print(f"{'stage':<28} {'median ms':>10} {'p95 ms':>10}")
    for name, s in result["stages"].items():
        print(f"{name:<28} {s['median_ms']:>10.3f} {s['p95_ms']:>10.3f}")
    if "pipeline_per_frame" in result["stages"]:
        print(f"headless pipeline: {1000 / result['stages']['pipeline_per_frame']['median_ms']:.0f} frames/s (median)")
    print(f"peak memory: {result['peak_rss_mb_pipeline']:.0f} MB (pipeline), {result['peak_rss_mb_total']:.0f} MB (with 1M templates)")
    if args.json:
        print(json.dumps(result))
    return 0


# -- parser --------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accessctl", description="Face access control with liveness detection.")
    parser.add_argument("--version", action="version", version=f"accessctl {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def threshold_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--threshold", type=float, help="match threshold (Euclidean distance; default from config, else the encoder's: SFace 1.0, dlib 0.6)")

    def method_opt(p: argparse.ArgumentParser) -> None:
        p.add_argument("--method", choices=["distance", "binary"], default="distance",
                       help="distance threshold (default) or the fitted binary head's P(same)")

    p = sub.add_parser("enroll", help="enroll a person from one or more photos")
    p.add_argument("--employee-id", required=True, help="unique employee id")
    p.add_argument("--name", required=True, help="display name")
    p.add_argument("--face", type=int, help="which face to use when a photo has several (1 = leftmost)")
    p.add_argument("--append", action="store_true", help="add templates to an already enrolled employee id")
    threshold_opt(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_enroll)

    p = sub.add_parser("verify", help="1:1 - is the face in IMAGE the claimed employee? (exit 0 yes, 1 no)")
    p.add_argument("--employee-id", required=True)
    p.add_argument("--face", type=int, help="which face to use when the photo has several (1 = leftmost)")
    p.add_argument("--json", action="store_true")
    method_opt(p)
    threshold_opt(p)
    p.add_argument("image", metavar="IMAGE")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("identify", help="1:N - who are the faces in these images?")
    p.add_argument("--json", action="store_true", help="one JSON object per face")
    threshold_opt(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.set_defaults(func=cmd_identify)

    g = sub.add_parser("gallery", help="list and manage enrolled people")
    gsub = g.add_subparsers(dest="gallery_cmd", required=True, metavar="ACTION")
    q = gsub.add_parser("list", help="everyone enrolled")
    q.add_argument("--json", action="store_true")
    for name, text in (("show", "one person and their templates"), ("enable", "let a person in again"),
                       ("disable", "stop matching a person without deleting them")):
        gsub.add_parser(name, help=text).add_argument("employee_id")
    q = gsub.add_parser("remove", help="delete a person and their templates")
    q.add_argument("employee_id")
    q.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    q = gsub.add_parser("rename", help="change a person's display name")
    q.add_argument("employee_id")
    q.add_argument("name")
    q = gsub.add_parser("export", help="write people and templates to a JSON file")
    q.add_argument("file")
    q = gsub.add_parser("import", help="add people and templates from an exported file")
    q.add_argument("file")
    q.add_argument("--skip-existing", action="store_true", help="skip employee ids already enrolled instead of refusing")
    q.add_argument("--without-faces", action="store_true",
                   help="import templates that carry no stored face (old exports), which nothing can check")
    g.set_defaults(func=cmd_gallery)

    e = sub.add_parser("eval", help="measure accuracy")
    esub = e.add_subparsers(dest="eval_cmd", required=True, metavar="WHAT")
    q = esub.add_parser("pairs", help="face verification on a pair list (CSV a,b,same)")
    q.add_argument("pairs", metavar="PAIRS.csv")
    q.add_argument("--json", action="store_true", help="last line: the figures as one JSON object")
    q.add_argument("--plot", metavar="ROC.png", help="write the ROC curve")
    q.add_argument("--encoder", metavar="sface|dlib|RUN_DIR",
                   help="evaluate a built-in encoder or a training run instead of the gallery's encoder")
    method_opt(q)
    threshold_opt(q)
    q.set_defaults(func=cmd_eval_pairs)

    q = esub.add_parser("make-pairs", help="write a pair list from a folder with one folder of images per person, "
                        "or from the live frame folders of clip lists (one person per source)")
    q.add_argument("folder", nargs="?")
    q.add_argument("--clips", action="append", default=[], metavar="CLIPS.csv",
                   help="a liveness clip list (repeatable): its live frame folders, one person per source")
    q.add_argument("--frames-per-clip", type=int, default=3, metavar="N", help="frames taken from each live clip")
    q.add_argument("--exclude-source", action="append", default=[], metavar="SOURCE",
                   help="leave out a source whose clips show more than one person (repeatable)")
    q.add_argument("--out", required=True, metavar="PAIRS.csv")
    q.add_argument("--max-impostors", type=int, default=0, metavar="N", help="at most N different-person pairs per image")
    q.set_defaults(func=cmd_make_pairs)

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
    q.add_argument("--val-people", type=int, default=0, metavar="N",
                   help="hold out N people to choose the best epoch by (and to stop early)")
    q.add_argument("--test-people", type=int, default=0, metavar="N",
                   help="hold out N people from training and from every choice; measured once at the end")
    q.add_argument("--steps-per-epoch", type=int, default=0, metavar="S", help="batches per epoch (default: one pass)")
    q.add_argument("--id-weight", type=float, default=0.0, metavar="W",
                   help="add W x an identity loss over the training people (cosine softmax); 0 = off")
    q.add_argument("--no-whiten", action="store_true",
                   help="leave out the small net's within-class whitening, fitted on the training people at the end")
    q.add_argument("--patience", type=int, default=5, help="stop after this many epochs without improvement")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--split-seed", type=int, default=None, metavar="S",
                   help="which people --test-people/--val-people hold out (default: --seed); "
                        "vary --seed alone to see the spread between runs on the same people")
    q.add_argument("--device", default="cpu", metavar="DEV",
                   help="where the training steps run: cpu (default) or cuda on a machine with a GPU")
    q.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    q.set_defaults(func=cmd_encoder_train)
    q = encsub.add_parser("use", help="switch the gallery to another encoder, re-encoding everyone")
    q.add_argument("run", metavar="sface|dlib|RUN_DIR",
                   help="a built-in pretrained encoder (sface, dlib; 'pretrained' is dlib) or a finished `encoder train` folder")
    q.add_argument("--yes", action="store_true", help="switch without asking")
    q.add_argument("--dry-run", action="store_true", help="only say what would change")
    q.set_defaults(func=cmd_encoder_use)
    q = encsub.add_parser("fit-head", help="fit the binary verification head (logistic regression) on a pair list")
    q.add_argument("--pairs", required=True, metavar="PAIRS.csv")
    q.set_defaults(func=cmd_encoder_fit_head)
    q = encsub.add_parser("report", help="the held-out figures of finished runs side by side, with mean and worst")
    q.add_argument("runs", nargs="+", metavar="RUN_DIR")
    q.add_argument("--json", action="store_true", help="one JSON object: every run's figures and the summary")
    q.set_defaults(func=cmd_encoder_report)
    q = encsub.add_parser("show", help="the gallery's encoder, threshold and head")
    q.set_defaults(func=cmd_encoder_show)

    lv = sub.add_parser("liveness", help="train or evaluate the liveness (anti-spoofing) model")
    lsub = lv.add_subparsers(dest="liveness_cmd", required=True, metavar="ACTION")
    q = lsub.add_parser("train", help="train on clip lists (path,label,attack) of videos or frame folders")
    q.add_argument("--clips", required=True, action="append", metavar="CLIPS.csv", help="may be given more than once")
    q.add_argument("--out", required=True, metavar="DIR", help="where liveness.pt and liveness.json go")
    q.add_argument("--steps", type=int, default=300)
    q.add_argument("--batch", type=int, default=64, help="clip windows per step")
    q.add_argument("--cv-by", choices=["source"],
                   help="first hold out each source in turn and report per source; the threshold comes from this")
    q.add_argument("--val-sources", metavar="A,B,...", help="sources held out of training, to set the threshold on")
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_liveness_train)
    q = lsub.add_parser("eval", help="ISO/IEC 30107-3 figures on a clip list")
    q.add_argument("clips", metavar="CLIPS.csv")
    q.add_argument("--model", metavar="DIR", help="a trained model folder (default: the shipped one)")
    q.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    q.set_defaults(func=cmd_liveness_eval)

    p = sub.add_parser("run", help="the kiosk: a camera, a video file or a folder of frames through the access pipeline")
    p.add_argument("--source", required=True, action="append", metavar="SOURCE",
                   help="camera index (0), video file or frame folder; give it again to play files one after another")
    p.add_argument("--headless", action="store_true", help="no window: one JSON object per event on stdout")
    p.add_argument("--loop", action="store_true", help="play the video files again when they end")
    p.add_argument("--fullscreen", action="store_true", help="kiosk mode: full screen; leaving needs the admin PIN")
    pace = p.add_mutually_exclusive_group()
    pace.add_argument("--realtime", action="store_true",
                      help="headless: play files at their own frame rate, dropping frames the pipeline cannot keep up "
                           "with, as a camera does (the window always does)")
    pace.add_argument("--every-frame", action="store_true",
                      help="window: process every frame of a video file (reproducible; the preview runs at inference speed)")
    threshold_opt(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="the kiosk on the shared data's videos (live, replayed on a phone, a stranger), "
                                    "in a throwaway home")
    p.add_argument("--headless", action="store_true", help="no window: one JSON object per event on stdout")
    p.add_argument("--fullscreen", action="store_true", help="kiosk mode")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("events", help="read the audit log")
    p.add_argument("--since", help="ISO time (2026-11-22T08:00) or an age: 30m, 12h, 7d")
    p.add_argument("--person", metavar="EMPLOYEE_ID")
    p.add_argument("--csv", action="store_true")
    p.set_defaults(func=cmd_events)

    a = sub.add_parser("admin", help="the kiosk's admin PIN")
    asub = a.add_subparsers(dest="admin_cmd", required=True, metavar="ACTION")
    q = asub.add_parser("set-pin", help="set or change the admin PIN (asks at the terminal)")
    q.add_argument("--stdin", action="store_true",
                   help="read the PIN from standard input (when one is set: the current PIN, then the new one)")
    q.set_defaults(func=cmd_admin_set_pin)

    c = sub.add_parser("config", help="the configuration")
    csub = c.add_subparsers(dest="config_cmd", required=True, metavar="ACTION")
    csub.add_parser("show", help="every setting with its current value").set_defaults(func=cmd_config_show)

    p = sub.add_parser("calibrate", help="choose the match threshold for a target false-accept rate")
    p.add_argument("--pairs", required=True, metavar="PAIRS.csv", help="the site's own pair list (a,b,same)")
    p.add_argument("--far", type=float, required=True, help="target false-accept rate, e.g. 0.001")
    p.add_argument("--yes", action="store_true", help="write the threshold without asking")
    p.add_argument("--dry-run", action="store_true", help="only show the threshold")
    p.add_argument("--accept-risk", action="store_true",
                   help="write it even from too few different-person pairs to measure the target FAR")
    p.set_defaults(func=cmd_calibrate)

    p = sub.add_parser("bench", help="per-stage timings on real frames")
    p.add_argument("files", nargs="*", metavar="FILE", help="images or videos (default: frames from ../shared/data)")
    p.add_argument("--json", action="store_true", help="last line: the timings as one JSON object")
    p.add_argument("--kiosk", action="store_true",
                   help="time the running kiosk window instead, on FILEs (videos) played at their own pace "
                        "(default: the demo videos, in a throwaway home)")
    p.set_defaults(func=cmd_bench)
    return parser


ADMIN_DETAIL_ARGS = ("employee_id", "name", "file", "run", "pairs", "far", "threshold", "images", "skip_existing",
                     "append", "yes", "accept_risk", "source", "without_faces")


def admin_action(args: argparse.Namespace) -> str | None:
    """The admin change a command line makes, or None for one that only reads."""
    func, dry = args.func, getattr(args, "dry_run", False)
    if func is cmd_enroll:
        return "enroll"
    if func is cmd_gallery and args.gallery_cmd in ("remove", "rename", "enable", "disable", "export", "import"):
        return f"gallery {args.gallery_cmd}"  # export too: it copies every template out
    if func is cmd_encoder_use and not dry:
        return "encoder use"
    if func is cmd_encoder_fit_head:
        return "encoder fit-head"
    if func is cmd_calibrate and not dry:
        return "calibrate"
    if func is cmd_admin_set_pin:
        return "set-pin"
    if func is cmd_run and args.threshold is not None:
        return "run --threshold"
    return None


def _admin_gate(args: argparse.Namespace, action: str) -> None:
    """Before a CLI change: the PIN where ``[admin] require_pin_for_cli``, then an
    ``admin`` event naming the OS user. An unloggable change is not made."""
    import getpass

    from .audit import log_admin
    from .config import load_settings

    settings = load_settings()
    if settings.admin.require_pin_for_cli and action != "set-pin":  # set-pin asks for the current PIN itself
        from .adminpin import AdminPin

        pin = AdminPin()
        if not pin.is_set():
            raise AccessctlError("[admin] require_pin_for_cli is on but no admin PIN is set; run `accessctl admin set-pin`")
        given = os.environ.get("ACCESSCTL_ADMIN_PIN")
        if given is None:
            if not sys.stdin.isatty():
                raise AccessctlError(f"{action} needs the admin PIN ([admin] require_pin_for_cli): run it at a terminal "
                                     "or set ACCESSCTL_ADMIN_PIN")
            given = getpass.getpass("admin PIN: ")
        check = pin.check(given)
        if not check.ok:
            log_admin(f"{action} refused", None, {"why": "wrong PIN"}, kiosk=settings.kiosk.name, via="cli")
            raise AccessctlError(f"too many wrong PINs: try again in {check.locked_for_s:.0f} s"
                                 if check.locked_for_s > 0 else "wrong admin PIN; nothing changed")
    detail = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()
              if k in ADMIN_DETAIL_ARGS and v not in (None, False, [])}
    try:
        log_admin(action, None, detail, kiosk=settings.kiosk.name, via="cli")
    except AccessctlError as exc:
        raise AccessctlError(f"{action} not done: the audit log cannot record it ({exc})") from None


def _admin_failed(action: str, why: str) -> None:
    """The change logged as begun did not happen: say so in the log too (best effort)."""
    from .audit import log_admin

    try:
        log_admin(f"{action} failed", None, {"error": why}, via="cli")
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


if __name__ == "__main__":
    sys.exit(main())
