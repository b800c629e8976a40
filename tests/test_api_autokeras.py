"""The AutoKeras arguments of ImageClassifier: num_classes, multi_label, project_name,
max_model_size; fit's batch_size, callbacks, verbose, epochs and validation_split; and
evaluate's Keras return value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autonas import ImageClassifier
from autonas.errors import ConfigError, DataError

TINY = {
    "search_options": {"channels": 4, "layers": 2, "epochs": 1},
    "space_options": {"nodes": 2},
    "network": {"channels": 4, "layers": 2},
    "verbose": 0,
    "time_limit": 120,
}
MULTI_TRIAL = {
    "search_space": "darts", "space_options": {"nodes": 2}, "max_trials": 2,
    "search_options": {"trial_channels": 4, "trial_layers": 2},
    "network": {"channels": 4, "layers": 2}, "verbose": 0, "time_limit": 120,
}


def make_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 90, size=(n, 16, 16), dtype=np.uint8)
    y = np.arange(n) % 2
    x[y == 1, 4:12, 4:12] = 230
    return x, y


def config(clf: ImageClassifier) -> dict:
    return json.loads((clf.run_dir_ / "classifier.json").read_text())["config"]


def test_validation_split_defaults_to_a_fifth_and_batch_size_reaches_training() -> None:
    x, y = make_images(60)
    clf = ImageClassifier(**TINY).fit(x, y, epochs=1, batch_size=8)
    sizes = json.loads((clf.run_dir_ / "data.json").read_text())["sizes"]
    assert sizes["val"] == 12 and sizes["train"] == 48  # 20% held out, as AutoKeras
    cfg = config(clf)
    assert cfg["train"]["batch_size"] == 8 and cfg["search"]["batch_size"] == 8
    with pytest.raises(ConfigError, match="batch_size"):
        ImageClassifier(**TINY).fit(x, y, batch_size=0)


def test_evaluate_returns_keras_list_or_dict() -> None:
    x, y = make_images(48)
    clf = ImageClassifier(**TINY).fit(x, y, epochs=1)
    result = clf.evaluate(x, y)
    assert isinstance(result, list) and len(result) == 2
    as_dict = clf.evaluate(x, y, return_dict=True)
    assert result == [as_dict["loss"], as_dict["accuracy"]] and "auc" in as_dict


def test_num_classes_is_checked() -> None:
    x, y = make_images(40)
    with pytest.raises(DataError, match="num_classes=3"):
        ImageClassifier(num_classes=3, **TINY).fit(x, y, epochs=1)
    assert ImageClassifier(num_classes=2, **TINY).fit(x, y, epochs=1).classes_.tolist() == [0, 1]


def test_one_hot_targets_are_single_label_unless_multi_label_is_asked() -> None:
    x, y = make_images(40)
    one_hot = np.eye(2, dtype=np.int64)[y]
    single = ImageClassifier(**TINY).fit(x, one_hot, epochs=1)
    assert not single.multi_label_ and single.predict(x[:3]).shape == (3,)
    several = ImageClassifier(multi_label=True, **TINY).fit(x, one_hot, epochs=1)
    assert several.multi_label_ and several.predict(x[:3]).shape == (3, 2)


def test_project_name_lays_out_folders_as_autokeras(tmp_path: Path) -> None:
    x, y = make_images(40)
    clf = ImageClassifier(directory=tmp_path, project_name="chest", **TINY).fit(x, y, epochs=1)
    assert clf.run_dir_ == tmp_path / "chest"
    assert (tmp_path / "chest" / "model.pt").is_file()
    assert ImageClassifier.load(tmp_path / "chest").predict(x[:4]).tolist() == \
        clf.predict(x[:4]).tolist()
    with pytest.raises(ConfigError, match="project_name"):
        ImageClassifier(directory=tmp_path, project_name="../elsewhere", **TINY).fit(x, y)


def test_max_model_size_constrains_multi_trial_search() -> None:
    x, y = make_images(40)
    cap = 1_500  # between the sizes of the tiny trial networks the seed draws
    clf = ImageClassifier(max_model_size=cap, **{**MULTI_TRIAL, "max_trials": 3}).fit(
        x, y, epochs=1)
    cfg = config(clf)
    assert cfg["search"]["max_params"] == cap
    assert cfg["search"]["trial_epochs"] == 1  # epochs bounds trial training too
    trials = [json.loads(line) for line in
              (clf.run_dir_ / "search" / "trials.jsonl").read_text().splitlines()]
    states = {t["state"] for t in trials}
    assert states == {"PRUNED", "COMPLETE"}
    for t in trials:
        assert t["state"] == ("PRUNED" if t["params"] > cap else "COMPLETE")
    # the retrained network (wider than the trials' proxies) is held to the cap as well
    assert sum(p.numel() for p in clf.export_model().network.parameters()) <= cap


def test_max_model_size_narrows_a_one_shot_result_or_fails_clearly() -> None:
    x, y = make_images(40)
    options = {**TINY, "network": {"channels": 16, "layers": 2}}
    clf = ImageClassifier(max_model_size=8_000, **options).fit(x, y, epochs=1)
    params = sum(p.numel() for p in clf.export_model().network.parameters())
    assert params <= 8_000
    assert clf.model_meta_["build"]["channels"] < 16
    with pytest.raises(ConfigError, match="max_model_size=100"):
        ImageClassifier(max_model_size=100, **options).fit(x, y, epochs=1)


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[int, dict]] = []

    def on_epoch_end(self, epoch: int, logs: dict) -> None:
        self.seen.append((epoch, logs))


def test_callbacks_receive_keras_logs() -> None:
    x, y = make_images(48)
    recorder, calls = Recorder(), []
    ImageClassifier(**TINY).fit(x, y, epochs=3,
                                callbacks=[recorder, lambda e, logs: calls.append(e)])
    assert [e for e, _ in recorder.seen] == [0, 1, 2] and calls == [0, 1, 2]
    logs = recorder.seen[-1][1]
    assert set(logs) == {"loss", "accuracy", "val_loss", "val_accuracy", "val_auc"}
    assert all(isinstance(v, float) for v in logs.values())
    with pytest.raises(ConfigError, match="on_epoch_end"):
        ImageClassifier(**TINY).fit(x, y, epochs=1, callbacks=[42])


def test_a_raising_callback_stops_the_fit_keeping_the_best_model() -> None:
    x, y = make_images(48)

    def stop_after_two(epoch: int, logs: dict) -> None:
        if epoch == 1:
            raise RuntimeError("enough")

    with pytest.warns(RuntimeWarning, match="callback stopped the fit"):
        clf = ImageClassifier(**TINY).fit(x, y, epochs=6, callbacks=stop_after_two)
    assert "enough" in clf.stopped_by_
    assert clf.model_meta_["epochs"] == 2 and clf.model_meta_["stopped"] == "interrupted"
    probs = clf.predict_proba(x[:5])
    assert probs.shape == (5, 2) and np.allclose(probs.sum(1), 1.0, atol=1e-5)


def test_verbose_levels(capsys: pytest.CaptureFixture) -> None:
    x, y = make_images(40)
    ImageClassifier(**{**TINY, "verbose": 1}).fit(x, y, epochs=1, verbose=0)
    assert "retrain" not in capsys.readouterr().err
    ImageClassifier(**{**TINY, "verbose": 0}).fit(x, y, epochs=1, verbose=1)
    assert "retrain" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="verbose"):
        ImageClassifier(**TINY).fit(x, y, verbose=5)


def test_export_model_includes_preprocessing() -> None:
    x, y = make_images(40)
    clf = ImageClassifier(**TINY).fit(x, y, epochs=1)
    model = clf.export_model()
    assert isinstance(model, torch.nn.Module) and not model.training
    with torch.no_grad():
        raw = model(torch.from_numpy(x[:6]))  # uint8 (N, H, W), as given to fit
    assert np.allclose(raw.numpy(), clf.predict_proba(x[:6]), atol=1e-5)
