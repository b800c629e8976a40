"""The ordinal option (RetinaMNIST's task kind): a CORAL head, its loss, and a run with
``train.ordinal=true`` that reports MAE next to ACC and AUC and exports class
probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from autonas.config import RunConfig
from autonas.errors import ConfigError
from autonas.export import export_run
from autonas.pipeline import execute
from autonas.run import RunDir
from autonas.training.losses import CoralLoss, make_loss
from autonas.training.metrics import classification_metrics
from autonas.training.tasks import CoralHead, coral_probs, to_probs


def test_coral_probabilities_sum_to_one_and_thresholds_are_ordered() -> None:
    torch.manual_seed(0)
    head = CoralHead(nn.Linear(6, 1), n_classes=5)
    with torch.no_grad():
        head.steps.normal_(0, 3)  # any raw values: the thresholds stay increasing
        head.first.fill_(-1.0)
    thresholds = head.thresholds()
    assert (thresholds[1:] > thresholds[:-1]).all()
    logits = head(torch.randn(32, 6))
    assert logits.shape == (32, 4)
    above = torch.sigmoid(logits)
    assert (above[:, 1:] <= above[:, :-1]).all()  # P(y > k) falls with k
    probs = to_probs(logits, "coral")
    assert probs.shape == (32, 5) and (probs >= 0).all()
    assert torch.allclose(probs.sum(1), torch.ones(32), atol=1e-6)
    # p_k = P(y > k-1) - P(y > k), the definition
    assert torch.allclose(probs[:, 0], 1 - above[:, 0], atol=1e-6)
    assert torch.allclose(probs[:, 2], above[:, 1] - above[:, 2], atol=1e-6)
    assert torch.allclose(probs[:, 4], above[:, 3], atol=1e-6)
    assert torch.allclose(coral_probs(torch.zeros(1, 1)), torch.tensor([[0.5, 0.5]]))


def test_coral_loss_targets_are_cumulative() -> None:
    logits = torch.zeros(1, 3, requires_grad=True)
    CoralLoss()(logits, torch.tensor([2])).backward()  # grade 2 of 4: y>0, y>1 true; y>2 not
    assert torch.allclose(logits.grad, torch.tensor([[-0.5, -0.5, 0.5]]) / 3)
    with pytest.raises(ConfigError, match="ordinal"):
        make_loss("coral", head="softmax")


def test_coral_learns_a_toy_ordinal_problem() -> None:
    """Grades 0-4 from a noisy 1-D score: CORAL beats chance (20%) by far and its errors
    are mostly one grade off."""
    g = torch.Generator().manual_seed(0)
    grade = torch.randint(0, 5, (600,), generator=g)
    x = torch.stack([grade.float() + 0.4 * torch.randn(600, generator=g),
                     torch.randn(600, generator=g)], dim=1)
    torch.manual_seed(0)
    model = CoralHead(nn.Linear(2, 1), n_classes=5)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    loss_fn = CoralLoss()
    for _ in range(300):
        opt.zero_grad()
        loss_fn(model(x[:400]), grade[:400]).backward()
        opt.step()
    with torch.no_grad():
        probs = to_probs(model(x[400:]), "coral").numpy()
    m = classification_metrics(grade[400:].numpy(), probs, ordinal=True)
    assert m["accuracy"] > 0.6 and m["mae"] < 0.5 and m["auc"] > 0.85
    assert m["task"] == "ordinal"


def write_grades(path: Path) -> Path:
    """16 px images whose brightness encodes one of 3 grades."""
    arrays = {}
    for i, (split, n) in enumerate({"train": 60, "val": 30, "test": 30}.items()):
        rng = np.random.default_rng(i)
        y = np.arange(n) % 3
        x = rng.integers(0, 40, (n, 16, 16)).astype(np.uint8) + (y * 80)[:, None, None].astype(
            np.uint8)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = x, y[:, None].astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_ordinal_run_reports_mae_and_exports_probabilities(tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({
        "dataset": str(write_grades(tmp_path / "grades.npz")), "strategy": "random",
        "space": "medmnist-cnn", "search": {"max_trials": 1, "trial_epochs": 1},
        "train": {"epochs": 3, "batch_size": 16, "ordinal": True}, "budget": None,
        "device": "cpu"})
    run = RunDir.create(tmp_path / "run", name="grades")
    summary = execute(cfg, run)
    test = summary["metrics"]["test"]
    assert {"accuracy", "auc", "mae"} <= set(test) and test["task"] == "ordinal"
    model = json.loads(run.file("model.json").read_text())
    assert model["build"]["head"] == "coral"
    probs = np.load(run.file("predictions.npz"))["test_probs"]
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    result = export_run(run.path, "state_dict", tmp_path / "coral.pt")
    assert result["max_abs_diff"] <= 1e-5
    assert "mean absolute error" in run.file("report.html").read_text()


def test_image_classifier_with_an_ordinal_loss(tmp_path: Path) -> None:
    from autonas import ImageClassifier

    with np.load(write_grades(tmp_path / "grades.npz")) as f:
        x, y = f["train_images"], f["train_labels"]
        xt, yt = f["test_images"], f["test_labels"]
    clf = ImageClassifier(loss="coral", max_trials=1, search_space="medmnist-cnn", verbose=0,
                          search_options={"trial_epochs": 1}, time_limit=120)
    clf.fit(x, y, epochs=3)
    assert clf.model_.head == "coral" and clf.model_meta_["build"]["head"] == "coral"
    probs = clf.predict_proba(xt)
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert set(clf.evaluate(xt, yt, return_dict=True)) == {"loss", "accuracy", "auc", "mae"}
    with torch.no_grad():
        exported = clf.export_model()(torch.from_numpy(xt[:4]))
    assert np.allclose(exported.numpy(), probs[:4], atol=1e-5)
