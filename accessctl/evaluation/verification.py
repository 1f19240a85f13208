"""Face verification figures on a pair list, through the same code as the kiosk.

A pair whose face cannot be found is never dropped: for accuracy it is an error,
whatever its label; for the ROC figures (EER, TAR at FAR) it is a rejection, which is
what the door does with it (a genuine user left outside, an impostor kept out).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from accessctl.errors import AccessctlError, ImageError
from accessctl.evaluation.lists import list_path, read_rows
from accessctl.frames.images import IMAGE_SUFFIXES, load_image
from accessctl.identity.encoders import FaceEncoder, load_encoder
from accessctl.vision.faces import analyzer, largest

if TYPE_CHECKING:
    from accessctl.identity.architectures import BinaryHead

FAR_TARGETS = (1e-2, 1e-3)


@dataclass(frozen=True)
class Pair:
    a: Path
    b: Path
    same: bool


@dataclass
class PairReport:
    pairs: int
    failed: int
    threshold: float
    accuracy: float
    best_accuracy: float
    best_threshold: float
    eer: float
    tar_at_far: dict[str, float]
    far: float = 0.0  # at the threshold: different-person pairs accepted (a missed face is a rejection)
    frr: float = 0.0  # at the threshold: same-person pairs refused
    failed_images: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        out = asdict(self)
        out.pop("failed_images")
        out["failed_images"] = len(self.failed_images)
        return out


def read_pairs(path: str | Path) -> list[Pair]:
    """Pairs from a CSV with header ``a,b,same``; paths relative to the CSV's folder."""
    path = Path(path)
    pairs = []
    for line, row in read_rows(path, ("a", "b", "same")):
        if row["same"] not in ("0", "1") or not row["a"] or not row["b"]:
            raise AccessctlError(f"{path}:{line}: expected two paths and same = 0 or 1")
        pairs.append(Pair(list_path(path, row["a"]), list_path(path, row["b"]), row["same"] == "1"))
    if not pairs:
        raise AccessctlError(f"{path}: no pairs")
    return pairs


def pairs_from_folders(root: str | Path, out: str | Path, *, max_impostors_per_image: int = 0) -> tuple[int, int]:
    """Write the pairs of a folder-per-person tree (see :func:`write_pairs`)."""
    root = Path(root)
    people = {
        d.name: sorted(f for f in d.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        for d in sorted(root.iterdir())
        if d.is_dir()
    }
    if sum(1 for v in people.values() if v) < 2:
        raise AccessctlError(f"{root}: need folders of at least two people with images")
    return write_pairs(people, out, max_impostors_per_image=max_impostors_per_image)


def pairs_from_clips(
    lists: Sequence[str | Path],
    out: str | Path,
    *,
    frames_per_clip: int = 3,
    exclude_sources: Sequence[str] = (),
    max_impostors_per_image: int = 0,
) -> tuple[int, int]:
    """Write pairs of webcam frames from clip lists: the live frame folders, one person per source.

    These are the faces a door sees (real webcams, rooms and light), unlike posed photos.
    ``frames_per_clip`` frames are taken evenly spread over each live clip, so that
    same-person pairs span the clip (and, where a source has two clips, two takes).
    Video clips are skipped: a pair list names image files. A source whose clips show
    more than one person (seen by eye) must be named in ``exclude_sources``: its pairs
    would be mislabelled.
    """
    from accessctl.evaluation.clips import read_clip_list

    if frames_per_clip < 2:
        raise AccessctlError("--frames-per-clip must be at least 2")
    people: dict[str, list[Path]] = {}
    for path in lists:
        for clip in read_clip_list(path):
            if not clip.live or not clip.path.is_dir() or clip.source in exclude_sources:
                continue
            frames = sorted(f for f in clip.path.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
            if not frames:
                continue
            picks = sorted({round(i * (len(frames) - 1) / (frames_per_clip - 1)) for i in range(frames_per_clip)})
            people.setdefault(clip.source, []).extend(frames[i] for i in picks)
    if len(people) < 2:
        raise AccessctlError(f"{', '.join(map(str, lists))}: need live frame folders of at least two sources")
    return write_pairs(people, out, max_impostors_per_image=max_impostors_per_image)


def write_pairs(people: dict[str, list[Path]], out: str | Path, *, max_impostors_per_image: int = 0) -> tuple[int, int]:
    """Write every same-person pair and the different-person pairs of ``people`` (name -> images).

    All genuine pairs are kept; impostor pairs are all pairs of images of different
    people, or at most ``max_impostors_per_image`` per image (deterministic, spread
    over the others) when that is non-zero. Paths are written relative to the CSV's
    folder. Returns (genuine, impostor) counts.
    """
    out = Path(out)
    people = {k: v for k, v in people.items() if v}
    images = [(name, f) for name, files in people.items() for f in files]
    genuine = [(a, b) for files in people.values() for i, a in enumerate(files) for b in files[i + 1 :]]
    impostor = []
    for i, (na, a) in enumerate(images):
        others = [b for nb, b in images[i + 1 :] if nb != na]
        if max_impostors_per_image and len(others) > max_impostors_per_image:
            step = len(others) / max_impostors_per_image
            others = [others[int(k * step)] for k in range(max_impostors_per_image)]
        impostor += [(a, b) for b in others]
    out.parent.mkdir(parents=True, exist_ok=True)
    base = out.resolve().parent

    def rel(p: Path) -> str:  # relative, so the list still works from another clone beside ../shared
        try:
            return os.path.relpath(p.resolve(), base)
        except ValueError:  # another drive on Windows
            return str(p.resolve())

    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["a", "b", "same"])
        w.writerows([(rel(a), rel(b), 1) for a, b in genuine] + [(rel(a), rel(b), 0) for a, b in impostor])
    return len(genuine), len(impostor)


def embed_files(
    paths: Sequence[Path], progress: Callable[[int, int], None] | None = None, encoder: FaceEncoder | None = None
) -> dict[Path, np.ndarray | None]:
    """Descriptor of the largest face in each image; None where no face is found.

    Unreadable files count as "no face" too, so one bad file cannot end an evaluation.
    """
    chips, owners = [], []
    result: dict[Path, np.ndarray | None] = {}
    for i, p in enumerate(paths):
        result[p] = None
        try:
            faces = analyzer().analyze(load_image(p))
        except ImageError:
            faces = []
        face = largest(faces)
        if face is not None:
            chips.append(face.chip)
            owners.append(p)
        if progress:
            progress(i + 1, len(paths))
    if chips:
        for p, e in zip(owners, (encoder or load_encoder()).encode(np.stack(chips)), strict=True):
            result[p] = e
    return result


def verification_metrics(distances: np.ndarray, same: np.ndarray, failed: np.ndarray, threshold: float) -> dict:
    """Accuracy, best accuracy, EER and TAR@FAR from pair distances (inf where failed)."""
    d = np.where(failed, np.inf, distances)
    n = len(d)
    genuine, impostor = d[same], d[~same]

    def accuracy_at(t: float) -> float:
        correct = np.where(same, d <= t, (d > t) & ~failed)
        return float(correct.sum() / n)

    finite = np.unique(d[np.isfinite(d)])
    candidates = (
        np.concatenate([[0.0], finite, (finite[:-1] + finite[1:]) / 2]) if finite.size else np.array([threshold])
    )
    if candidates.size > 20000:  # pragma: no cover - very large lists: sample the sweep
        candidates = np.quantile(finite, np.linspace(0, 1, 20000))
    candidates = np.sort(candidates)
    accs = np.array([accuracy_at(float(t)) for t in candidates])
    # Where a range of thresholds is equally good (separable pairs), take the middle of
    # the widest such range: its ends sit on one pair each and carry over worst to new faces.
    top = np.flatnonzero(accs == accs.max())
    runs = np.split(top, np.flatnonzero(np.diff(top) > 1) + 1)
    widest = max(runs, key=lambda r: candidates[r[-1]] - candidates[r[0]])
    best_threshold = float((candidates[widest[0]] + candidates[widest[-1]]) / 2)
    best_accuracy = float(accs[widest[0]])

    # ROC over every threshold at which something changes.
    ts = np.concatenate([[-np.inf], finite])
    g_sorted, i_sorted = np.sort(genuine), np.sort(impostor)
    tar = np.searchsorted(g_sorted, ts, side="right") / max(len(genuine), 1)
    far = np.searchsorted(i_sorted, ts, side="right") / max(len(impostor), 1)
    frr = 1.0 - tar
    k = int(np.argmin(np.abs(far - frr)))
    eer = float((far[k] + frr[k]) / 2)
    tar_at = {}
    for target in FAR_TARGETS:
        ok = far <= target + 1e-12
        tar_at[f"{target:g}"] = float(tar[ok].max()) if ok.any() else 0.0
    return {
        "accuracy": accuracy_at(threshold),
        "far": float((impostor <= threshold).mean()) if len(impostor) else 0.0,
        "frr": float((genuine > threshold).mean()) if len(genuine) else 0.0,
        "best_accuracy": best_accuracy,
        "best_threshold": best_threshold,
        "eer": eer,
        "tar_at_far": tar_at,
        "roc": (far, tar),
    }


def cross_validated_accuracy(distances: np.ndarray, same: np.ndarray, folds: int = 10, seed: int = 0) -> float:
    """Accuracy where each tenth of the pairs is judged at the threshold best for the other
    nine (the LFW protocol): what a site that calibrates on its own pairs can expect,
    without the optimism of choosing the threshold on the very pairs it is scored on."""
    fold = np.random.default_rng(seed).permutation(len(distances)) % folds
    correct = 0
    for f in range(folds):
        fit = fold != f
        t = verification_metrics(distances[fit], same[fit], np.zeros(int(fit.sum()), bool), 0.0)["best_threshold"]
        correct += int(((distances[~fit] <= t) == same[~fit]).sum())
    return correct / len(distances)


@dataclass(frozen=True)
class PairDistances:
    distances: np.ndarray  # inf where a face was not found
    same: np.ndarray
    failed: np.ndarray
    failed_images: list[str]


@dataclass(frozen=True)
class PairEmbeddings:
    a: np.ndarray  # (N, 128); zeros where a face was not found
    b: np.ndarray
    same: np.ndarray
    failed: np.ndarray
    failed_images: list[str]


def pair_embeddings(
    path: str | Path, progress: Callable[[int, int], None] | None = None, encoder: FaceEncoder | None = None
) -> PairEmbeddings:
    """The descriptors of both sides of every pair of a pair list (each image encoded once)."""
    pairs = read_pairs(path)
    unique = sorted({p.a for p in pairs} | {p.b for p in pairs})
    emb = embed_files(unique, progress, encoder)
    dim = next((len(e) for e in emb.values() if e is not None), 128)
    a, b = np.zeros((len(pairs), dim), np.float32), np.zeros((len(pairs), dim), np.float32)
    failed = np.zeros(len(pairs), bool)
    for i, p in enumerate(pairs):
        ea, eb = emb[p.a], emb[p.b]
        if ea is None or eb is None:
            failed[i] = True
        else:
            a[i], b[i] = ea, eb
    same = np.array([p.same for p in pairs])
    return PairEmbeddings(a, b, same, failed, [str(p) for p in unique if emb[p] is None])


def pair_distances(
    path: str | Path,
    progress: Callable[[int, int], None] | None = None,
    encoder: FaceEncoder | None = None,
    head: "BinaryHead | None" = None,
) -> PairDistances:
    """A distance-like score per pair (lower = same person): the descriptor distance, or
    1 - P(same) when a binary verification head is given."""
    pe = pair_embeddings(path, progress, encoder)
    if head is not None:
        from accessctl.identity.pairhead import same_probability

        scores = 1.0 - same_probability(head, pe.a, pe.b)
    else:
        scores = np.linalg.norm(pe.a - pe.b, axis=1).astype(np.float64)
    return PairDistances(np.where(pe.failed, np.inf, scores), pe.same, pe.failed, pe.failed_images)


def evaluate_pairs(
    path: str | Path,
    threshold: float,
    progress: Callable[[int, int], None] | None = None,
    encoder: FaceEncoder | None = None,
    head: "BinaryHead | None" = None,
) -> tuple[PairReport, dict]:
    """Run verification over a pair list; returns the report and the raw ROC arrays."""
    pd = pair_distances(path, progress, encoder, head)
    m = verification_metrics(pd.distances, pd.same, pd.failed, threshold)
    report = PairReport(
        pairs=len(pd.distances),
        failed=int(pd.failed.sum()),
        threshold=threshold,
        accuracy=m["accuracy"],
        best_accuracy=m["best_accuracy"],
        best_threshold=m["best_threshold"],
        eer=m["eer"],
        tar_at_far=m["tar_at_far"],
        far=m["far"],
        frr=m["frr"],
        failed_images=pd.failed_images,
    )
    return report, {"far": m["roc"][0], "tar": m["roc"][1]}


@dataclass(frozen=True)
class Calibration:
    """A threshold chosen on pairs, and whether they were enough to choose it."""

    threshold: float
    far: float  # measured on the pairs at that threshold
    frr: float  # genuine pairs refused, faces not found included
    impostor_pairs: int
    genuine_pairs: int
    reliable: bool  # at least min_impostor_pairs(target) different-person pairs

    @staticmethod
    def min_impostor_pairs(target_far: float) -> int:
        """Different-person pairs needed before a threshold may be written: enough to see
        one false accept at the target rate, and never fewer than MIN_IMPOSTOR_PAIRS."""
        return max(MIN_IMPOSTOR_PAIRS, int(np.ceil(1 / target_far - 1e-9)))


# Below this many different-person pairs, no false-accept rate is measured at all: 3
# pairs once calibrated a threshold that let anyone in.
MIN_IMPOSTOR_PAIRS = 100


def threshold_for_far(pd: PairDistances, target_far: float) -> Calibration:
    """The largest threshold whose false-accept rate on these pairs is at most ``target_far``.

    Largest, because among thresholds that keep impostors out as required it lets the
    most genuine users in. With n impostor pairs, floor(target * n) of them may be
    accepted; the threshold sits just below the next one.
    """
    if not 0 < target_far < 1:
        raise AccessctlError(f"target false-accept rate {target_far} must be between 0 and 1")
    d = np.where(pd.failed, np.inf, pd.distances)
    impostor = np.sort(d[~pd.same])
    genuine = d[pd.same]
    if impostor.size == 0 or genuine.size == 0:
        raise AccessctlError("calibration needs both same-person and different-person pairs")
    if not np.isfinite(d).any():
        raise AccessctlError("no face was found in any pair: nothing to calibrate on")
    allowed = int(np.floor(target_far * impostor.size + 1e-9))
    if allowed >= impostor.size or not np.isfinite(impostor[allowed]):
        limit = float(d[np.isfinite(d)].max())
    else:
        limit = float(np.nextafter(impostor[allowed], 0.0))
    far = float((impostor <= limit).mean())
    frr = float((genuine > limit).mean())
    return Calibration(
        limit,
        far,
        frr,
        int(impostor.size),
        int(genuine.size),
        impostor.size >= Calibration.min_impostor_pairs(target_far),
    )


def plot_roc(roc: dict, report: PairReport, out: str | Path, title: str) -> None:
    """ROC curve (TAR against FAR, log x) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    far, tar = roc["far"], roc["tar"]
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=100)
    floor = 1e-4
    ax.plot(np.maximum(far, floor), tar, lw=2)
    ax.set_xscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(f"{title}\n{report.pairs} pairs, EER {report.eer:.2%}, failed {report.failed}")
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
