from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from accessctl.errors import AccessctlError
from accessctl.training.data import FaceSet, PKSampler, augment
from accessctl.training.trainer import (
    Progress,
    TrainConfig,
    balanced_pairs,
    split_people,
    train,
)


def toy_faces(people: int = 6, per: int = 4, seed: int = 0) -> FaceSet:
    """Chips whose person is a colour pattern: learnable in a few steps, no detection needed."""
    rng = np.random.default_rng(seed)
    chips, labels = [], []
    for p in range(people):
        base = rng.integers(0, 255, size=(1, 1, 3))
        stripes = (np.arange(150)[:, None] * (p + 1) // 25 % 2) * 60
        for _ in range(per):
            img = base + stripes[:, :, None] + rng.normal(0, 10, size=(150, 150, 3))
            chips.append(np.clip(img, 0, 255).astype(np.uint8))
            labels.append(p)
    return FaceSet(np.stack(chips), np.array(labels), [f"p{i}" for i in range(people)], [""] * len(labels), [])


def test_people_are_held_out_whole() -> None:
    faces = toy_faces()
    tr, val = split_people(faces, 2, seed=3)
    assert len(val.people) == 2 and not set(tr.people) & set(val.people)
    assert len(tr.chips) == 16 and len(val.chips) == 8 and set(val.labels) == {0, 1}
    with pytest.raises(AccessctlError, match="at least 2 people"):
        split_people(faces, 1, seed=0)


def test_pk_batches_and_balanced_pairs() -> None:
    labels = np.repeat(np.arange(5), [1, 2, 3, 4, 5])
    batch = PKSampler(labels, p=3, k=4, seed=0).batch()
    assert len(batch) == 12 and len(set(labels[batch])) == 3
    i, j = balanced_pairs(labels)
    same = labels[i] == labels[j]
    assert same.sum() == (~same).sum() == 0 + 1 + 3 + 6 + 10


def test_augment_keeps_shape_and_changes_pixels() -> None:
    chips = toy_faces().chips[:4]
    out = augment(chips, np.random.default_rng(0))
    assert out.shape == chips.shape and out.dtype == np.uint8 and not np.array_equal(out, chips)


@pytest.mark.parametrize("loss", ["triplet", "contrastive", "binary"])
def test_training_writes_checkpoints_and_figures(tmp_path: Path, loss: str) -> None:
    cfg = TrainConfig(
        data="toy",
        out=str(tmp_path / loss),
        arch="small",
        init="random",
        loss=loss,
        epochs=2,
        p=4,
        k=2,
        val_people=2,
        test_people=2,
        patience=10,
        steps_per_epoch=2,
    )
    result = train(cfg, faces=toy_faces(people=8))
    for name in ("best.pt", "last.pt", "config.json"):
        assert (tmp_path / loss / name).is_file()
    doc = json.loads((tmp_path / loss / "config.json").read_text())
    assert len(doc["history"]) == 2 and doc["encoder_id"].startswith("small-") and "val" in doc["final"]
    state = torch.load(tmp_path / loss / "best.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())  # a plain state dict
    assert result.best["val"]["pairs"] > 0 and 0 <= result.best["val"]["eer"] <= 1
    # The test people are kept out of training and of the choice of epoch, and measured
    # once at the end, at the threshold of the training people and by 10-fold validation.
    # the shipped threshold: chosen on augmented views of the training people, repeatably
    from accessctl.training.models import Embedder
    from accessctl.training.trainer import training_threshold

    assert doc["threshold"] == result.threshold
    model = Embedder("small", loss != "binary")
    model.net.load_state_dict(state)
    train_people, _ = split_people(split_people(toy_faces(people=8), 2, 0)[0], 2, 0)
    assert training_threshold(model, train_people, seed=0) == pytest.approx(result.threshold)
    held_out = {*doc["final"]["val_people"], *doc["final"]["test_people"]}
    assert len(held_out) == 4
    assert all(0 <= result.best["test"][k] <= 1 for k in ("accuracy", "accuracy_10fold", "best_accuracy"))
    assert "test" not in doc["history"][-1]
    if loss == "binary":
        assert 0 <= result.best["test_binary"]["accuracy_10fold"] <= 1
    # the within-class whitening is fitted, saved with the weights, and its effect reported
    assert float(state["whitening.active"]) == 1.0 and float(state["whitening.prenorm"]) == float(loss != "binary")
    assert 0 <= result.best["test_unwhitened"]["accuracy_10fold"] <= 1


@pytest.mark.parametrize("id_weight", [0.0, 0.5])
def test_same_seed_same_weights_and_resume_equals_one_run(tmp_path: Path, id_weight: float) -> None:
    common = dict(
        data="toy",
        arch="small",
        init="random",
        loss="triplet",
        mining="batch-all",
        p=4,
        k=2,
        patience=10,
        steps_per_epoch=2,
        seed=7,
        id_weight=id_weight,
    )
    faces = toy_faces()
    train(TrainConfig(out=str(tmp_path / "a"), epochs=3, **common), faces=faces)
    train(TrainConfig(out=str(tmp_path / "b"), epochs=3, **common), faces=faces)

    def interrupt_after_epoch_2(p: Progress) -> None:
        if p.record is not None and p.epoch == 2:
            raise KeyboardInterrupt  # the machine goes down right after the epoch's checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(TrainConfig(out=str(tmp_path / "c"), epochs=3, **common), faces=faces, progress=interrupt_after_epoch_2)
    train(TrainConfig(out=str(tmp_path / "c"), epochs=3, **common), faces=faces, resume=True)
    a, b, c = (torch.load(tmp_path / x / "last.pt", weights_only=True)["model"] for x in "abc")
    for key in a:
        assert torch.equal(a[key], b[key])
        assert torch.allclose(a[key].float(), c[key].float(), atol=1e-5), key
    assert len(json.loads((tmp_path / "c" / "config.json").read_text())["history"]) == 3


def test_split_seed_holds_out_the_same_people_whatever_the_training_seed(tmp_path: Path) -> None:
    common = dict(
        data="toy", arch="small", init="random", loss="triplet", p=4, k=2, epochs=1, steps_per_epoch=1, test_people=2
    )
    faces = toy_faces()
    runs = {
        name: train(TrainConfig(out=str(tmp_path / name), **kw, **common), faces=faces).best
        for name, kw in {
            "a": dict(seed=1, split_seed=5),
            "b": dict(seed=2, split_seed=5),
            "c": dict(seed=5),
            "d": dict(seed=1),
        }.items()
    }
    assert runs["a"]["test_people"] == runs["b"]["test_people"] == runs["c"]["test_people"]  # None = seed
    assert runs["a"]["test_people"] != runs["d"]["test_people"]
    a, b = (torch.load(tmp_path / x / "last.pt", weights_only=True)["model"] for x in "ab")
    assert any(not torch.equal(a[k], b[k]) for k in a)  # other random streams


def test_whitening_equalises_the_within_person_spread() -> None:
    from accessctl.identity.architectures import SmallFaceNet, Whitening

    g = torch.Generator().manual_seed(0)
    centres = torch.randn(6, 4, generator=g) * 5
    labels = torch.arange(6).repeat_interleave(50)
    scale = torch.tensor([10.0, 1.0, 0.1, 1.0])  # the spread inside a person, unequal per dimension
    emb = centres[labels] + torch.randn(300, 4, generator=g) * scale
    w = Whitening(4)
    x = torch.randn(3, 4, generator=g)
    assert torch.equal(w(x), x)  # identity until fitted
    w.fit(emb, labels, prenorm=False, reg=0.0)
    centred = torch.cat([emb[labels == p] - emb[labels == p].mean(0) for p in range(6)])
    white = centred @ w.proj
    assert torch.allclose(white.t() @ white / len(emb), torch.eye(4), atol=1e-3)
    assert torch.allclose(w(x).norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="two people"):
        w.fit(emb[:50], labels[:50], prenorm=False)
    # checkpoints saved before the whitening existed still load, and others still must match
    net = SmallFaceNet()
    old = {k: v for k, v in net.state_dict().items() if not k.startswith("whitening.")}
    net.load_state_dict(old)
    assert float(net.whitening.active) == 0.0
    with pytest.raises(RuntimeError, match="fc.weight"):
        net.load_state_dict({k: v for k, v in old.items() if k != "fc.weight"})


def test_no_whiten_leaves_the_embedding_as_trained(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data="toy",
        out=str(tmp_path / "n"),
        arch="small",
        init="random",
        loss="triplet",
        epochs=1,
        p=4,
        k=2,
        steps_per_epoch=1,
        test_people=2,
        whiten=False,
    )
    result = train(cfg, faces=toy_faces())
    assert float(torch.load(tmp_path / "n" / "best.pt", weights_only=True)["whitening.active"]) == 0.0
    assert "test_unwhitened" not in result.best


def test_zero_epochs_measures_the_starting_weights(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data="toy", out=str(tmp_path / "z"), arch="small", init="random", loss="binary", epochs=0, test_people=2
    )
    result = train(cfg, faces=toy_faces())
    assert result.epochs_run == 0 and 0 <= result.best["test"]["accuracy_10fold"] <= 1
    assert (tmp_path / "z" / "best.pt").is_file() and (tmp_path / "z" / "head.pt").is_file()
    with pytest.raises(AccessctlError, match="epochs must be 0"):
        train(TrainConfig(**{**vars(cfg), "epochs": -1}), faces=toy_faces())


def test_identity_loss_changes_training_and_a_negative_weight_is_refused(tmp_path: Path) -> None:
    common = dict(
        data="toy", arch="small", init="random", loss="contrastive", p=4, k=2, epochs=1, steps_per_epoch=2, seed=3
    )
    for w in (0.0, 1.0):
        train(TrainConfig(out=str(tmp_path / str(w)), id_weight=w, **common), faces=toy_faces())
    a, b = (torch.load(tmp_path / x / "last.pt", weights_only=True) for x in ("0.0", "1.0"))
    assert "id_head" in b and "id_head" not in a
    assert any(not torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    with pytest.raises(AccessctlError, match="cannot be negative"):
        train(TrainConfig(out=str(tmp_path / "n"), id_weight=-1.0, **common), faces=toy_faces())


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    cfg = TrainConfig(data="toy", out=str(tmp_path / "x"), arch="small", init="random", epochs=1)
    with pytest.raises(AccessctlError, match="nothing to resume"):
        train(cfg, faces=toy_faces(), resume=True)


def test_fine_tuning_reports_the_starting_point_and_keeps_it_if_nothing_helps(tmp_path: Path) -> None:
    cfg = TrainConfig(
        data="toy",
        out=str(tmp_path / "ft"),
        arch="dlib-resnet",
        init="pretrained",
        loss="triplet",
        epochs=1,
        p=3,
        k=2,
        val_people=2,
        patience=5,
        steps_per_epoch=1,
        lr=1e-9,
    )
    result = train(cfg, faces=toy_faces(people=5, per=2))
    doc = json.loads((tmp_path / "ft" / "config.json").read_text())
    assert doc["history"][0]["epoch"] == 0 and set(result.best["before"]) == {"train", "val"}
    tested = train(
        TrainConfig(**{**vars(cfg), "out": str(tmp_path / "ft2"), "test_people": 2, "history": []}),
        faces=toy_faces(people=6, per=2),
    )
    assert set(tested.best["before"]) == {"train", "val", "test"}
    assert result.best["before"]["val"]["pairs"] == result.best["val"]["pairs"]


def test_small_net_embeds_a_face_and_its_mirror_alike_outside_training() -> None:
    from accessctl.identity.resnet import DlibResNet
    from accessctl.training.models import Embedder

    torch.manual_seed(0)
    model = Embedder("small", normalize=True).eval()
    ramp = np.tile(np.linspace(0, 255, 150, dtype=np.float32)[None, :, None], (150, 1, 3)).astype(np.uint8)
    chips = torch.from_numpy(ramp[None])  # dark on the left, bright on the right
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()  # weights far from their near-constant start, as after training
        assert torch.allclose(model(chips), model(chips.flip(2)), atol=1e-5)  # NHWC: 2 is the width
        # by the mean of the two views: one view alone is not symmetric
        x = torch.nn.functional.interpolate(DlibResNet.preprocess(chips), size=(64, 64), mode="bilinear")
        one, other = (torch.nn.functional.normalize(model.net._embed(v), dim=1) for v in (x, x.flip(3)))
        assert (one - other).norm() > 0.1


def test_report_sums_up_finished_runs_and_refuses_the_rest(tmp_path: Path, capsys, home: Path) -> None:
    from accessctl.cli import main
    from accessctl.training.report import report

    common = dict(
        data="toy", arch="small", init="random", loss="binary", p=4, k=2, epochs=1, steps_per_epoch=1, test_people=2
    )
    got = [train(TrainConfig(out=str(tmp_path / f"s{s}"), seed=s, **common), faces=toy_faces()).best for s in (0, 1)]
    doc = report([tmp_path / "s0", tmp_path / "s1"])
    tenfold = [g["test"]["accuracy_10fold"] for g in got]
    assert [r["accuracy_10fold"] for r in doc["runs"]] == tenfold
    assert [r["split_seed"] for r in doc["runs"]] == [0, 1]
    assert list(doc["summary"]) == ["binary"]
    summary = doc["summary"]["binary"]
    assert summary["accuracy_10fold"]["mean"] == pytest.approx(np.mean(tenfold))
    assert summary["accuracy_10fold"]["min"] == min(tenfold)
    assert summary["head_10fold"]["runs"] == 2  # binary runs: the head's figure too

    assert main(["encoder", "report", str(tmp_path / "s0"), str(tmp_path / "s1"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == json.loads(json.dumps(doc))
    assert main(["encoder", "report", str(tmp_path / "s0"), str(tmp_path / "s0")]) == 0
    assert "same people" in capsys.readouterr().out  # a repeated split is said to be one
    train(TrainConfig(out=str(tmp_path / "t0"), seed=0, **{**common, "loss": "triplet"}), faces=toy_faces())
    mixed = report([tmp_path / "s0", tmp_path / "s1", tmp_path / "t0"])
    assert list(mixed["summary"]) == ["binary", "triplet"] and mixed["summary"]["binary"] == doc["summary"]["binary"]
    assert main(["encoder", "report", str(tmp_path / "s0"), str(tmp_path / "t0")]) == 0
    assert "same people" not in capsys.readouterr().out  # two losses on one split are not a repeat

    train(TrainConfig(out=str(tmp_path / "no_test"), **{**common, "test_people": 0}), faces=toy_faces())
    config = json.loads((tmp_path / "s0" / "config.json").read_text())
    (tmp_path / "unfinished").mkdir()
    (tmp_path / "unfinished" / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "final"}))
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "config.json").write_text("{")
    for name, message in (
        ("no_test", "--test-people"),
        ("unfinished", "--resume"),
        ("corrupt", "unreadable"),
        ("missing", "no config.json"),
    ):
        with pytest.raises(AccessctlError, match=message):
            report([tmp_path / "s0", tmp_path / name])
        assert main(["encoder", "report", str(tmp_path / name)]) == 2
        assert message in capsys.readouterr().err


def test_a_device_that_is_not_there_is_refused_before_training(tmp_path: Path) -> None:
    cfg = TrainConfig(data="toy", out=str(tmp_path / "d"), arch="small", init="random", epochs=1, device="tpu")
    with pytest.raises(AccessctlError, match="not available"):
        train(cfg, faces=toy_faces())
    if not torch.cuda.is_available():
        with pytest.raises(AccessctlError, match="no CUDA GPU"):
            train(TrainConfig(**{**vars(cfg), "device": "cuda"}), faces=toy_faces())
    assert not (tmp_path / "d").exists()  # refused before anything is written


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_on_a_gpu_writes_the_same_plain_cpu_checkpoints(tmp_path: Path) -> None:
    common = dict(
        data="toy",
        arch="small",
        init="random",
        loss="binary",
        p=4,
        k=2,
        epochs=2,
        steps_per_epoch=2,
        test_people=2,
        id_weight=1.0,
    )
    gpu = train(TrainConfig(out=str(tmp_path / "g"), device="cuda", **common), faces=toy_faces())
    assert 0 <= gpu.best["test"]["accuracy_10fold"] <= 1 and "test_binary" in gpu.best
    for name in ("best.pt", "head.pt"):
        assert all(v.device.type == "cpu" for v in torch.load(tmp_path / "g" / name, weights_only=True).values())
    last = torch.load(tmp_path / "g" / "last.pt", weights_only=True)  # no map_location: all of it on the CPU
    assert all(v.device.type == "cpu" for part in ("model", "head", "id_head") for v in last[part].values())
    moments = [v for state in last["optimizer"]["state"].values() for v in state.values() if torch.is_tensor(v)]
    assert moments and all(v.device.type == "cpu" for v in moments)
    resumed = train(
        TrainConfig(out=str(tmp_path / "g"), device="cuda", **{**common, "epochs": 3}), faces=toy_faces(), resume=True
    )
    assert resumed.epochs_run == 1
