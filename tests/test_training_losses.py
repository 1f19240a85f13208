"""Every loss and miner against a direct loop-based reference on small random batches."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from accessctl.training import miners
from accessctl.training.losses import (
    BinaryHead,
    IdentityHead,
    binary_loss,
    contrastive_loss,
    identity_loss,
    pairwise_sq_dist,
    triplet_loss,
)


def batch(seed: int, people: int = 4, per: int = 3, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    emb = torch.randn(people * per, dim, generator=g, dtype=torch.float64) * 0.5
    labels = torch.arange(people).repeat_interleave(per)
    return emb, labels


def sq(e: torch.Tensor, i: int, j: int) -> float:
    return float(((e[i] - e[j]) ** 2).sum())


def ref_triplets(labels):
    n = len(labels)
    return [
        (a, p, q)
        for a, p, q in itertools.product(range(n), repeat=3)
        if a != p and labels[a] == labels[p] and labels[q] != labels[a]
    ]


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_distances(seed: int) -> None:
    e, _ = batch(seed)
    d = pairwise_sq_dist(e)
    for i, j in itertools.product(range(len(e)), repeat=2):
        assert d[i, j].item() == pytest.approx(sq(e, i, j), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_batch_all_matches_loops(seed: int) -> None:
    e, labels = batch(seed)
    lab = labels.tolist()
    margin = 0.3
    trip = ref_triplets(lab)
    got = set(zip(*(t.tolist() for t in miners.batch_all(pairwise_sq_dist(e), labels)), strict=True))
    assert got == set(trip)
    losses = [max(sq(e, a, p) - sq(e, a, n) + margin, 0.0) for a, p, n in trip]
    active = [x for x in losses if x > 1e-12]
    loss, stats = triplet_loss(e, labels, margin, "batch-all")
    assert loss.item() == pytest.approx(np.mean(active))
    assert stats["active"] == pytest.approx(len(active) / len(losses))


@pytest.mark.parametrize("seed", range(5))
def test_batch_hard_matches_loops(seed: int) -> None:
    e, labels = batch(seed)
    lab = labels.tolist()
    margin = 0.2
    want = []
    for a in range(len(lab)):
        ps = [p for p in range(len(lab)) if p != a and lab[p] == lab[a]]
        ns = [n for n in range(len(lab)) if lab[n] != lab[a]]
        p = max(ps, key=lambda p: sq(e, a, p))
        n = min(ns, key=lambda n: sq(e, a, n))
        want.append(max(sq(e, a, p) - sq(e, a, n) + margin, 0.0))
    loss, _ = triplet_loss(e, labels, margin, "batch-hard")
    assert loss.item() == pytest.approx(np.mean(want))


@pytest.mark.parametrize("seed", range(8))
def test_semi_hard_matches_loops(seed: int) -> None:
    e, labels = batch(seed)
    lab = labels.tolist()
    margin = 0.5
    want = []
    for a, p in itertools.permutations(range(len(lab)), 2):
        if lab[a] != lab[p]:
            continue
        dap = sq(e, a, p)
        window = [n for n in range(len(lab)) if lab[n] != lab[a] and dap < sq(e, a, n) < dap + margin]
        if window:
            n = min(window, key=lambda n: sq(e, a, n))
            want.append((a, p, n, dap - sq(e, a, n) + margin))
    a, p, n = miners.semi_hard(pairwise_sq_dist(e), labels, margin)
    assert sorted(zip(a.tolist(), p.tolist(), n.tolist(), strict=True)) == sorted((x[0], x[1], x[2]) for x in want)
    loss, _ = triplet_loss(e, labels, margin, "semi-hard")
    assert loss.item() == pytest.approx(np.mean([x[3] for x in want]) if want else 0.0)
    assert all(x[3] > 0 for x in want)  # semi-hard triplets always carry a loss


def test_no_valid_positive_gives_no_triplet_and_zero_loss() -> None:
    e = torch.randn(4, 8, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 3])  # everyone alone
    for mining in ("batch-all", "batch-hard", "semi-hard"):
        loss, stats = triplet_loss(e, labels, 0.2, mining)
        assert loss.item() == 0.0 and stats["triplets"] == 0
        loss.backward()  # still a graph: a training step on such a batch does not crash
    a, _, _ = miners.batch_hard(pairwise_sq_dist(e), torch.tensor([0, 0, 1, 2]))
    assert sorted(a.tolist()) == [0, 1]  # anchors 2 and 3 have no positive


def test_no_semi_hard_negative() -> None:
    # person 0 tight together, person 1 far away: every negative is past the margin
    e = torch.tensor([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0], [5.01, 5.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1])
    a, p, n = miners.semi_hard(pairwise_sq_dist(e), labels, margin=0.2)
    assert a.numel() == 0
    assert triplet_loss(e, labels, 0.2, "semi-hard")[0].item() == 0.0
    # negatives harder than the positive (closer than it) are not semi-hard either:
    # anchors 0 and 1 are 1.0 apart and both negatives sit between them
    e2 = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.45, 0.0], [0.55, 0.0]], dtype=torch.float64)
    a, _, _ = miners.semi_hard(pairwise_sq_dist(e2), labels, margin=0.2)
    assert not set(a.tolist()) & {0, 1}


@pytest.mark.parametrize("seed", range(5))
def test_contrastive_matches_loops(seed: int) -> None:
    e, labels = batch(seed)
    lab = labels.tolist()
    m = 1.0
    want = []
    for i, j in itertools.combinations(range(len(lab)), 2):
        d = np.sqrt(sq(e, i, j))
        want.append(d**2 if lab[i] == lab[j] else max(m - d, 0.0) ** 2)
    assert contrastive_loss(e, labels, m)[0].item() == pytest.approx(np.mean(want), rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_binary_matches_loops(seed: int) -> None:
    e, labels = batch(seed)
    lab = labels.tolist()
    head = BinaryHead(8, squared=True).double()
    w = head.linear.weight.detach()[0].numpy()
    b = float(head.linear.bias.detach()[0])
    pos, neg = [], []
    for i, j in itertools.combinations(range(len(lab)), 2):
        diff = (e[i] - e[j]).numpy()
        z = float(np.concatenate([np.abs(diff), diff**2]) @ w + b)
        p = 1 / (1 + np.exp(-z))
        (pos if lab[i] == lab[j] else neg).append(-np.log(p) if lab[i] == lab[j] else -np.log(1 - p))
    want = 0.5 * np.mean(pos) + 0.5 * np.mean(neg)
    assert binary_loss(e, labels, head)[0].item() == pytest.approx(want, rel=1e-6)


@pytest.mark.parametrize("seed", range(3))
def test_identity_matches_loops(seed: int) -> None:
    e, labels = batch(seed)
    head = IdentityHead(8, 4, scale=16.0).double()
    w = head.weight.detach().numpy()
    want = []
    for f, y in zip(e.numpy(), labels.tolist(), strict=True):
        z = np.array([16.0 * f @ wc / (np.linalg.norm(f) * np.linalg.norm(wc)) for wc in w])
        want.append(np.log(np.exp(z).sum()) - z[y])
    assert identity_loss(e, labels, head)[0].item() == pytest.approx(np.mean(want), rel=1e-6)


def test_losses_fall_when_optimised() -> None:
    """A few steps of gradient descent on the embeddings themselves must reduce each loss."""
    for name in ("batch-all", "batch-hard", "semi-hard", "contrastive", "binary"):
        torch.manual_seed(0)
        e = (torch.randn(12, 8) * 0.3).requires_grad_()
        labels = torch.arange(4).repeat_interleave(3)
        head = BinaryHead(8)
        params = [e] + (list(head.parameters()) if name == "binary" else [])
        opt = torch.optim.SGD(params, lr=0.1)

        def loss_fn(e=e, labels=labels, head=head, name=name):
            if name == "contrastive":
                return contrastive_loss(e, labels, 1.0)[0]
            if name == "binary":
                return binary_loss(e, labels, head)[0]
            return triplet_loss(e, labels, 0.5, "batch-all" if name == "semi-hard" else name)[0]

        first = loss_fn().item()
        for _ in range(50):
            opt.zero_grad()
            loss_fn().backward()
            opt.step()
        assert loss_fn().item() < first, name


def test_fitted_head_separates_pairs_and_round_trips(tmp_path, monkeypatch) -> None:
    from accessctl.errors import EncoderError
    from accessctl.identity.pairhead import (
        fit_head,
        load_head,
        same_probability,
        save_head,
    )

    monkeypatch.setenv("ACCESSCTL_HOME", str(tmp_path))
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 128)).astype(np.float32)
    a_id = rng.integers(0, 20, 400)
    same = rng.random(400) < 0.5
    b_id = np.where(same, a_id, (a_id + rng.integers(1, 20, 400)) % 20)
    a = centres[a_id] + 0.3 * rng.standard_normal((400, 128)).astype(np.float32)
    b = centres[b_id] + 0.3 * rng.standard_normal((400, 128)).astype(np.float32)
    head = fit_head(a, b, same)
    p = same_probability(head, a, b)
    assert ((p >= 0.5) == same).mean() > 0.97
    with pytest.raises(EncoderError, match="fit-head"):
        load_head("some-encoder")
    save_head("some-encoder", head)
    assert np.allclose(same_probability(load_head("some-encoder"), a, b), p)
    (tmp_path / "encoders" / "some-encoder" / "head.pt").write_bytes(b"junk")
    with pytest.raises(EncoderError, match="damaged"):
        load_head("some-encoder")
