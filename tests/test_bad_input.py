"""Bad or odd input as a new user gives it: every case ends in a clear message (or a warning
that says what was done), never a traceback or a silently wrong result."""

from __future__ import annotations

import logging
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from typer.testing import CliRunner

from autonas.cli import app, build_config
from autonas.cli_options import CommandOptions
from autonas.data import Normalizer, from_arrays, from_folder, load_dataset
from autonas.data.inputs import encode_labels
from autonas.errors import ConfigError, DataError
from autonas.pipeline import load_data
from autonas.run import RunDir
from autonas.training.budget import Deadline
from autonas.training.trainer import TrainConfig, fit

ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1", "COLUMNS": "200"}
SIZES = {"train": 48, "val": 16, "test": 16}


def splits(train_dtype=np.uint8, train_scale: float = 1.0, seed: int = 0,
           ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Two classes of 16x16 images (class 1: a bright square), uint8 unless told."""
    out = {}
    for i, (split, n) in enumerate(SIZES.items()):
        rng = np.random.default_rng(seed + i)
        x = rng.integers(0, 90, size=(n, 16, 16)).astype(np.uint8)
        y = (np.arange(n) % 2).astype(np.int64)
        x[y == 1, 4:12, 4:12] = 230
        if split == "train":
            x = (x.astype(np.float64) * train_scale).astype(train_dtype)
        out[split] = (x, y)
    return out


def write_npz(path: Path, arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> Path:
    np.savez(path, **{f"{s}_{k}": v for s, (x, y) in arrays.items()
                      for k, v in (("images", x), ("labels", y))})
    return path


def invoke(*args: object):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def fails_cleanly(*args: object, match: str | list[str]):
    """Exit code 2, each expected phrase in the output, no traceback, no escaped exception."""
    result = invoke(*args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        repr(result.exception)
    assert "Traceback" not in result.output
    text = " ".join(result.output.split())  # Rich wraps long lines
    for phrase in [match] if isinstance(match, str) else match:
        assert phrase in text, text
    return text


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    return write_npz(tmp_path_factory.mktemp("data") / "tiny.npz", splits())


# ----------------------------------------------------------------------------- --set types


@pytest.mark.parametrize(("option", "message"), [
    ("search.epochs=abc", "search.epochs must be an integer, got 'abc'"),
    ("network.channels=abc", "network.channels must be an integer, got 'abc'"),
    ("train.epochs=abc", "train.epochs must be an integer or null, got 'abc'"),
    ("train.lr=abc", "train.lr must be a number, got 'abc'"),
    ("search.w_lr=fast", "search.w_lr must be a number, got 'fast'"),
    ("train.augment=maybe", "train.augment must be true or false, got 'maybe'"),
    ("seed=1.5", "seed must be an integer, got 1.5"),
    ("network=wide", "network must be a mapping of options, got 'wide'"),
])
def test_set_values_are_type_checked_before_anything_runs(npz: Path, tmp_path: Path,
                                                          option: str, message: str) -> None:
    out = tmp_path / "run"
    fails_cleanly("run", "--data", npz, "--strategy", "darts", "--set", option, "--out", out,
                  match=message)
    assert not out.exists()


def test_strategy_options_are_checked_for_the_chosen_strategy(npz: Path, tmp_path: Path) -> None:
    fails_cleanly("search", "--data", npz, "--strategy", "tpe", "--set",
                  "search.trial_epochs=many", "--out", tmp_path / "r",
                  match="search.trial_epochs must be an integer, got 'many'")
    fails_cleanly("search", "--data", npz, "--strategy", "tpe", "--set",
                  "search.train.lr=abc", "--out", tmp_path / "r",
                  match="search.train.lr must be a number, got 'abc'")


def test_config_file_values_are_type_checked(npz: Path, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("train:\n  lr: abc\n")
    fails_cleanly("run", "--data", npz, "--config", config, "--out", tmp_path / "r",
                  match="train.lr must be a number, got 'abc'")


def test_loose_yaml_numbers_are_converted() -> None:
    """YAML 1.1 reads 1e-3 as text and 3.0 as a float: both mean what the user wrote."""
    cfg = build_config(config=None, dataset=None, data=None, size=None, strategy="darts",
                       budget=None, epochs=None, retrain_epochs=None, seed=None, device=None,
                       sets=["train.lr=1e-3", "search.epochs=3.0", "search.alpha_lr=3e-4",
                             "network.dropout=0"])
    assert cfg.train.lr == pytest.approx(1e-3) and isinstance(cfg.train.lr, float)
    assert cfg.search["epochs"] == 3 and isinstance(cfg.search["epochs"], int)
    assert cfg.search["alpha_lr"] == pytest.approx(3e-4)
    assert isinstance(cfg.network.dropout, float)


def test_config_file_budget_reads_durations(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("budget: 10m\nsearch:\n")
    cfg = build_config(config=config, dataset=None, data=None, size=None, strategy=None,
                       budget=None, epochs=None, retrain_epochs=None, seed=None, device=None,
                       sets=None)
    assert cfg.budget == 600.0
    assert isinstance(cfg.search, dict)


def test_list_class_weights_still_accepted() -> None:
    cfg = build_config(config=None, dataset=None, data=None, size=None, strategy=None,
                       budget=None, epochs=None, retrain_epochs=None, seed=None, device=None,
                       sets=["train.class_weights=[1,3]"])
    assert cfg.train.class_weights == [1.0, 3.0]
    with pytest.raises(ConfigError, match=r"train\.class_weights must be"):
        build_config(config=None, dataset=None, data=None, size=None, strategy=None,
                     budget=None, epochs=None, retrain_epochs=None, seed=None, device=None,
                     sets=["train.class_weights=[a, b]"])


# ----------------------------------------------------------------------------- --out


def test_out_is_an_existing_file(npz: Path, tmp_path: Path) -> None:
    existing = tmp_path / "notes.txt"
    existing.write_text("mine")
    fails_cleanly("run", "--data", npz, "--out", existing, match="is an existing file")
    assert existing.read_text() == "mine"
    fails_cleanly("run", "--data", npz, "--out", existing / "sub",
                  match="is a file, so no folder can be made under it")


def test_out_in_a_read_only_folder(npz: Path, tmp_path: Path, monkeypatch) -> None:
    """(Checked through os.access: a root user could write to a chmod-ed folder anyway.)"""
    import autonas.cli as cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(cli.os, "access",
                        lambda p, mode: False if Path(p) == locked else real_access(p, mode))
    fails_cleanly("run", "--data", npz, "--out", locked / "run",
                  match=["cannot write to", "permission denied"])
    assert not (locked / "run").exists()


def test_out_that_cannot_be_created(npz: Path, tmp_path: Path, monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(RunDir, "create", refuse)
    fails_cleanly("run", "--data", npz, "--out", tmp_path / "r",
                  match=["cannot create the run folder", "Permission denied"])


def test_failed_data_check_leaves_no_run_folder(tmp_path: Path) -> None:
    bad = tmp_path / "labels.npz"
    arrays = splits()
    arrays["train"] = (arrays["train"][0], np.where(np.arange(48) == 5, 7, arrays["train"][1]))
    write_npz(bad, arrays)
    out = tmp_path / "run"
    for _ in range(2):  # the rerun with the same --out gives the same message, no --resume hint
        text = fails_cleanly("run", "--data", bad, "--out", out, match="label 7 at index 5")
        assert "--resume" not in text
        assert not out.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    fails_cleanly("search", "--data", bad, "--out", empty, match="label 7")
    assert empty.is_dir() and not any(empty.iterdir())


# ----------------------------------------------------------------------------- data files


def test_text_file_as_data_is_not_an_npz(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("train,val\n1,2\n")
    out = fails_cleanly("run", "--data", text, "--out", tmp_path / "r",
                        match="is not an .npz archive")
    assert "pickle" not in out


def test_missing_path_without_suffix_is_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "data" / "breast"
    out = fails_cleanly("run", "--data", missing, "--out", tmp_path / "r",
                        match="file not found")
    assert "MedMNIST flag" not in out
    with pytest.raises(DataError, match="unknown MedMNIST flag"):
        load_dataset("breast")  # a bare word is still read as a flag


def test_stray_label_is_named_with_index_and_range(tmp_path: Path) -> None:
    arrays = splits()
    y = arrays["test"][1].copy()
    y[3] = 7
    arrays["test"] = (arrays["test"][0], y)
    with pytest.raises(DataError) as e:
        from_arrays(arrays["train"], arrays["val"], arrays["test"])
    assert "test_labels has label 7 at index 3" in str(e.value)
    assert "valid range 0..1" in str(e.value)
    with pytest.raises(DataError, match=r"label 7 at index 3 .*valid range 0\.\.1 of the 2 "):
        from_arrays(arrays["train"], arrays["val"], arrays["test"], class_names=["a", "b"])


def test_empty_validation_split_gives_the_cli_fix(tmp_path: Path) -> None:
    arrays = splits()
    arrays["val"] = (arrays["val"][0][:0], arrays["val"][1][:0])
    path = write_npz(tmp_path / "noval.npz", arrays)
    fails_cleanly("run", "--data", path, "--out", tmp_path / "r",
                  match=["val_images is empty", "--set val_fraction=0.1", "val=None"])
    cfg = build_config(config=None, dataset=None, data=path, size=None, strategy=None,
                       budget=None, epochs=None, retrain_epochs=None, seed=None, device=None,
                       sets=["val_fraction=0.2"])
    data = load_data(cfg)
    assert len(data.val_y) == 10 and set(data.val_y.tolist()) == {0, 1}
    assert len(data.train_y) == 38 and len(data.test_y) == 16


def test_one_training_image_per_class_is_refused_for_a_search(tmp_path: Path) -> None:
    arrays = splits()
    x, y = arrays["train"]
    keep = np.r_[0, 1, 3]  # labels 0, 1, 1: class 0 has a single training image
    arrays["train"] = (x[keep], y[keep])
    path = write_npz(tmp_path / "one.npz", arrays)
    fails_cleanly("search", "--data", path, "--out", tmp_path / "r",
                  match=["too few training images", "{0: 1}", "at least 2"])
    assert not (tmp_path / "r").exists()


def test_unseen_label_message_prints_plain_values() -> None:
    classes = np.array([0, 1], dtype=np.uint8)
    with pytest.raises(DataError) as e:
        encode_labels(np.array([0, 5], dtype=np.uint8), classes)
    assert str(e.value) == "labels 5 were not seen in fit; the classes are 0, 1"


@pytest.mark.parametrize("per_class", [2, 3])
def test_tiny_image_folder_says_how_many_images_are_needed(tmp_path: Path,
                                                           per_class: int) -> None:
    """2 per class leave validation empty; 3 leave one training image per class, which
    the search cannot split in two."""
    for cls in ("a", "b"):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(np.full((12, 12), 40 * i, np.uint8)).save(
                tmp_path / "imgs" / cls / f"{i}.png")
    with pytest.raises(DataError, match="at least 4 images"):
        from_folder(tmp_path / "imgs", image_size=12)
    fails_cleanly("run", "--folder", tmp_path / "imgs", "--image-size", 12,
                  "--out", tmp_path / "r", match=["too few", "at least 4 images",
                                                  f"{{'a': {per_class}, 'b': {per_class}}}"])
    assert not (tmp_path / "r").exists()


# ----------------------------------------------------------------------------- pixel scales


def test_splits_on_different_pixel_scales_are_refused(tmp_path: Path) -> None:
    arrays = splits(train_dtype=np.float32)  # float 0-255 train, uint8 val/test
    with pytest.raises(DataError, match="different pixel scales") as e:
        from_arrays(arrays["train"], arrays["val"], arrays["test"])
    assert "train_images: float values up to 230" in str(e.value)
    assert "val_images: 0-255 integers" in str(e.value)
    path = write_npz(tmp_path / "mixed.npz", arrays)
    fails_cleanly("run", "--data", path, "--out", tmp_path / "r",
                  match=["different pixel scales", "divide"])


def test_image_classifier_refuses_mixed_scales_before_training() -> None:
    from autonas import ImageClassifier

    arrays = splits(train_dtype=np.float32)
    with pytest.raises(DataError, match="different pixel scales"):
        ImageClassifier(**TINY_CLF).fit(*arrays["train"], validation_data=arrays["val"])


def test_consistent_scales_are_accepted() -> None:
    unit = splits(train_dtype=np.float32, train_scale=1 / 255)  # float 0-1 train, uint8 rest
    assert from_arrays(unit["train"], unit["val"], unit["test"]).train_x.dtype == torch.float32
    same = {s: (x.astype(np.float32), y) for s, (x, y) in splits().items()}  # all float 0-255
    from_arrays(same["train"], same["val"], same["test"])


# ----------------------------------------------------------------------------- val classes


def _one_class_val() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    arrays = splits()
    x, y = arrays["val"]
    arrays["val"] = (x[y == 1], y[y == 1])
    return arrays


def test_validation_split_missing_a_class_warns_at_load() -> None:
    arrays = _one_class_val()
    with pytest.warns(UserWarning, match=r"val split has no images of class\(es\) \['benign'\]"):
        from_arrays(arrays["train"], arrays["val"], arrays["test"],
                    class_names=["benign", "malignant"])


def test_one_class_validation_selects_epochs_by_loss(caplog) -> None:
    arrays = _one_class_val()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = from_arrays(arrays["train"], arrays["val"], arrays["test"])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2))
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.1, augment=False)
    with caplog.at_level(logging.WARNING, logger="autonas"):
        result = fit(model, data, cfg, deadline=Deadline(None), device=torch.device("cpu"),
                     normalizer=Normalizer.fit(data.train_x), progress=False)
    assert "epochs are selected by validation loss" in caplog.text
    losses = [h["val"]["loss"] for h in result.history]
    assert result.best_epoch == int(np.argmin(losses))
    assert all(h["val"]["auc"] is None for h in result.history)


# ----------------------------------------------------------------------------- help text


def test_tensorboard_help_shows_the_extra() -> None:
    result = invoke("run", "--help")
    assert result.exit_code == 0
    assert "autonas[tensorboard]" in " ".join(result.output.split())


# ----------------------------------------------------------------------------- permissions


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600)])
def test_atomic_files_follow_the_umask(tmp_path: Path, umask: int, mode: int) -> None:
    old = os.umask(umask)
    try:
        run = RunDir(tmp_path)
        run.write_json("metrics.json", {"a": 1})
        run.write_yaml("config.yaml", {"a": 1})
        run.set_phase("search", "done")
        run.save_state("model.pt", {"w": torch.zeros(2)})
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    finally:
        os.umask(old)
    for name in ("metrics.json", "config.yaml", "status.json", "model.pt", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


# ----------------------------------------------------------------------------- predict / export

TINY_CLF = {
    "search_options": {"channels": 4, "layers": 2, "epochs": 1, "batch_size": 16},
    "space_options": {"nodes": 2}, "network": {"channels": 4, "layers": 2},
    "train_options": {"batch_size": 16}, "verbose": False, "time_limit": 120,
}


@pytest.fixture(scope="module")
def uint8_model(tmp_path_factory) -> tuple[object, Path, np.ndarray]:
    """An ImageClassifier fitted on uint8 (N,H,W) images, saved; and some test images."""
    from autonas import ImageClassifier

    arrays = splits()
    clf = ImageClassifier(**TINY_CLF).fit(*arrays["train"], validation_data=arrays["val"],
                                          epochs=1)
    folder = clf.save(tmp_path_factory.mktemp("clf") / "saved")
    return clf, Path(folder), arrays["test"][0][:6]


def test_predict_rescales_float_0_255_with_a_warning(uint8_model) -> None:
    clf, _, x = uint8_model
    expected = clf.predict_proba(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float 0-1 is the documented float scale: silent
        np.testing.assert_allclose(clf.predict_proba(x.astype(np.float32) / 255), expected,
                                   atol=1e-5)
    with pytest.warns(UserWarning, match="divided by 255"):
        got = clf.predict_proba(x.astype(np.float32))
    np.testing.assert_allclose(got, expected, atol=1e-5)
    module = clf.export_model()
    with pytest.warns(UserWarning, match="divided by 255"), torch.no_grad():
        exported = module(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(exported, expected, atol=1e-5)


def test_torchscript_export_rescales_like_predict(uint8_model, tmp_path: Path) -> None:
    from autonas.export import export_run
    from autonas.export.torchscript import load_torchscript

    clf, folder, x = uint8_model
    result = export_run(folder, "torchscript", tmp_path / "m.pt")
    scripted = load_torchscript(result["path"])
    with pytest.warns(UserWarning, match="divided by 255"), torch.no_grad():
        got = scripted(torch.from_numpy(x.astype(np.float32))).numpy()
    np.testing.assert_allclose(got, clf.predict_proba(x), atol=1e-5)


def test_onnx_takes_the_documented_input(uint8_model, tmp_path: Path) -> None:
    """What the README and export.onnx say: `images` of the training dtype and layout (here
    uint8 N,H,W), any batch size; anything else is refused by onnxruntime, not misread."""
    import onnxruntime as ort

    clf, folder, x = uint8_model
    from autonas.export import export_run

    result = export_run(folder, "onnx", tmp_path / "m.onnx")
    assert result["input"]["dtype"] == "uint8" and result["input"]["layout"] == "NHW"
    session = ort.InferenceSession(result["path"], providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    assert inp.name == "images" and inp.type == "tensor(uint8)"
    assert len(inp.shape) == 3 and not isinstance(inp.shape[0], int)  # dynamic batch
    for n in (1, 5):
        (probs,) = session.run(None, {"images": x[:n]})
        np.testing.assert_allclose(probs, clf.predict_proba(x[:n]), atol=1e-4)
    with pytest.raises(Exception, match=r"(?i)type"):
        session.run(None, {"images": x.astype(np.float32)})


def test_float_0_1_trained_models_rescale_too() -> None:
    """The rule is the training scale, not the dtype: float 0-1 training images also make
    float 0-255 input rescaled; float 0-255 training images leave it alone."""
    from autonas.data.inputs import read_inputs
    from autonas.export.wrap import ImageModel, unit_scale

    x = splits()["test"][0][:4]
    _, _, unit_spec = read_inputs(x.astype(np.float32) / 255, None, fitting=False)
    _, _, wide_spec = read_inputs(x.astype(np.float32), None, fitting=False)
    assert unit_scale(unit_spec) and not unit_scale(wide_spec)
    assert unit_scale({"dtype": "uint8"}) and not unit_scale({"dtype": "float32"})
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(2, 2))
    norm = Normalizer(torch.tensor([0.3]), torch.tensor([0.2]))
    unit_model = ImageModel(net, norm, 1, unit_scale_trained=unit_scale(unit_spec))
    wide_model = ImageModel(net, norm, 1, unit_scale_trained=unit_scale(wide_spec))
    small, big = torch.from_numpy(x.astype(np.float32) / 255), torch.from_numpy(
        x.astype(np.float32))
    with torch.no_grad():
        with pytest.warns(UserWarning, match="divided by 255"):
            torch.testing.assert_close(unit_model(big), unit_model(small))
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert not torch.allclose(wide_model(big), wide_model(small))


# ----------------------------------------------------------------------------- flags vs --config


def test_config_file_settings_hold_unless_a_flag_is_given(tmp_path: Path) -> None:
    """A flag left out must not put its default over the config file's value."""
    config = tmp_path / "c.yaml"
    config.write_text("dataset: pneumoniamnist\nsize: 64\nstrategy: tpe\nspace: macro\n"
                      "seed: 7\ndevice: cpu\n")
    cfg = build_config(**CommandOptions(config=config).config_kwargs())
    assert (cfg.dataset, cfg.size, cfg.strategy, cfg.space, cfg.seed, cfg.device) == (
        "pneumoniamnist", 64, "tpe", "macro", 7, "cpu")
    given = CommandOptions(config=config, strategy="random", seed=3).config_kwargs()
    cfg = build_config(**given)
    assert (cfg.strategy, cfg.seed, cfg.space) == ("random", 3, "macro")


def test_defaults_without_config_or_flags() -> None:
    cfg = build_config(**CommandOptions().config_kwargs())
    assert (cfg.dataset, cfg.size, cfg.strategy, cfg.space, cfg.seed) == (
        "breastmnist", 28, "evolution", "darts", 0)


@pytest.mark.parametrize(("strategy", "option"), [
    ("evolution", "trial_epochs"), ("tpe", "trial_epochs"), ("darts", "epochs"),
    ("spos", "epochs")])
def test_epochs_flag_sets_the_strategys_epochs(strategy: str, option: str) -> None:
    cfg = build_config(**CommandOptions(strategy=strategy, epochs=3).config_kwargs())
    assert cfg.search[option] == 3
