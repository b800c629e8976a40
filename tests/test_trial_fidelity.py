"""How much of the training split a multi-trial search's trials see (``data_fraction``)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import torch

import autonas
from autonas.data import from_arrays
from autonas.errors import ConfigError
from autonas.run import RunDir
from autonas.spaces import make_space
from autonas.strategies import SearchContext, make_strategy
from autonas.training.budget import Deadline
from autonas.trials.fidelity import (
    FRACTION_ATTR,
    MIN_TRIAL_IMAGES,
    auto_fraction,
    resolve_data_fraction,
)
from toy_space import arrays

SPACE_FILE = Path(__file__).parent / "toy_space.py"
FAST = {"trial_epochs": 1, "train": {"batch_size": 16, "lr": 0.1}}


def test_auto_fraction_fits_the_trials_in_the_time():
    # 4 epochs over 5000 images at 1 ms each = 20 s of training, 4 * 600 images of
    # validation at a third of that = 0.8 s: 25 trials in 260 s leave 10.4 s a trial,
    # so training gets 9.6 s of its 20 s.
    assert auto_fraction(5000, 600, 1e-3, 4, 260.0, 25) == pytest.approx(0.48)
    # Time for full-data trials: all of it; never more.
    assert auto_fraction(5000, 600, 1e-3, 4, 1e6, 25) == 1.0
    # Too little time: the floor, never fewer than MIN_TRIAL_IMAGES images.
    assert auto_fraction(5000, 600, 1e-3, 4, 1.0, 25) == pytest.approx(0.2)
    # A set that is already small is never cut.
    assert auto_fraction(MIN_TRIAL_IMAGES, 600, 1e-3, 4, 1.0, 25) == 1.0


@pytest.fixture(scope="module")
def large():
    return from_arrays(arrays(2 * MIN_TRIAL_IMAGES, 0), arrays(40, 1), arrays(40, 2),
                       name="large")


def context(data, tmp_path, deadline: Deadline) -> SearchContext:
    return SearchContext(data=data, space=make_space("darts"), run=RunDir(tmp_path),
                         deadline=deadline, device=torch.device("cpu"), seed=0)


def resolve(data, tmp_path, deadline: Deadline, study=None, **options):
    """(the resolved fraction, the study it is stored in)"""
    ctx = context(data, tmp_path, deadline)
    strategy = make_strategy("evolution", ctx.space,
                             **{**FAST, "data_fraction": "auto", **options})
    study = study or optuna.create_study()
    return resolve_data_fraction(strategy, ctx, study), study


def test_auto_cuts_a_large_set_to_the_floor_when_time_is_short(large, tmp_path):
    # A quarter of a second for 25 darts trials over 2,000 images: the floor.
    fraction, study = resolve(large, tmp_path, Deadline.after(0.25))
    assert fraction == pytest.approx(MIN_TRIAL_IMAGES / 2000)
    assert study.user_attrs[FRACTION_ATTR] == fraction  # kept for resume and workers


def test_auto_keeps_every_image_without_a_budget_or_with_time_to_spare(large, tmp_path):
    assert resolve(large, tmp_path, Deadline(None))[0] == 1.0
    assert resolve(large, tmp_path, Deadline.after(1e7))[0] == 1.0


def test_a_resumed_search_keeps_the_fraction_its_study_chose(large, tmp_path):
    study = optuna.create_study()
    study.set_user_attr(FRACTION_ATTR, 0.63)
    # However much time is left now, the trials so far trained on 63% of the images.
    assert resolve(large, tmp_path, Deadline.after(1e7), study)[0] == 0.63


def test_a_given_fraction_is_used_as_given(large, tmp_path):
    assert resolve(large, tmp_path, Deadline.after(0.25), data_fraction=0.7)[0] == 0.7


@pytest.mark.parametrize("bad", [0, 1.5, -0.2, "half", True])
def test_a_bad_fraction_names_the_allowed_values(bad):
    with pytest.raises(ConfigError, match=r"data_fraction must be in \(0, 1\] or auto"):
        make_strategy("random", make_space("darts"), data_fraction=bad)


def test_the_search_records_the_share_and_trains_on_it(tmp_path):
    data = from_arrays(arrays(1200, 0), arrays(24, 1), arrays(24, 2), name="mid")
    toy = make_space(f"{SPACE_FILE}:ToySpace")
    strategy = make_strategy("random", toy, data_fraction=0.5, **FAST)
    share = strategy.trial_data(data, 0, 0.5).train_y
    assert len(share) == 600 and int(share.sum()) == 300  # stratified: half of each class
    outcome = autonas.search(toy, "random", data, out=tmp_path / "run", device="cpu",
                             max_trials=1, data_fraction=0.5, **FAST)
    assert outcome.result["data_fraction"] == 0.5
    log = (tmp_path / "run" / "run.log").read_text()
    assert "each trial trains on 600 of the 1200 training images" in log


def test_auto_leaves_a_small_set_whole(tmp_path):
    data = from_arrays(arrays(48, 0), arrays(24, 1), arrays(24, 2), name="small")
    outcome = autonas.search(make_space(f"{SPACE_FILE}:ToySpace"), "random", data,
                             out=tmp_path / "run", budget=60, device="cpu", max_trials=1,
                             data_fraction="auto", **FAST)
    assert outcome.result["data_fraction"] == 1.0
    assert "each trial trains on" not in (tmp_path / "run" / "run.log").read_text()
