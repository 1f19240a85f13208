"""``liveness train|eval``: the anti-spoofing model, trained and judged across sources."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from accessctl.cli.common import READS
from accessctl.errors import AccessctlError


def _given(**options: Any) -> dict[str, Any]:
    """The options the command line set (the rest keep the recipe's defaults)."""
    return {k: v for k, v in options.items() if v is not None}


def cmd_liveness_train(args: argparse.Namespace) -> int:
    import torch

    from accessctl.config import cpu_threads, load_settings
    from accessctl.training.liveness import LivenessTrainConfig, train
    from accessctl.training.motion import MotionConfig

    torch.set_num_threads(cpu_threads(load_settings()))
    given = _given(
        batch=args.batch,
        tune_steps=args.tune_steps,
        tune_anchor=args.tune_anchor,
        tune_exposure=args.tune_exposure,
        tune_mix=args.tune_mix,
        tune_from="" if args.tune_from == "none" else args.tune_from,
    )
    cfg = LivenessTrainConfig(
        clips=args.clips,
        out=args.out,
        seed=args.seed,
        cv_by=args.cv_by or "",
        val_sources=[s for s in (args.val_sources or "").split(",") if s],
        cnn_from=args.cnn_from or "",
        **given,
    )
    motion_given = _given(
        steps=args.motion_steps,
        seeds=args.synthetic_seeds,
        frames=args.synthetic_frames,
        live_variants=args.live_variants,
        hidden=args.hidden,
        max_apcer=args.max_apcer,
        use_cnn=args.head_cnn or None,
    )
    if args.families:
        motion_given["families"] = [f for f in args.families.split(",") if f]
    if args.workers < 1:
        raise AccessctlError(f"--workers must be at least 1, not {args.workers}")
    motion = MotionConfig(clips=args.clips, out=args.out, seed=args.seed, workers=args.workers, **motion_given)
    result = train(cfg, motion, log=lambda line: print(line, file=sys.stderr))
    texture = result["texture"]
    if texture:
        print(
            f"texture: CNNs fine-tuned on {len(texture['train_sources'])} sources ({texture['clips']} clips) in "
            f"{texture['train_seconds']:.0f} s"
        )
        if "cv" in texture:
            print(liveness_cv_table(texture["cv"]))
        if "validation" in texture:
            v = texture["validation"]
            apcer = ", ".join(f"{k} {x:.2%}" for k, x in v["apcer"].items())
            print(
                f"validation ({', '.join(texture['validation_sources'])}): {v['presentations']} presentations, "
                f"APCER {apcer}, BPCER {v['bpcer']:.2%}, ACER {v['acer']:.2%}, AUC {v['auc']:.4f}"
            )
    else:
        print(f"texture: the CNNs and texture threshold of {args.cnn_from}")
    print(motion_table(result))
    print(f"model written to {Path(args.out) / 'liveness.pt'} with {Path(args.out) / 'liveness.json'}")
    return 0


def motion_table(result: dict) -> str:
    """The motion head's held-out report: per synthetic family and real attack type,
    per live source, for the new model and the one shipped before it."""
    cv = result["cv"]
    lines = [
        f"motion head: {result['clips']} clips as recorded, {result['made']} made from them, "
        f"{result['sources']} sources; threshold {result['threshold']:.3f} (lowest with every held-out family's "
        f"APCER within the bound; by source {cv['threshold_by_source']:.3f}, by family "
        f"{cv['threshold_by_family']:.3f})"
    ]
    lines.append(
        "time the door looks for evidence of life (held out by source): "
        + "; ".join(
            f"{k} s: threshold {v['threshold']:.3f}, live unsure {v['live_unsure']:.1%}, median decision "
            f"{'-' if v['decision_s']['median'] is None else format(v['decision_s']['median'], '.2f')} s"
            for k, v in cv["looks"].items()
        )
        + f" -> {cv['evidence_s']} s"
    )
    for how in ("source", "family"):
        f = cv[how]
        lines.append(f"held out by {how}:  {'family':<10s}{'n':>6s}{'APCER':>9s}{'before':>9s}")
        for fam, m in f["synthetic"].items():
            before = f.get("legacy", {}).get("synthetic", {}).get(fam, {}).get("apcer", float("nan"))
            lines.append(f"{'':18s}{fam:<10s}{m['presentations']:>6d}{m['apcer']:>9.1%}{before:>9.1%}")
        if how == "source":
            r, old = f["real"], f.get("legacy", {}).get("real")
            for kind, apcer in r["apcer"].items():
                was = old["apcer"].get(kind, float("nan")) if old else float("nan")
                lines.append(f"{'':18s}{kind:<10s}{'':>6s}{apcer:>9.1%}{was:>9.1%}   (real attacks)")
            lines.append(
                f"{'':18s}{'BPCER':<10s}{'':>6s}{r['bpcer']:>9.1%}{(old or {}).get('bpcer', float('nan')):>9.1%}"
                f"   ACER {r['acer']:.1%} (before {(old or {}).get('acer', float('nan')):.1%}), "
                f"AUC {r['auc']:.3f}"
            )
            for src, m in f["live_sources"].items():
                median = m["decision_s_median"]
                lines.append(
                    f"{'':18s}live {src[:40]:<40s}{m['presentations']:>4d} refused {m['bpcer']:6.1%}"
                    f"  decision {'-' if median is None else f'{median:.2f} s'}"
                )
            d = f["decision_s"]
            if d["median"] is not None:
                lines.append(
                    f"{'':18s}first frame to decision, live: median {d['median']:.2f} s, "
                    f"worst {d['worst']:.2f} s ({d['n']} grants)"
                )
    return "\n".join(lines)


def liveness_cv_table(cv: dict) -> str:
    """The leave-one-source-out report: per held-out source, then pooled, per method."""
    methods = list(cv)
    sources = sorted(cv[methods[0]]["sources"])
    lines = [
        "held-out source".ljust(58) + "".join(f"{m:>22s}" for m in methods),
        " " * 58 + "".join(f"{'n  APCER  BPCER  err':>22s}" for _ in methods),
    ]

    def cell(m: dict) -> str:
        apcer = max(m["apcer"].values()) if m["apcer"] else float("nan")
        return f"{m['presentations']:>4d} {apcer:6.1%} {m['bpcer']:6.1%} {m.get('error', m['acer']):5.1%}"

    for src in sources:
        lines.append(src[:57].ljust(58) + "".join(f"{cell(cv[m]['sources'][src]):>22s}" for m in methods))
    lines.append("")
    for m in methods:
        p = cv[m]["pooled"]
        apcer = ", ".join(f"{k} {x:.2%}" for k, x in p["apcer"].items())
        lines.append(
            f"{m}: threshold {cv[m]['threshold']:.3f}; pooled over {p['presentations']} presentations: "
            f"APCER {apcer}; BPCER {p['bpcer']:.2%}; ACER {p['acer']:.2%}; AUC {p['auc']:.4f}; "
            f"worst source {cv[m]['worst_source']} ({cv[m]['worst_error']:.1%})"
        )
    return "\n".join(lines)


def cmd_liveness_vote(args: argparse.Namespace) -> int:
    from accessctl.liveness.saved import vote_model

    if len(args.models) < 2:
        raise AccessctlError("a vote needs at least two models")
    if not 0.2 <= args.evidence_s <= 10.0:
        raise AccessctlError(f"--evidence-s {args.evidence_s:g}: between 0.2 and 10 seconds")
    model = vote_model([Path(m) for m in args.models], Path(args.out), args.evidence_s)
    print(f"{args.out}: {len(args.models)} motion heads voting, evidence of life looked for {model.evidence_s:g} s")
    return 0


def cmd_liveness_eval(args: argparse.Namespace) -> int:
    from accessctl.config import load_settings
    from accessctl.evaluation.clips import read_clip_list, score_clip
    from accessctl.evaluation.pad import pad_metrics
    from accessctl.liveness.saved import load_liveness
    from accessctl.liveness.verdict import PRESENTATION_S
    from accessctl.thresholds import liveness_threshold

    model = load_liveness(args.model)
    model = dataclasses.replace(
        model, threshold=liveness_threshold(load_settings(), model.threshold)
    )  # as the door runs it
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
            accepted = sum(s is not None and s >= model.motion_threshold for s in got)
            print(f"{clip.label:>5} {clip.attack:<7} live {accepted}/{len(got)}  score {shown}  {clip.path}")
    m = pad_metrics(scores, labels, attacks, model.motion_threshold)
    m["presentations"], m["clips"] = m["clips"], len(clips)
    lines = [
        f"clips: {m['clips']}, presentations: {m['presentations']} (at most {PRESENTATION_S:.0f} s each, "
        f"a new track each), no face found in: {m['no_face']}",
        "APCER: " + ", ".join(f"{k} {v:.2%}" for k, v in m["apcer"].items()),
        f"BPCER: {m['bpcer']:.2%}",
        f"ACER: {m['acer']:.2%}",
        f"AUC: {m['auc']:.4f}, EER: {m['eer']:.2%}",
        f"threshold: {m['threshold']:.3f} (a presentation is live when the motion head's P(live) held at or above "
        f"it while the texture (CNNs' P(live) at or above {model.threshold:.3f}) looked live)",
    ]
    if not args.json:
        print("\n".join(lines))
    else:
        print(json.dumps(m))
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    lv = sub.add_parser("liveness", help="train or evaluate the liveness (anti-spoofing) model")
    lsub = lv.add_subparsers(dest="liveness_cmd", required=True, metavar="ACTION")
    q = lsub.add_parser("train", help="train on clip lists (path,label,attack) of videos or frame folders")
    q.add_argument("--clips", required=True, action="append", metavar="CLIPS.csv", help="may be given more than once")
    q.add_argument("--out", required=True, metavar="DIR", help="where liveness.pt and liveness.json go")
    # Defaults (None here) are the recipe's, in LivenessTrainConfig: one place for them.
    q.add_argument(
        "--tune-from",
        metavar="LAYER",
        help="the first CNN layer fine-tuned, with all after it: conv_5 (the recipe), conv_6_sep, "
        "conv_6_dw, or none (the pretrained CNNs frozen)",
    )
    q.add_argument("--tune-steps", type=int, help="fine-tuning steps (the recipe: 200)")
    q.add_argument(
        "--tune-anchor",
        type=float,
        help="weight of the pull towards the pretrained weights while fine-tuning (the recipe: 0.01)",
    )
    q.add_argument(
        "--tune-mix",
        type=float,
        metavar="ALPHA",
        help="ship the weights ALPHA of the way from the pretrained CNNs to the fine-tuned ones, 0 to 1 "
        "(the recipe: 0.5; 1 ships them as tuned)",
    )
    q.add_argument(
        "--tune-exposure",
        type=int,
        metavar="N",
        help="fine-tune on each frame as recorded and under N random exposures (gain, gamma, colour "
        "cast), so that brightness is no cue (the recipe: 0; measured with 3, it did worse)",
    )
    q.add_argument(
        "--cnn-from",
        metavar="DIR",
        help="keep this model folder's CNN weights and texture threshold (e.g. the shipped "
        "accessctl/assets/liveness) instead of fine-tuning the CNNs again",
    )
    q.add_argument("--batch", type=int, help="frames per fine-tuning step (64)")
    q.add_argument("--motion-steps", type=int, help="training steps of the motion head (the recipe: 2000)")
    q.add_argument(
        "--families",
        metavar="A,B,...",
        help="synthetic attack families to train and judge on (the recipe: all of them)",
    )
    q.add_argument("--synthetic-seeds", type=int, help="synthetic clips per source clip and family (the recipe: 1)")
    q.add_argument("--synthetic-frames", type=int, help="frames per synthetic clip (the recipe: 45)")
    q.add_argument("--live-variants", type=int, help="re-delivered copies of each live clip (the recipe: 2)")
    q.add_argument("--hidden", type=int, help="the motion head's GRU units (the recipe: 16)")
    q.add_argument(
        "--max-apcer",
        type=float,
        help="the motion threshold keeps every held-out synthetic family's APCER within this (0.01)",
    )
    q.add_argument(
        "--head-cnn",
        action="store_true",
        help="let the motion head read the CNNs' per-frame logits too (the recipe: no)",
    )
    q.add_argument(
        "--cv-by",
        choices=["source"],
        help="first hold out each source in turn and report per source; the threshold comes from this",
    )
    q.add_argument("--val-sources", metavar="A,B,...", help="sources held out of training, to set the threshold on")
    q.add_argument(
        "--workers", type=int, default=1, help="processes for reading the clips and for the motion head's folds (1)"
    )
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_liveness_train, admin=READS)  # writes a model folder, not the door
    q = lsub.add_parser(
        "vote",
        help="one model whose motion heads vote: live only when every head says so (models trained with --cnn-from)",
    )
    q.add_argument("models", nargs="+", metavar="DIR", help="model folders written by 'liveness train'")
    q.add_argument("--out", required=True, metavar="DIR", help="where the voting model goes")
    q.add_argument(
        "--evidence-s", type=float, required=True, metavar="S", help="how long the door looks for evidence of life"
    )
    q.set_defaults(func=cmd_liveness_vote, admin=READS)  # writes a model folder, not the door
    q = lsub.add_parser("eval", help="ISO/IEC 30107-3 figures on a clip list")
    q.add_argument("clips", metavar="CLIPS.csv")
    q.add_argument("--model", metavar="DIR", help="a trained model folder (default: the shipped one)")
    q.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    q.set_defaults(func=cmd_liveness_eval, admin=READS)
