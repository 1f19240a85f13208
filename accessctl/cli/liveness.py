"""``liveness train|eval``: the anti-spoofing model, trained and judged across sources."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any


def cmd_liveness_train(args: argparse.Namespace) -> int:
    import torch

    from accessctl.config import cpu_threads, load_settings
    from accessctl.training.liveness import LivenessTrainConfig, train

    torch.set_num_threads(cpu_threads(load_settings()))
    given: dict[str, Any] = {k: v for k, v in (("steps", args.steps), ("batch", args.batch), ("tune_steps", args.tune_steps),
                               ("tune_anchor", args.tune_anchor), ("tune_exposure", args.tune_exposure),
                               ("tune_mix", args.tune_mix),
                               ("tune_from", "" if args.tune_from == "none" else args.tune_from))
             if v is not None}
    cfg = LivenessTrainConfig(clips=args.clips, out=args.out, seed=args.seed, cv_by=args.cv_by or "",
                              val_sources=[s for s in (args.val_sources or "").split(",") if s], **given)
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
    from accessctl.config import load_settings
    from accessctl.evaluation.clips import read_clip_list, score_clip
    from accessctl.evaluation.pad import pad_metrics
    from accessctl.liveness import PRESENTATION_S, load_liveness
    from accessctl.thresholds import liveness_threshold

    model = load_liveness(args.model)
    model = dataclasses.replace(model, threshold=liveness_threshold(load_settings(), model.threshold))  # as the door runs it
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    lv = sub.add_parser("liveness", help="train or evaluate the liveness (anti-spoofing) model")
    lsub = lv.add_subparsers(dest="liveness_cmd", required=True, metavar="ACTION")
    q = lsub.add_parser("train", help="train on clip lists (path,label,attack) of videos or frame folders")
    q.add_argument("--clips", required=True, action="append", metavar="CLIPS.csv", help="may be given more than once")
    q.add_argument("--out", required=True, metavar="DIR", help="where liveness.pt and liveness.json go")
    # Defaults (None here) are the recipe's, in LivenessTrainConfig: one place for them.
    q.add_argument("--tune-from", metavar="LAYER",
                   help="the first CNN layer fine-tuned, with all after it: conv_5 (the recipe), conv_6_sep, "
                        "conv_6_dw, or none (the pretrained CNNs frozen)")
    q.add_argument("--tune-steps", type=int, help="fine-tuning steps (the recipe: 200)")
    q.add_argument("--tune-anchor", type=float,
                   help="weight of the pull towards the pretrained weights while fine-tuning (the recipe: 0.01)")
    q.add_argument("--tune-mix", type=float, metavar="ALPHA",
                   help="ship the weights ALPHA of the way from the pretrained CNNs to the fine-tuned ones, 0 to 1 "
                        "(the recipe: 0.5; 1 ships them as tuned)")
    q.add_argument("--tune-exposure", type=int, metavar="N",
                   help="fine-tune on each frame as recorded and under N random exposures (gain, gamma, colour "
                        "cast), so that brightness is no cue (the recipe: 0; measured with 3, it did worse)")
    q.add_argument("--steps", type=int,
                   help="training steps of the GRU head on top (the recipe: 0, the CNNs' score averaged over the window)")
    q.add_argument("--batch", type=int, help="frames per fine-tuning step, clip windows per head step (64)")
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

