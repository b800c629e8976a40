"""A search that could not choose says so, and trains a documented default rather than an
untouched initialisation; a multi-trial search still drawing at random says so too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autonas.config import RunConfig
from autonas.data import from_arrays
from autonas.pipeline import execute
from autonas.run import RunDir
from autonas.spaces import make_space
from autonas.spaces.darts import DARTS_V2
from toy_space import arrays

ONE_SHOT = {"channels": 4, "layers": 2, "batch_size": 8, "search_images": None}


@pytest.fixture(scope="module")
def data():
    return from_arrays(arrays(48, 0), arrays(48, 1), arrays(24, 2), name="toy")


def search(tmp_path: Path, data, name: str, budget: float | None = None, **cfg) -> RunDir:
    run = RunDir.create(tmp_path / name, name)
    execute(RunConfig(dataset="toy", budget=budget, device="cpu", **cfg), run, ("search",),
            data=data)
    return run


def read(run: RunDir, name: str) -> dict:
    return json.loads((run.path / name).read_text())


def test_a_search_stopped_in_warm_up_trains_darts_v2_and_says_so(tmp_path, data):
    run = search(tmp_path, data, "warmup", strategy="darts",
                 search={**ONE_SHOT, "epochs": 1, "warmup_epochs": 2})
    result = read(run, "search/result.json")
    assert "never stepped" in result["fallback"]
    assert result["architecture"] == make_space("darts").validate(DARTS_V2)
    assert read(run, "architecture.json")["arch"] == result["architecture"]
    assert "never stepped" in read(run, "status.json")["search"]["fallback"]
    log = (run.path / "run.log").read_text()
    assert "never stepped" in log and "training the default architecture" in log
    assert "search finished" not in log


def test_a_search_that_stepped_its_architecture_is_not_replaced(tmp_path, data):
    run = search(tmp_path, data, "stepped", strategy="darts",
                 search={**ONE_SHOT, "epochs": 1, "warmup_epochs": 0})
    result = read(run, "search/result.json")
    assert "fallback" not in result and "limited" not in result
    history = [json.loads(line) for line in
               (run.path / "search" / "history.jsonl").read_text().splitlines()]
    assert result["architecture"] == history[-1]["genotype"]


def test_a_multi_trial_search_in_its_random_phase_says_so(tmp_path, data):
    run = search(tmp_path, data, "tpe", space="macro", strategy="tpe",
                 search={"max_trials": 2, "trial_epochs": 1, "n_startup_trials": 4})
    result = read(run, "search/result.json")
    assert result["limited"].startswith("2 trials finished, fewer than the 4 tpe draws at "
                                        "random")
    assert "fallback" not in result
    assert "2 trials finished" in read(run, "status.json")["search"]["limited"]
    assert "search finished (completed after 2 trials)" in (run.path / "run.log").read_text()


def test_a_multi_trial_search_without_a_finished_trial_trains_the_default(tmp_path, data):
    run = search(tmp_path, data, "none", budget=0.001, space="macro", strategy="random",
                 search={"trial_epochs": 1})
    result = read(run, "search/result.json")
    assert result["fallback"] == ("no trial finished inside the search budget: trained the "
                                  "default architecture")
    assert result["architecture"] == make_space("macro").default_arch()


def test_the_report_shows_the_fallback(tmp_path, data):
    from autonas.report import write_report

    run = search(tmp_path, data, "report", strategy="darts",
                 search={**ONE_SHOT, "epochs": 1, "warmup_epochs": 2})
    html = Path(write_report(run.path)).read_text()
    assert "No architecture was searched" in html and "never stepped" in html


def test_every_cell_space_has_a_valid_default():
    for name in ("darts", "resblock"):
        space = make_space(name)
        assert space.validate(space.default_arch()) == space.default_arch()
    small = make_space("darts", ops=["none", "skip_connect", "avg_pool_3x3"], nodes=2)
    assert {op for cell in small.default_arch().values() for node in cell
            for op, _ in node} == {"skip_connect"}
