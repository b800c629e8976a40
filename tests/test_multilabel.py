"""Multi-label data (ChestMNIST's task kind): metrics, thresholds, loss, and whole runs on a
ChestMNIST-layout file with DARTS and with random search, through ONNX and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from medmnist import INFO
from sklearn.metrics import roc_auc_score

from autonas import ImageClassifier
from autonas.config import RunConfig
from autonas.data import load_dataset
from autonas.errors import DataError
from autonas.export import export_run
from autonas.pipeline import execute
from autonas.run import RunDir
from autonas.training.losses import MultiLabelLoss, label_pos_weights, make_loss
from autonas.training.metrics import choose_thresholds, classification_metrics, epoch_score

N_LABELS = 14
SPLITS = {"train": 72, "val": 40, "test": 40}


def chest_arrays(n: int, seed: int, side: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, side, side) images and (N, 14) labels; label j brightens row band j, so
    every label is learnable from the pixels and labels co-occur freely."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, N_LABELS)) < 0.3).astype(np.uint8)
    x = rng.integers(0, 60, (n, side, side), dtype=np.uint8)
    band = side // N_LABELS
    for j in range(N_LABELS):
        x[y[:, j] == 1, j * band:(j + 1) * band] += 150
    return x, y


def write_chestmnist(folder: Path) -> Path:
    """chestmnist.npz in the official layout (grey 28 px images, (N, 14) uint8 labels)."""
    arrays = {}
    for i, (split, n) in enumerate(SPLITS.items()):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = chest_arrays(n, seed=i)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "chestmnist.npz", **arrays)
    return folder / "chestmnist.npz"


# ----------------------------------------------------------------------------- metrics


def test_metrics_match_a_hand_computed_example() -> None:
    y = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    p = np.array([[0.9, 0.2, 0.6], [0.3, 0.8, 0.4], [0.6, 0.4, 0.1], [0.2, 0.1, 0.7],
                  [0.4, 0.3, 0.2]])
    m = classification_metrics(y, p, ["a", "b", "c"])
    per_label = [roc_auc_score(y[:, j], p[:, j]) for j in range(3)]
    assert [m["per_label"][n]["auc"] for n in "abc"] == pytest.approx(per_label)
    assert m["auc"] == pytest.approx(np.mean(per_label))
    # at 0.5 each label misses one image: a image 4 (0.4), b image 2 (0.4), c image 1 (0.4)
    assert [m["per_label"][n]["accuracy"] for n in "abc"] == pytest.approx([0.8, 0.8, 0.8])
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["exact_match"] == pytest.approx(2 / 5)  # images 0 and 3 are wholly right
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
    assert m["loss"] == pytest.approx(bce)
    assert m["per_label"]["a"]["confusion_matrix"] == [[2, 0], [1, 2]]
    # a label with one class in the split has no AUC and is left out of the mean
    y2 = y.copy()
    y2[:, 2] = 1
    m2 = classification_metrics(y2, p, ["a", "b", "c"])
    assert m2["per_label"]["c"]["auc"] is None
    assert m2["auc"] == pytest.approx(np.mean(per_label[:2]))


def test_thresholds_are_chosen_on_validation_and_applied() -> None:
    # label 0 separates at 0.3 (scores all low), label 1 at 0.5, label 2 is constant
    y = np.array([[0, 0, 1], [0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1], [1, 1, 1]])
    p = np.array([[0.10, 0.2, 0.5], [0.20, 0.7, 0.5], [0.35, 0.3, 0.5], [0.40, 0.9, 0.5],
                  [0.05, 0.1, 0.5], [0.30, 0.6, 0.5]])
    thr = choose_thresholds(y, p)
    assert 0.2 < thr[0] <= 0.30 and 0.3 < thr[1] <= 0.6 and thr[2] == 0.5
    at_half = classification_metrics(y, p)
    chosen = classification_metrics(y, p, thresholds=thr)
    assert at_half["per_label"]["0"]["accuracy"] == pytest.approx(0.5)
    assert chosen["per_label"]["0"]["accuracy"] == 1.0
    assert chosen["thresholds"] == pytest.approx(thr)
    # epoch selection ranks multi-label epochs by mean AUC, never by "deciding"
    worse = classification_metrics(y, p[:, ::-1].copy())
    assert epoch_score(chosen, "auc") > epoch_score(worse, "auc")


def test_bce_gradient_and_label_weights() -> None:
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.0]], requires_grad=True)
    target = torch.tensor([[1, 0], [0, 1]])
    MultiLabelLoss().forward(logits, target).backward()
    expected = (torch.sigmoid(logits.detach()) - target) / target.numel()
    assert torch.allclose(logits.grad, expected, atol=1e-6)
    # 'balanced' weights: negatives / positives per label; they raise the positives' pull
    weights = label_pos_weights([1, 3], 4)
    assert weights.tolist() == pytest.approx([3.0, 1 / 3])
    weighted = make_loss("ce", weights, head="sigmoid")
    plain = make_loss("ce", head="sigmoid")
    missed = torch.tensor([[-3.0, -3.0]])
    assert weighted(missed, torch.tensor([[1, 0]])) > plain(missed, torch.tensor([[1, 0]]))
    focal = make_loss("focal", head="sigmoid", gamma=2.0)
    easy = torch.tensor([[4.0, -4.0]])
    assert focal(easy, torch.tensor([[1, 0]])) < 0.01 * plain(easy, torch.tensor([[1, 0]]))
    with pytest.raises(Exception, match="multi-label"):
        make_loss("coral", head="sigmoid")


# ----------------------------------------------------------------------------- whole runs

TINY_NET = {"network": {"channels": 4, "layers": 2}, "train": {"epochs": 3, "batch_size": 16},
            "budget": None, "device": "cpu"}


@pytest.fixture(scope="module")
def chest_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("chest-cache")
    write_chestmnist(folder)
    return folder


@pytest.fixture
def chest(chest_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AUTONAS_DATA", str(chest_dir))
    monkeypatch.setenv("AUTONAS_VERIFY_MD5", "0")
    return load_dataset("chestmnist", download=False)


def test_chestmnist_darts_run_end_to_end(chest, tmp_path: Path) -> None:
    assert chest.task == "multi-label" and chest.train_y.shape == (72, 14)
    cfg = RunConfig.from_dict({
        "dataset": "chestmnist", "strategy": "darts", "space_options": {"nodes": 2},
        "search": {"epochs": 2, "channels": 4, "layers": 2, "batch_size": 16}, **TINY_NET})
    run = RunDir.create(tmp_path / "run", name="chest")
    summary = execute(cfg, run, data=chest)
    test = summary["metrics"]["test"]
    assert test["task"] == "multi-label"
    names = [INFO["chestmnist"]["label"][str(j)] for j in range(14)]
    assert list(test["per_label"]) == names
    assert len(test["thresholds"]) == 14
    preds = np.load(run.file("predictions.npz"))
    assert preds["test_probs"].shape == (40, 14) and preds["test_labels"].shape == (40, 14)
    assert ((preds["test_probs"] >= 0) & (preds["test_probs"] <= 1)).all()
    assert test["auc"] == pytest.approx(np.mean([
        roc_auc_score(preds["test_labels"][:, j], preds["test_probs"][:, j])
        for j in range(14) if 0 < preds["test_labels"][:, j].sum() < 40]))
    model = json.loads(run.file("model.json").read_text())
    assert model["build"]["head"] == "sigmoid" and model["thresholds"] == test["thresholds"]
    history = run.read_jsonl("search/history.jsonl")
    assert len(history) == 2 and all(np.isfinite(h["train_loss"]) for h in history)
    report = run.file("report.html").read_text()
    assert "ROC per label" in report and "exact match" in report

    from PIL import Image

    from autonas.export.predict import predict_files

    files = []
    for i in range(3):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(chest.test_x[i, 0].numpy()).save(files[-1])
    _, rows = predict_files(run.path, files)
    for (_, text, probs), expected in zip(rows, preds["test_probs"][:3]):
        assert np.allclose(probs, expected, atol=1e-5)
        over = [n for n, p, t in zip(names, probs, test["thresholds"]) if p >= t]
        assert text == "|".join(over)  # the labels over their validation thresholds

    pytest.importorskip("onnxruntime")
    from autonas.export.onnx import onnx_outputs

    result = export_run(run.path, "onnx", tmp_path / "chest.onnx")
    assert result["max_abs_diff"] <= 1e-4
    out = onnx_outputs(tmp_path / "chest.onnx", chest.test_x[:5].numpy())
    assert out.shape == (5, 14)
    assert np.allclose(out, preds["test_probs"][:5], atol=1e-4)  # sigmoid, not softmax


def test_chestmnist_random_search_uses_the_same_path(chest, tmp_path: Path) -> None:
    cfg = RunConfig.from_dict({
        "dataset": "chestmnist", "strategy": "random", "space": "medmnist-cnn",
        "search": {"max_trials": 2, "trial_epochs": 1}, **TINY_NET})
    run = RunDir.create(tmp_path / "run", name="chest-random")
    summary = execute(cfg, run, ("search", "retrain", "evaluate"), data=chest)
    trials = run.read_jsonl("search/trials.jsonl")
    assert [t["state"] for t in trials] == ["COMPLETE", "COMPLETE"]
    assert all(t["val"]["task"] == "multi-label" and 0 <= t["value"] <= 1 for t in trials)
    assert summary["metrics"]["test"]["per_label"]


# ----------------------------------------------------------------------------- classifier


def test_image_classifier_with_label_sets(tmp_path: Path) -> None:
    _, y = chest_arrays(96, seed=5, side=16)
    y = y[:, :3]
    x = np.random.default_rng(0).integers(0, 60, (96, 16, 16), dtype=np.uint8)
    for j in range(3):
        x[y[:, j] == 1, 5 * j:5 * j + 5] += 150
    names = [[n for n, on in zip(("effusion", "mass", "nodule"), row) if on] for row in y]
    options = {"search_options": {"channels": 4, "layers": 2, "epochs": 1, "batch_size": 16},
               "space_options": {"nodes": 2}, "network": {"channels": 4, "layers": 2},
               "verbose": 0, "time_limit": 120}
    clf = ImageClassifier(**options).fit(x[:72], names[:72], epochs=4)  # detected
    assert clf.multi_label_ and list(clf.classes_) == ["effusion", "mass", "nodule"]
    pred = clf.predict(x[72:])
    assert isinstance(pred, list) and all(set(p) <= {"effusion", "mass", "nodule"} for p in pred)
    probs = clf.predict_proba(x[72:])
    assert probs.shape == (24, 3) and not np.allclose(probs.sum(1), 1.0)
    assert len(clf.thresholds_) == 3
    loss, accuracy = clf.evaluate(x[72:], names[72:])
    as_dict = clf.evaluate(x[72:], names[72:], return_dict=True)
    assert [as_dict["loss"], as_dict["accuracy"]] == [loss, accuracy]
    assert clf.score(x[72:], names[72:]) == pytest.approx(accuracy)
    exported = clf.export_model()
    with torch.no_grad():
        out = exported(torch.from_numpy(x[72:]))
    assert np.allclose(out.numpy(), probs, atol=1e-5)  # preprocessing and sigmoid inside

    # a 0/1 array answers with a 0/1 array, and survives save/load
    arr = ImageClassifier(multi_label=True, num_classes=3, **options).fit(x[:72], y[:72],
                                                                         epochs=1)
    assert arr.predict(x[72:]).shape == (24, 3)
    loaded = ImageClassifier.load(arr.save(tmp_path / "saved"))
    assert np.array_equal(loaded.predict(x[72:]), arr.predict(x[72:]))
    with pytest.raises(DataError, match="not seen in fit"):
        clf.evaluate(x[:2], [["effusion"], ["fracture"]])
