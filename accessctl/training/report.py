"""The held-out figures of finished `encoder train` runs, side by side.

Which people are held out moves a figure more than most changes to a recipe (on ORL, 10
unseen people of 40: from 87% to 96% for the same loss), so a recipe is judged by its
mean and worst case over several splits, never by one run. This reads what each run
already wrote in its ``config.json``; it trains and embeds nothing.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path

from accessctl.errors import AccessctlError

FIGURES = ("accuracy_10fold", "accuracy_at_threshold", "before_whitening_10fold", "head_10fold")


@dataclass
class RunFigures:
    run: str
    loss: str
    seed: int
    split_seed: int
    test_people: list[str]
    accuracy_10fold: float  # by distance, each tenth of the pairs at the threshold best for the rest
    accuracy_at_threshold: float  # by distance, at the threshold the run ships with
    before_whitening_10fold: float | None
    head_10fold: float | None  # --loss binary: by the head's probability


def run_figures(run_dir: str | Path) -> RunFigures:
    """The test people's figures of one finished run; a clear error for anything else."""
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise AccessctlError(f"{run_dir}: not an `encoder train` folder (no config.json)")
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise AccessctlError(f"{path}: unreadable ({e})") from None
    final = doc.get("final")
    if not isinstance(final, dict):
        raise AccessctlError(f"{run_dir}: the run has not finished (no final figures); continue it with --resume")
    test = final.get("test")
    if not isinstance(test, dict) or "accuracy_10fold" not in test:
        raise AccessctlError(f"{run_dir}: no people were held out for testing (train with --test-people N)")
    seed = int(doc.get("seed", 0))
    split_seed = doc.get("split_seed")
    return RunFigures(
        run=str(run_dir),
        loss=str(doc.get("loss", "?")),
        seed=seed,
        split_seed=seed if split_seed is None else int(split_seed),
        test_people=list(final.get("test_people", [])),
        accuracy_10fold=float(test["accuracy_10fold"]),
        accuracy_at_threshold=float(test["accuracy"]),
        before_whitening_10fold=final.get("test_unwhitened", {}).get("accuracy_10fold"),
        head_10fold=final.get("test_binary", {}).get("accuracy_10fold"),
    )


def summarize(runs: list[RunFigures]) -> dict[str, dict[str, float]]:
    """Mean, standard deviation (0 for one run), worst and best of each figure the runs have."""
    out: dict[str, dict[str, float]] = {}
    for name in FIGURES:
        values = [v for v in (getattr(r, name) for r in runs) if v is not None]
        if values:
            out[name] = {
                "mean": statistics.fmean(values),
                "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
                "runs": len(values),
            }
    return out


def report(run_dirs: list[str | Path]) -> dict:
    """Every run's figures and, for each loss among them, their summary (a mean over
    different losses would say nothing), as one JSON-ready object."""
    if not run_dirs:
        raise AccessctlError("name at least one run folder")
    runs = [run_figures(d) for d in run_dirs]
    losses = sorted({r.loss for r in runs})
    return {
        "runs": [asdict(r) for r in runs],
        "summary": {loss: summarize([r for r in runs if r.loss == loss]) for loss in losses},
    }
