"""Budget parsing and timing, losses, metrics, and the training loop on a tiny dataset."""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, roc_auc_score
from torch import nn

from autonas.data import Normalizer, from_arrays
from autonas.errors import ConfigError
from autonas.spaces.darts import Network, NetworkConfig
from autonas.training.budget import Budget, Deadline, StepTimer, parse_duration
from autonas.training.loop import NonFiniteLossError, predict_proba
from autonas.training.losses import (
    FocalLoss,
    class_weights_from_counts,
    make_loss,
    resolve_class_weights,
)
from autonas.training.metrics import (
    auc_roc,
    classification_metrics,
    decides,
    epoch_score,
    objective_value,
)
from autonas.training.trainer import TrainConfig, cosine_lr, fit

CPU = torch.device("cpu")

# ----------------------------------------------------------------------------- budget


@pytest.mark.parametrize("text, seconds", [
    ("90", 90.0), ("90s", 90.0), ("10m", 600.0), ("1h30m", 5400.0), ("1.5h", 5400.0),
    (45, 45.0), (2.5, 2.5), (" 2m 30s ", 150.0), ("1d", 86400.0), ("10M", 600.0),
])
def test_parse_duration(text, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "none", "None", "", "inf", "unlimited"])
def test_parse_duration_no_limit(text) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize("text", ["10x", "-5", "0", "0s", "m10", "10m5", "1h-30m", -5, 0,
                                  float("inf"), "ten"])
def test_parse_duration_rejects(text) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_deadline() -> None:
    d = Deadline.after(100.0)
    assert not d.expired()
    assert d.fits(10.0)
    assert not d.fits(1000.0)
    assert 99.0 < d.remaining() <= 100.0
    past = Deadline.after(-1.0)
    assert past.expired()
    assert not past.fits(0.0)
    unlimited = Deadline.after(None)
    assert unlimited.at is None
    assert unlimited.fits(1e12) and not unlimited.expired()
    assert unlimited.remaining() == math.inf
    assert d.earlier(past).at == past.at
    assert past.earlier(d).at == past.at
    assert unlimited.earlier(d) is d
    assert d.earlier(unlimited) is d


def test_budget_fractions() -> None:
    b = Budget(100.0)
    assert b.until_fraction(0.4).at == pytest.approx(b.start + 40.0)
    assert b.minus(3.0).at == pytest.approx(b.start + 97.0)
    assert Budget(None).until_fraction(0.4).at is None
    assert Budget(None).minus(3.0).at is None


def test_step_timer_estimate_is_cautious() -> None:
    t = StepTimer()
    assert t.estimate == 0.0
    for seconds in (1.0, 0.1, 0.1, 2.0, 0.05):
        t.add(seconds)
        assert t.estimate >= t.last
        assert t.estimate >= t.mean
    t.add(3.0)
    assert t.estimate == 3.0  # one slow step makes the estimate cautious at once
    with t:
        time.sleep(0.02)
    assert 0.015 <= t.last < 1.0
    assert t.estimate >= t.last


# ----------------------------------------------------------------------------- losses


def _logits_targets(seed: int = 0, n: int = 12, k: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, k, generator=g) * 2, torch.randint(0, k, (n,), generator=g)


def test_focal_gamma_zero_is_cross_entropy() -> None:
    logits, y = _logits_targets()
    torch.testing.assert_close(FocalLoss(gamma=0.0)(logits, y), nn.CrossEntropyLoss()(logits, y))
    w = torch.tensor([0.5, 2.0, 1.5])
    torch.testing.assert_close(FocalLoss(gamma=0.0, weight=w)(logits, y),
                               nn.CrossEntropyLoss(weight=w)(logits, y))
    torch.testing.assert_close(
        FocalLoss(gamma=0.0, label_smoothing=0.1)(logits, y),
        nn.CrossEntropyLoss(label_smoothing=0.1)(logits, y))


def test_focal_downweights_confident_correct_predictions() -> None:
    y = torch.tensor([0, 1, 2, 1])
    logits = torch.full((4, 3), -3.0)
    logits[torch.arange(4), y] = 3.0  # confident and correct
    ce = nn.CrossEntropyLoss()(logits, y)
    focal = FocalLoss(gamma=2.0)(logits, y)
    assert 0 < focal < ce * 0.01
    # the exact formula on one sample
    p = torch.softmax(logits[0], 0)[0]
    expected = (1 - p) ** 2 * -torch.log(p)
    torch.testing.assert_close(FocalLoss(gamma=2.0)(logits[:1], y[:1]), expected)


def test_focal_negative_gamma_rejected() -> None:
    with pytest.raises(ConfigError):
        FocalLoss(gamma=-1.0)


def test_class_weights_from_counts() -> None:
    torch.testing.assert_close(class_weights_from_counts([3, 1]),
                               torch.tensor([4 / 6, 4 / 2]))
    # an absent class gets weight 0; the others are balanced over the classes present
    torch.testing.assert_close(class_weights_from_counts([2, 0, 6]),
                               torch.tensor([8 / 4, 0.0, 8 / 12]))


def test_resolve_class_weights() -> None:
    counts = [3, 1]
    torch.testing.assert_close(resolve_class_weights("auto", counts),
                               torch.tensor([4 / 6, 4 / 2]))
    torch.testing.assert_close(resolve_class_weights("balanced", counts),
                               torch.tensor([4 / 6, 4 / 2]))
    assert resolve_class_weights(None, counts) is None
    assert resolve_class_weights("none", counts) is None
    torch.testing.assert_close(resolve_class_weights([1.0, 3.0], counts),
                               torch.tensor([1.0, 3.0]))
    with pytest.raises(ConfigError):
        resolve_class_weights([1.0, 2.0, 3.0], counts)
    with pytest.raises(ConfigError):
        resolve_class_weights("heavy", counts)


def test_make_loss() -> None:
    logits, y = _logits_targets()
    assert isinstance(make_loss("ce"), nn.CrossEntropyLoss)
    focal = make_loss("focal", torch.tensor([1.0, 2.0, 3.0]), gamma=1.5)
    assert isinstance(focal, FocalLoss) and focal.gamma == 1.5
    torch.testing.assert_close(make_loss("focal", gamma=0.0)(logits, y),
                               make_loss("ce")(logits, y))
    with pytest.raises(ConfigError, match="unknown loss"):
        make_loss("hinge")


# ----------------------------------------------------------------------------- metrics


def test_binary_metrics_hand_computed() -> None:
    y = np.array([0, 1, 1, 0, 1])
    p1 = np.array([0.1, 0.8, 0.4, 0.6, 0.9])
    probs = np.stack([1 - p1, p1], axis=1)
    m = classification_metrics(y, probs, ["benign", "malignant"])
    assert m["n"] == 5
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1], [1, 2]]
    assert m["auc"] == pytest.approx(5 / 6)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p1))
    expected_loss = -np.mean(np.log([0.9, 0.8, 0.4, 0.4, 0.9]))
    assert m["loss"] == pytest.approx(expected_loss)
    assert m["loss"] == pytest.approx(log_loss(y, probs))
    assert m["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert m["per_class"]["malignant"]["precision"] == pytest.approx(2 / 3)
    assert m["per_class"]["malignant"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["benign"]["precision"] == pytest.approx(1 / 2)
    assert m["per_class"]["benign"]["recall"] == pytest.approx(1 / 2)
    assert m["per_class"]["benign"]["support"] == 2
    assert m["per_class"]["malignant"]["support"] == 3
    assert json.loads(json.dumps(m)) == m


def test_multiclass_macro_ovr_auc() -> None:
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 0, 1, 2, 2, 1, 0, 0])
    logits = rng.normal(size=(10, 3)) + 1.5 * np.eye(3)[y]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = classification_metrics(y, probs)
    assert m["auc"] == pytest.approx(
        roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y))
    cm = np.array(m["confusion_matrix"])
    assert cm.shape == (3, 3) and cm.sum() == 10
    assert cm.trace() == int(np.sum(probs.argmax(1) == y))
    assert list(m["per_class"]) == ["0", "1", "2"]
    json.dumps(m)


def test_multiclass_auc_over_present_classes_only() -> None:
    y = np.array([0, 0, 1, 1])  # class 2 never occurs
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1]])
    expected = np.mean([roc_auc_score(y == 0, probs[:, 0]), roc_auc_score(y == 1, probs[:, 1])])
    assert auc_roc(y, probs) == pytest.approx(expected)
    m = classification_metrics(y, probs)
    assert m["per_class"]["2"]["support"] == 0
    assert m["balanced_accuracy"] == pytest.approx(0.5)  # absent class not averaged in


def test_auc_none_for_single_class_split() -> None:
    y = np.array([1, 1, 1])
    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    m = classification_metrics(y, probs)
    assert m["auc"] is None
    assert m["accuracy"] == pytest.approx(2 / 3)
    json.dumps(m)
    assert math.isnan(auc_roc(y, probs))


def test_objective_value_orientation() -> None:
    m = {"auc": 0.8, "accuracy": 0.7, "loss": 0.5}
    assert objective_value(m, "auc") == 0.8
    assert objective_value(m, "accuracy") == 0.7
    assert objective_value(m, "loss") == -0.5
    better, worse = {"loss": 0.2}, {"loss": 0.9}
    assert objective_value(better, "loss") > objective_value(worse, "loss")
    assert objective_value({"auc": None, "accuracy": 0.6}, "auc") == 0.6
    with pytest.raises(ValueError):
        objective_value(m, "f1")


def test_epochs_that_decide_rank_first() -> None:
    one_class = {"auc": 0.9, "loss": 0.3, "confusion_matrix": [[0, 21], [0, 57]]}
    deciding = {"auc": 0.8, "loss": 0.5, "confusion_matrix": [[10, 11], [4, 53]]}
    assert not decides(one_class) and decides(deciding)
    assert epoch_score(deciding, "auc") > epoch_score(one_class, "auc")
    assert epoch_score(deciding, "loss") > epoch_score(one_class, "loss")
    # a split holding one class: predicting that class is right, not degenerate
    assert decides({"confusion_matrix": [[0, 0], [0, 9]]})
    assert decides({"confusion_matrix": [[3, 0, 1], [0, 0, 0], [2, 0, 4]]})


def test_train_config_validation() -> None:
    with pytest.raises(ConfigError):
        TrainConfig(objective="f1")
    with pytest.raises(ConfigError):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError):
        TrainConfig.from_dict({"learning_rate": 0.1})
    assert TrainConfig.from_dict({"lr": 0.1}).lr == 0.1


def test_cosine_lr() -> None:
    assert cosine_lr(0.1, 0.0, 0.0) == pytest.approx(0.1)
    assert cosine_lr(0.1, 0.0, 0.5) == pytest.approx(0.05)
    assert cosine_lr(0.1, 0.01, 1.0) == pytest.approx(0.01)
    assert cosine_lr(0.1, 0.01, 2.0) == pytest.approx(0.01)


# ----------------------------------------------------------------------------- fit


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
    y = (np.arange(n) % 2).astype(np.int64)
    x[y == 1, 4:12, 4:12] = rng.integers(200, 256, size=(int((y == 1).sum()), 8, 8))
    return x, y


@pytest.fixture(scope="module")
def square_data():
    return from_arrays(_split(48, 0), _split(24, 1), _split(24, 2), name="squares")


GENOTYPE = {
    "normal": [[["sep_conv_3x3", 0], ["skip_connect", 1]],
               [["sep_conv_3x3", 2], ["skip_connect", 0]]],
    "reduce": [[["sep_conv_3x3", 0], ["skip_connect", 1]],
               [["sep_conv_3x3", 2], ["skip_connect", 1]]],
}


def _network(data) -> Network:
    return Network(NetworkConfig(genotype=GENOTYPE, in_channels=data.channels,
                                 num_classes=data.n_classes, image_size=data.image_size[0],
                                 channels=4, layers=2, nodes=2))


@pytest.fixture(scope="module")
def fitted(square_data):
    torch.manual_seed(0)
    model = _network(square_data)
    normalizer = Normalizer.fit(square_data.train_x)
    cfg = TrainConfig(epochs=5, batch_size=8, lr=0.1, augment=False, drop_path=0.0)
    result = fit(model, square_data, cfg, deadline=Deadline(None), device=CPU, seed=0,
                 normalizer=normalizer, progress=False)
    return model, normalizer, result


def test_fit_learns_separable_data(fitted) -> None:
    _, _, result = fitted
    assert result.stopped == "completed"
    assert result.epochs == 5 and len(result.history) == 5
    assert result.planned_epochs == 5
    assert [r["epoch"] for r in result.history] == list(range(5))
    assert result.best_metrics["accuracy"] >= 0.8  # chance is 0.5
    assert result.best_metrics["auc"] >= 0.9
    assert all(math.isfinite(r["train_loss"]) for r in result.history)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]


def test_fit_best_epoch_has_best_val_auc(fitted) -> None:
    _, _, result = fitted

    def key(r):
        return (decides(r["val"]), r["val"]["auc"], -r["val"]["loss"])

    best = max(range(len(result.history)), key=lambda i: key(result.history[i]))
    assert result.best_epoch == best
    assert result.best_metrics == result.history[best]["val"]
    assert result.history[best]["best"] is True
    # 'best' marks every improvement, and never an epoch worse than an earlier one
    running = None
    for r in result.history:
        assert r["best"] == (running is None or key(r) > running)
        running = key(r) if running is None else max(running, key(r))


def test_fit_selects_epoch_by_auc_then_loss(square_data, monkeypatch) -> None:
    """Scripted validation metrics: the best AUC wins, ties go to the lower loss, an epoch
    that puts every image in one class loses to any that decides, and the returned weights
    are the ones of the selected epoch (not the last)."""
    import autonas.training.trainer as trainer

    aucs = iter([0.6, 0.9, 0.7, 0.9, 0.95])
    losses = iter([0.5, 0.4, 0.3, 0.35, 0.2])
    matrices = iter([[[5, 5], [5, 5]]] * 4 + [[[0, 10], [0, 10]]])  # the last: all class 1
    real = trainer.classification_metrics

    def scripted(*args, **kwargs):
        m = real(*args, **kwargs)
        m["auc"], m["loss"], m["confusion_matrix"] = next(aucs), next(losses), next(matrices)
        return m

    monkeypatch.setattr(trainer, "classification_metrics", scripted)
    torch.manual_seed(0)
    model = _network(square_data)
    snapshots = {}

    def report(epoch, val):
        snapshots[epoch] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    cfg = TrainConfig(epochs=5, batch_size=16, augment=False)
    result = fit(model, square_data, cfg, deadline=Deadline(None), device=CPU,
                 report=report, progress=False)
    assert result.best_epoch == 3
    assert result.best_metrics["auc"] == 0.9 and result.best_metrics["loss"] == 0.35
    assert [r["best"] for r in result.history] == [True, True, False, True, False]
    assert sorted(snapshots) == [0, 1, 2, 3, 4]
    for k, v in result.state_dict.items():
        assert torch.equal(v, snapshots[3][k]), k
    assert any(not torch.equal(snapshots[3][k], snapshots[4][k]) for k in snapshots[3])


def test_fit_state_dict_reproduces_best_metrics(fitted, square_data) -> None:
    model, normalizer, result = fitted
    assert result.state_dict is not None
    fresh = _network(square_data)
    fresh.load_state_dict(result.state_dict)
    probs = predict_proba(fresh, square_data.val_x, normalizer=normalizer, device=CPU)
    metrics = classification_metrics(square_data.val_y.numpy(), probs, square_data.class_names)
    assert metrics["accuracy"] == result.best_metrics["accuracy"]
    assert metrics["confusion_matrix"] == result.best_metrics["confusion_matrix"]
    assert metrics["auc"] == pytest.approx(result.best_metrics["auc"], abs=1e-9)
    assert metrics["loss"] == pytest.approx(result.best_metrics["loss"], rel=1e-5)
    # the best state is a copy, not the live weights of the last epoch
    for k, v in result.state_dict.items():
        assert v.data_ptr() != model.state_dict()[k].data_ptr()


def test_fit_stops_at_deadline(square_data) -> None:
    torch.manual_seed(0)
    model = _network(square_data)
    cfg = TrainConfig(epochs=200, batch_size=16, augment=False)
    start = time.monotonic()
    result = fit(model, square_data, cfg, deadline=Deadline.after(1.0), device=CPU,
                 progress=False)
    elapsed = time.monotonic() - start
    assert result.stopped == "budget"
    assert result.epochs < 200
    assert elapsed < 1.0 + 1.5


def test_fit_tiny_deadline_trains_nothing(square_data) -> None:
    model = _network(square_data)
    cfg = TrainConfig(epochs=3, batch_size=16, augment=False)
    result = fit(model, square_data, cfg, deadline=Deadline.after(-0.001), device=CPU,
                 progress=False)
    assert result.stopped == "budget"
    assert result.epochs == 0 and result.history == []
    assert result.state_dict is None and result.best_epoch == -1


class _NaNModel(nn.Module):
    def __init__(self, n_classes: int) -> None:
        super().__init__()
        self.linear = nn.Linear(1, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear(x.mean(dim=(1, 2, 3))[:, None])
        return out * float("nan")


def test_fit_non_finite_loss_raises(square_data) -> None:
    cfg = TrainConfig(epochs=2, batch_size=16, augment=False)
    with pytest.raises(NonFiniteLossError):
        fit(_NaNModel(square_data.n_classes), square_data, cfg, deadline=Deadline(None),
            device=CPU, progress=False)


def test_fit_absurd_learning_rate_raises(square_data) -> None:
    torch.manual_seed(0)
    cfg = TrainConfig(epochs=5, batch_size=16, lr=1e30, grad_clip=0.0, augment=False,
                      weight_decay=0.0, momentum=0.0)
    with pytest.raises(NonFiniteLossError):
        fit(_network(square_data), square_data, cfg, deadline=Deadline(None), device=CPU,
            progress=False)
