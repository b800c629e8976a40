"""The ImageClassifier contract: AutoKeras-style calls, scikit-learn conventions, failure
handling and the time limit, on tiny synthetic images."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score

from autonas import ImageClassifier
from autonas.errors import ConfigError, DataError
from autonas.strategies import available_strategies

TINY = {
    "search_options": {"channels": 4, "layers": 2, "epochs": 1, "batch_size": 16},
    "space_options": {"nodes": 2},
    "network": {"channels": 4, "layers": 2},
    "train_options": {"batch_size": 16},
    "verbose": False,
    "time_limit": 120,
}
MULTI_TRIAL_TINY = {  # a multi-trial search of the DARTS space with tiny trials
    "search_space": "darts", "space_options": {"nodes": 2},
    "search_options": {"trial_channels": 4, "trial_layers": 2, "trial_epochs": 1},
    "network": {"channels": 4, "layers": 2}, "train_options": {"batch_size": 16},
    "verbose": False, "time_limit": 120,
}
NAMES = np.array(["benign", "malignant"])


def make_images(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N,H,W); 'malignant' images have a bright square in the middle."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, size=(n, size, size), dtype=np.uint8)
    y = NAMES[np.arange(n) % 2]
    x[y == "malignant", 4:12, 4:12] = rng.integers(200, 256, size=(n // 2, 8, 8))
    return x, y


@pytest.fixture(scope="module")
def data() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": make_images(64, 0), "val": make_images(24, 1), "test": make_images(30, 2)}


@pytest.fixture(scope="module")
def fitted(data, tmp_path_factory) -> ImageClassifier:
    clf = ImageClassifier(directory=tmp_path_factory.mktemp("clf") / "run", **TINY)
    return clf.fit(*data["train"], validation_data=data["val"], epochs=3)


# ----------------------------------------------------------------------------- contract


def test_predictions_shapes_and_labels(fitted: ImageClassifier, data) -> None:
    x, y = data["test"]
    assert list(fitted.classes_) == ["benign", "malignant"]
    probs = fitted.predict_proba(x)
    assert probs.shape == (30, 2) and probs.dtype == np.float32
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    labels = fitted.predict(x)
    assert labels.shape == (30,) and set(labels) <= {"benign", "malignant"}
    assert np.array_equal(labels, fitted.classes_[probs.argmax(1)])
    # the task is easy: the labels must come back right, not swapped
    assert (labels == y).mean() >= 0.8
    metrics = fitted.evaluate(x, y)
    assert set(metrics) == {"loss", "accuracy", "auc"}
    assert metrics["accuracy"] == pytest.approx((labels == y).mean())
    assert metrics["auc"] >= 0.8 and metrics["loss"] > 0
    assert fitted.score(x, y) == pytest.approx(metrics["accuracy"])
    assert fitted.strategy_ == "darts" and fitted.search_space_ == "darts"


def test_layouts_and_dtypes_give_the_same_predictions(fitted: ImageClassifier, data) -> None:
    x, _ = data["test"]
    ref = fitted.predict_proba(x)
    for variant in (x[..., None], x[:, None], x.astype(np.float32) / 255,
                    torch.from_numpy(x[:, None]), np.repeat(x[..., None], 3, axis=-1)):
        assert np.allclose(fitted.predict_proba(variant), ref, atol=1e-5)
    with pytest.raises(DataError, match="trained on 16x16"):
        fitted.predict(np.zeros((2, 20, 20), dtype=np.uint8))
    with pytest.raises(DataError, match="not seen in fit"):
        fitted.evaluate(x[:4], ["benign", "cyst", "benign", "benign"])


def test_integer_labels_round_trip(data) -> None:
    x, y = data["train"]
    y_int = (y == "malignant").astype(np.uint8).reshape(-1, 1) * 3 + 4  # MedMNIST-like (N,1)
    clf = ImageClassifier(**TINY).fit(x, y_int, epochs=1)
    assert clf.classes_.tolist() == [4, 7] and clf.classes_.dtype == np.uint8
    pred = clf.predict(data["test"][0])
    assert pred.dtype == np.uint8 and set(pred) <= {4, 7}
    assert set(clf.evaluate(x, y_int)) == {"loss", "accuracy", "auc"}


def test_files_pil_images_and_datasets(data, tmp_path: Path) -> None:
    x, y = data["train"]
    files = []
    for i, img in enumerate(x):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(np.kron(img, np.ones((2, 2), dtype=np.uint8))).save(files[-1])  # 32 px
    clf = ImageClassifier(image_size=16, **TINY).fit([str(f) for f in files], y, epochs=1)
    assert clf.input_spec_["height"] == 16 and clf.input_spec_["kind"] == "files"
    from_files = clf.predict_proba(files[:6])
    pil = [Image.open(f) for f in files[:6]]
    assert np.allclose(clf.predict_proba(pil), from_files, atol=1e-6)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(x)

        def __getitem__(self, i: int):
            return torch.from_numpy(x[i][None]).float() / 255, int(y[i] == "malignant")

    clf2 = ImageClassifier(**TINY).fit(Pairs(), epochs=1)
    assert clf2.classes_.tolist() == [0, 1]
    assert clf2.predict_proba(Pairs()).shape == (64, 2)
    assert set(clf2.evaluate(Pairs())) == {"loss", "accuracy", "auc"}


def test_summary(fitted: ImageClassifier) -> None:
    lines: list[str] = []
    fitted.summary(print_fn=lines.append)
    text = "\n".join(lines)
    assert "darts" in text and "parameters" in text and "malignant" in text


def test_not_fitted_and_bad_options(data) -> None:
    with pytest.raises(NotFittedError):
        ImageClassifier().predict(data["test"][0])
    x, y = data["train"]
    with pytest.raises(ConfigError, match="objective"):
        ImageClassifier(objective="val_f1", **TINY).fit(x, y)
    with pytest.raises(ConfigError, match="cyst"):
        ImageClassifier(class_weight={"cyst": 2.0}, **TINY).fit(x, y)
    with pytest.raises(DataError, match="2 classes"):
        ImageClassifier(**TINY).fit(x, np.full(len(x), "benign"))
    with pytest.raises(DataError, match="one label per image"):
        ImageClassifier(**TINY).fit(x, y[:10])


def test_class_weights_reach_the_config(data) -> None:
    x, y = data["train"]
    clf = ImageClassifier(class_weight={"malignant": 3.0}, loss="focal", **TINY).fit(x, y,
                                                                                 epochs=1)
    cfg = json.loads((clf.run_dir_ / "classifier.json").read_text())["config"]
    assert cfg["train"]["class_weights"] == [1.0, 3.0]
    assert cfg["train"]["loss"] == "focal"
    assert cfg["search"]["class_weights"] == [1.0, 3.0] and cfg["search"]["loss"] == "focal"


# ----------------------------------------------------------------------------- scikit-learn


def test_get_set_params_and_clone(fitted: ImageClassifier) -> None:
    params = fitted.get_params()
    assert params["time_limit"] == 120 and params["network"] == {"channels": 4, "layers": 2}
    copy = clone(fitted)
    assert copy.get_params() == params
    assert not hasattr(copy, "classes_")
    copy.set_params(max_trials=3, time_limit="5m")
    assert copy.max_trials == 3 and copy.time_limit == "5m"  # stored as given


def test_cross_val_score(data) -> None:
    x = np.concatenate([data["train"][0], data["val"][0]])
    y = np.concatenate([data["train"][1], data["val"][1]])
    options = {**TINY, "train_options": {"batch_size": 16, "epochs": 2}}  # fit(x, y): no epochs
    scores = cross_val_score(ImageClassifier(**options), x, y, cv=2)
    assert scores.shape == (2,)
    assert all(0.5 <= s <= 1.0 for s in scores)


# ----------------------------------------------------------------------------- persistence


def test_save_load_and_export_round_trips(fitted: ImageClassifier, data, tmp_path) -> None:
    x, _ = data["test"]
    ref = fitted.predict_proba(x)
    fitted.save(tmp_path / "saved")
    state = torch.load(tmp_path / "saved" / "model.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    loaded = ImageClassifier.load(tmp_path / "saved", device="cpu")
    assert np.array_equal(loaded.predict_proba(x), ref)
    assert np.array_equal(loaded.predict(x), fitted.predict(x))
    assert loaded.classes_.dtype == fitted.classes_.dtype
    assert loaded.get_params()["network"] == fitted.get_params()["network"]

    model = fitted.export_model()
    assert isinstance(model, torch.nn.Module) and not model.training
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()  # raw uint8 (N,H,W), as given to fit
        out_float = model(torch.from_numpy(x[:, None]).float() / 255).numpy()
    assert np.abs(out - ref).max() <= 1e-6
    assert np.abs(out_float - ref).max() <= 1e-5
    with torch.no_grad():
        logits = fitted.export_model(probabilities=False)(torch.from_numpy(x))
    assert torch.allclose(logits.softmax(1), torch.from_numpy(ref), atol=1e-6)


def test_pickle_round_trip(fitted: ImageClassifier, data) -> None:
    import pickle

    x, _ = data["test"]
    again = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(again.predict_proba(x), fitted.predict_proba(x))


def test_final_fit_trains_on_train_and_validation(data) -> None:
    x, y = data["train"]
    xv, yv = data["val"]
    clf = ImageClassifier(final_fit=True, **TINY).fit(x, y, validation_data=(xv, yv), epochs=2)
    model = json.loads((clf.run_dir_ / "model.json").read_text())
    assert model["final_fit"]["images"] == len(y) + len(yv)
    assert model["final_fit"]["epochs"] == model["final_fit"]["selected_epochs"] == \
        model["best_epoch"] + 1
    history = (clf.run_dir_ / "final_fit" / "history.jsonl").read_text().splitlines()
    assert len(history) == model["final_fit"]["epochs"]
    # the served network is the final one: its normaliser saw train + validation images
    both = np.concatenate([x, xv]).astype(np.float64) / 255
    assert model["normalizer"]["mean"][0] == pytest.approx(both.mean(), abs=1e-5)
    assert clf.predict(xv).shape == (len(yv),)


def test_directory_overwrite_and_reuse(data, tmp_path: Path) -> None:
    x, y = data["train"]
    run = tmp_path / "run"
    first = ImageClassifier(directory=run, **TINY).fit(x, y, epochs=1)
    assert (run / "model.pt").is_file() and (run / "classifier.json").is_file()
    start = time.monotonic()
    again = ImageClassifier(directory=run, **TINY).fit(x, y, epochs=1)  # same data: loaded
    assert time.monotonic() - start < 5.0
    assert np.array_equal(again.predict_proba(x), first.predict_proba(x))
    with pytest.raises(ConfigError, match="other data"):
        ImageClassifier(directory=run, **TINY).fit(x[:40], y[:40], epochs=1)
    ImageClassifier(directory=run, overwrite=True, **TINY).fit(x[:40], y[:40], epochs=1)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(ConfigError, match="not an autonas run"):
        ImageClassifier(directory=tmp_path / "mine", overwrite=True, **TINY).fit(x, y)
    assert (tmp_path / "mine" / "thesis.tex").is_file()


# ----------------------------------------------------------------------------- failures


def test_failing_one_shot_search_falls_back(data, monkeypatch: pytest.MonkeyPatch) -> None:
    """The supernet diverges in the second search epoch: the architecture of the first
    epoch is retrained and the failure is recorded."""
    from autonas.strategies.darts import Darts
    from autonas.training.loop import NonFiniteLossError

    real = Darts.weight_step
    calls = {"n": 0}

    def diverging(self, xt, yt):
        calls["n"] += 1
        if calls["n"] > 1:  # one weight step per epoch here (27 images, batch 16)
            raise NonFiniteLossError("supernet loss became nan")
        return real(self, xt, yt)

    monkeypatch.setattr(Darts, "weight_step", diverging)
    x, y = data["train"]
    options = {**TINY, "search_options": {**TINY["search_options"], "epochs": 5}}
    with pytest.warns(RuntimeWarning, match="search failed"):
        clf = ImageClassifier(**options).fit(x, y, epochs=1)
    assert clf.failures_[0]["phase"] == "search"
    assert "nan" in clf.failures_[0]["error"]
    assert clf.failures_[0]["fallback"] == "search epoch 0"
    history = [json.loads(line) for line in
               (clf.run_dir_ / "search" / "history.jsonl").read_text().splitlines()]
    assert clf.architecture_ == history[-1]["genotype"]
    assert clf.predict_proba(data["test"][0]).shape == (30, 2)
    assert (clf.run_dir_ / "failures.jsonl").is_file()


def test_search_failing_at_once_uses_a_random_architecture(data, monkeypatch) -> None:
    from autonas.strategies.darts import Darts

    def out_of_memory(self, xt, yt):
        raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    monkeypatch.setattr(Darts, "weight_step", out_of_memory)
    x, y = data["train"]
    with pytest.warns(RuntimeWarning, match="out of memory"):
        clf = ImageClassifier(**TINY).fit(x, y, epochs=1)
    assert clf.failures_[0]["fallback"].startswith("random")
    assert clf.predict(x[:3]).shape == (3,)


def test_failing_trial_is_skipped(data, monkeypatch: pytest.MonkeyPatch) -> None:
    """A multi-trial search: the first candidate's network produces NaN; the trial is
    recorded as failed and the search goes on to the others."""
    if "random" not in available_strategies():
        pytest.skip("no multi-trial strategy registered")
    from autonas.spaces.darts import DartsSpace

    real = DartsSpace.build
    built = {"n": 0}

    class NaNModel(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x) * float("nan")

    def build(self, arch, spec):
        built["n"] += 1
        model = real(self, arch, spec)
        return NaNModel(model) if built["n"] == 1 else model

    monkeypatch.setattr(DartsSpace, "build", build)
    x, y = data["train"]
    clf = ImageClassifier(max_trials=3, strategy="random", **MULTI_TRIAL_TINY).fit(x, y,
                                                                                  epochs=1)
    rows = [json.loads(line) for line in
            (clf.run_dir_ / "search" / "trials.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert "nan" in rows[0]["error"].lower()
    assert clf.architecture_ in [r["arch"] for r in rows[1:]]
    assert clf.predict(x[:4]).shape == (4,)


def test_auto_strategy_uses_multi_trial_with_max_trials(data) -> None:
    available = available_strategies()
    wanted = next((s for s in ("evolution", "tpe", "random") if s in available), None)
    if wanted is None:
        pytest.skip("no multi-trial strategy registered")
    x, y = data["train"]
    clf = ImageClassifier(max_trials=2, **MULTI_TRIAL_TINY).fit(x, y, epochs=1)
    assert clf.strategy_ == wanted
    cfg = json.loads((clf.run_dir_ / "classifier.json").read_text())["config"]
    assert cfg["search"]["max_trials"] == 2 and cfg["search"]["objective"] == "auc"
    rows = (clf.run_dir_ / "search" / "trials.jsonl").read_text().splitlines()
    assert len(rows) == 2


def test_ctrl_c_in_retraining_keeps_the_best_epoch(data, tmp_path, monkeypatch) -> None:
    """Ctrl-C in the 3rd retraining epoch: fit returns with the best of epochs 1-2 and a
    warning; fitting again in the same directory continues the run."""
    import autonas.training.trainer as trainer

    real = trainer.train_epoch
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", interrupted)
    x, y = data["train"]
    run = tmp_path / "run"
    with pytest.warns(RuntimeWarning, match="interrupted"):
        clf = ImageClassifier(directory=run, **TINY).fit(x, y, epochs=5)
    assert clf.interrupted_
    assert json.loads((run / "model.json").read_text())["epochs"] == 2
    probs = clf.predict_proba(data["test"][0])
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    assert json.loads((run / "status.json").read_text())["retrain"]["state"] == "interrupted"

    monkeypatch.setattr(trainer, "train_epoch", real)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed = ImageClassifier(directory=run, **TINY).fit(x, y, epochs=5)
    assert not [w for w in caught if "interrupted" in str(w.message)]
    assert not resumed.interrupted_
    assert json.loads((run / "status.json").read_text())["retrain"]["state"] == "done"
    history = (run / "retrain" / "history.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in history] == [0, 1, 2, 3, 4]


def test_ctrl_c_in_search_without_a_model_propagates(data, monkeypatch) -> None:
    from autonas.strategies.darts import Darts

    def stop(self, xt, yt):
        raise KeyboardInterrupt

    monkeypatch.setattr(Darts, "weight_step", stop)
    x, y = data["train"]
    with pytest.raises(KeyboardInterrupt, match="before any network"):
        ImageClassifier(**TINY).fit(x, y)


# ----------------------------------------------------------------------------- time limit

SETUP_SECONDS = 1.5
"""Allowed on top of time_limit * 1.05: one training step or evaluation that overruns its
estimate on a machine busy with other work. fit's own preparation (reading the arrays,
creating the run folder) counts against the limit, so it needs no allowance."""


@pytest.mark.slow
def test_time_limit_is_kept(data) -> None:
    limit = 12.0
    options = {**TINY, "time_limit": limit,
               "search_options": {**TINY["search_options"], "epochs": 10_000}}
    x, y = data["train"]
    start = time.monotonic()
    clf = ImageClassifier(**options).fit(x, y)  # epochs=None: as many as the limit allows
    wall = time.monotonic() - start
    assert wall <= limit * 1.05 + SETUP_SECONDS, wall
    assert wall >= 0.7 * limit, wall  # the limit, not an epoch count, ended the fit
    status = json.loads((clf.run_dir_ / "status.json").read_text())
    assert status["search"]["state"] == status["retrain"]["state"] == "done"
    model = json.loads((clf.run_dir_ / "model.json").read_text())
    # the epoch count was planned from the limit (the plan may end just before it)
    assert model["epochs"] >= 2 and model["stopped"] in ("budget", "completed")


def test_a_crashed_multi_trial_search_retrains_its_best_finished_trial(
        data, monkeypatch: pytest.MonkeyPatch) -> None:
    """Trials finished before the crash: the fallback is the best of them, not a random
    architecture."""
    import autonas.trials.search as trial_search

    def crash(strategy, rows, *args, **kwargs):
        raise RuntimeError("crash after the trials")

    monkeypatch.setattr(trial_search, "search_result", crash)
    x, y = data["train"]
    with pytest.warns(RuntimeWarning, match="search failed"):
        clf = ImageClassifier(max_trials=3, strategy="random", **MULTI_TRIAL_TINY).fit(
            x, y, epochs=1)
    rows = [json.loads(line) for line in
            (clf.run_dir_ / "search" / "trials.jsonl").read_text().splitlines()]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    best = max(complete, key=lambda r: (r["value"], -r["number"]))
    assert clf.failures_[0]["fallback"] == f"search trial {best['number']} (best finished)"
    assert clf.architecture_ == best["arch"]
