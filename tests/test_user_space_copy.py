"""A run with a user space keeps a copy of its source: the saved model survives the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from autonas.cli import app
from autonas.errors import ConfigError
from autonas.export.predict import predict_files
from autonas.pipeline import load_model
from autonas.run import RunDir
from autonas.spaces.user_source import SOURCE_FILE, space_of_run
from toy_space import write_npz

TOY = Path(__file__).parent / "toy_space.py"
ENV = {"AUTONAS_NO_PROGRESS": "1", "AUTONAS_THREADS": "1"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, user space file) of a finished run with a temporary copy of toy_space.py."""
    root = tmp_path_factory.mktemp("user_space")
    space_file = root / "my_space.py"
    shutil.copyfile(TOY, space_file)
    npz = write_npz(root / "tiny.npz")
    out = root / "run"
    result = CliRunner().invoke(app, [str(a) for a in (
        "run", "--data", npz, "--space", f"{space_file}:ToySpace", "--strategy", "random",
        "--max-trials", 2, "--seed", 0, "--out", out, "--device", "cpu",
        "--retrain-epochs", 1, "--set", "search.trial_epochs=1",
        "--set", "train.batch_size=16", "--budget", "none")], env=ENV)
    assert result.exit_code == 0, result.output
    return out, space_file


def test_run_keeps_the_source_and_names_the_class(trained):
    out, space_file = trained
    assert (out / SOURCE_FILE).read_bytes() == space_file.read_bytes()
    for name in ("model.json", "architecture.json"):
        meta = json.loads((out / name).read_text())
        assert meta["space_source"] == SOURCE_FILE and meta["space_class"] == "ToySpace"
        assert meta["space"] == f"{space_file}:ToySpace"
        assert len(meta["space_source_md5"]) == 32


def test_deleting_or_editing_the_file_does_not_break_the_saved_model(trained, tmp_path):
    out, space_file = trained
    run = RunDir(out)
    before, _, meta = load_model(run)
    x = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        want = before(x)
    space_file.write_text("raise RuntimeError('the user rewrote this file')\n")
    space_file.unlink()
    after, _, _ = load_model(run)
    with torch.no_grad():
        assert torch.equal(after(x), want)
    # predict on image files goes through the same copy
    pics = tmp_path / "pics"
    pics.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16), 200 * i, dtype=np.uint8)).save(pics / f"{i}.png")
    names, rows = predict_files(out, [pics])
    assert len(rows) == 2 and all(r[1] in names for r in rows)
    assert all(np.isclose(r[2].sum(), 1.0, atol=1e-5) for r in rows)
    assert meta["arch"]["op"] in {"noise", "const", "signal"}
    # resuming the finished run rebuilds its space from the copy too
    resumed = CliRunner().invoke(app, ["run", "--resume", str(out)], env=ENV)
    assert resumed.exit_code == 0, resumed.output
    assert "does not exist" not in resumed.output


def test_missing_copy_is_a_clear_error(trained, tmp_path):
    out, _ = trained
    run_copy = tmp_path / "run"
    shutil.copytree(out, run_copy)
    (run_copy / SOURCE_FILE).unlink()
    meta = json.loads((run_copy / "model.json").read_text())
    with pytest.raises(ConfigError, match=r"space source copy space_source\.py .* missing"):
        space_of_run(RunDir(run_copy), meta)
