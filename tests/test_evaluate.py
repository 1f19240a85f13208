from __future__ import annotations

import numpy as np
import pytest

from accessctl.errors import AccessctlError
from accessctl.evaluation.verification import (
    PairDistances,
    cross_validated_accuracy,
    threshold_for_far,
    verification_metrics,
)


def pd(genuine, impostor, failed_genuine=0):
    d = np.array(list(genuine) + [np.inf] * failed_genuine + list(impostor), float)
    same = np.array([True] * (len(genuine) + failed_genuine) + [False] * len(impostor))
    failed = np.isinf(d)
    return PairDistances(d, same, failed, [])


def test_threshold_meets_the_target_far_and_is_the_largest_that_does() -> None:
    rng = np.random.default_rng(0)
    p = pd(rng.normal(0.4, 0.08, 500), rng.normal(0.85, 0.08, 2000), failed_genuine=5)
    for target in (0.01, 0.001):
        cal = threshold_for_far(p, target)
        impostor = p.distances[~p.same]
        assert (impostor <= cal.threshold).mean() <= target
        assert (impostor <= np.sort(impostor)[int(target * 2000)]).mean() > target  # one step more breaks it
        genuine = p.distances[p.same]
        assert cal.frr == pytest.approx((genuine > cal.threshold).mean())
        assert cal.frr >= 5 / 505  # faces not found are false rejects
    assert threshold_for_far(p, 0.01).reliable and not threshold_for_far(pd([0.1], [0.9] * 10), 0.001).reliable
    with pytest.raises(AccessctlError):
        threshold_for_far(p, 0)


def test_verification_metrics_by_hand() -> None:
    d = np.array([0.2, 0.5, 0.7, np.inf, 0.4, 0.9, 1.0])
    same = np.array([1, 1, 1, 1, 0, 0, 0], bool)
    failed = np.isinf(d)
    m = verification_metrics(d, same, failed, 0.6)
    # at 0.6: genuine 0.2, 0.5 accepted (2 right), 0.7 and the failed one wrong; impostor 0.4 wrong, 0.9, 1.0 right
    assert m["accuracy"] == pytest.approx(4 / 7)
    assert m["best_accuracy"] == pytest.approx(5 / 7)  # e.g. threshold between 0.7 and 0.9
    # 3 impostor pairs: FAR 0.01 allows none, so the threshold stays under 0.4: only 0.2 passes
    assert m["tar_at_far"]["0.01"] == pytest.approx(1 / 4)
    # closest FAR/FRR crossing: threshold 0.7, FAR 1/3, FRR 1/4 (the failed pair is a reject)
    assert m["eer"] == pytest.approx((1 / 3 + 1 / 4) / 2)


def test_cross_validated_accuracy_by_hand() -> None:
    # Six folds of one pair each (leave one out), so the shuffle does not matter.
    d = np.array([0.1, 0.2, 0.6, 0.4, 0.5, 0.8])
    same = np.array([1, 1, 1, 0, 0, 0], bool)
    # Left out 0.2: the rest are best split anywhere in [0.1, 0.4); the middle of the
    # candidates there (0.1, 0.25) is 0.175 and rejects it. Left out 0.6: no threshold
    # chosen on the rest accepts it. The four others are judged right: 4 of 6, where the
    # threshold chosen on all six pairs claims 5 of 6.
    assert cross_validated_accuracy(d, same, folds=6) == pytest.approx(4 / 6)
    assert verification_metrics(d, same, np.zeros(6, bool), 0.0)["best_accuracy"] == pytest.approx(5 / 6)


def test_cross_validation_takes_the_optimism_out_of_a_chosen_threshold() -> None:
    best, cv = [], []
    for seed in range(20):  # distances that say nothing: only chance to fit
        rng = np.random.default_rng(seed)
        d, same = rng.random(100), rng.random(100) < 0.5
        best.append(verification_metrics(d, same, np.zeros(100, bool), 0.0)["best_accuracy"])
        cv.append(cross_validated_accuracy(d, same))
    assert np.mean(best) > 0.56 and abs(np.mean(cv) - 0.5) < 0.03
    assert cross_validated_accuracy(np.r_[rng.random(50), 2 + rng.random(50)], np.arange(100) < 50) == 1.0
