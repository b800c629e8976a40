"""Search that earns its cost: on a space whose best answer is known, every multi-trial
strategy must beat random sampling given the same number of trials.

The space has 6 choices of 5 values (15,625 architectures); the objective is synthetic and
cheap (no training), with structure a search can exploit: additive contributions per
choice, one pairwise interaction, and a little noise. Trials go through the product's own
runner (ask, dedup, tell, study storage), with the evaluation swapped for the objective.
"""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from autonas.errors import ConfigError
from autonas.run import RunDir
from autonas.spaces.base import SearchSpace
from autonas.strategies import SearchContext, make_strategy
from autonas.training.budget import Deadline

LABELS = [f"c{i}" for i in range(6)]
VALUES = list(range(5))
TRIALS = 100
SEEDS = range(4)


class GridSpace(SearchSpace):
    """Six independent choices of five values: a categorical space and nothing more."""

    name = "synthetic"

    def choices(self):
        return {label: list(VALUES) for label in LABELS}

    def sample(self, rng):
        return {label: rng.choice(VALUES) for label in LABELS}

    def validate(self, arch):
        if set(arch) != set(LABELS) or any(arch[k] not in VALUES for k in LABELS):
            raise ConfigError(f"not an architecture of this space: {arch}")
        return {k: arch[k] for k in LABELS}

    def build(self, arch, spec):
        raise AssertionError("the synthetic objective builds no network")


class Objective:
    """Known optimum: per-choice gains (drawn once), a bonus when c0 == c1, small noise.
    The second objective (params) grows with the sum of the values, for NSGA-II."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.gains = rng.uniform(0.0, 1.0, size=(len(LABELS), len(VALUES)))
        self.noise = np.random.default_rng(seed + 1000)
        self.best = float(self.gains.max(axis=1).sum()) + 0.5  # c0 == c1 is attainable

    def exact(self, arch: dict) -> float:
        values = [arch[k] for k in LABELS]
        score = float(sum(self.gains[i, v] for i, v in enumerate(values)))
        return score + (0.5 if values[0] == values[1] else 0.0)

    def __call__(self, job) -> dict:
        score = self.exact(job.subject) + float(self.noise.normal(0.0, 0.01))
        return {"val": {"auc": score}, "params": 1 + sum(job.subject.values()), "flops": 0,
                "latency_ms": 0.0, "epochs": 1}


def best_found(strategy: str, seed: int, tmp_path, **options) -> float:
    """The best exact score among the architectures a search of TRIALS trials tried."""
    space = GridSpace()
    objective = Objective()
    search = make_strategy(strategy, space, max_trials=TRIALS, storage="memory",
                           study_name=f"{strategy}-{seed}", **options)
    run = RunDir.create(tmp_path / f"{strategy}-{seed}", name="quality")
    ctx = SearchContext(data=None, space=space, run=run, deadline=Deadline(None),  # type: ignore[arg-type]
                        device=None, seed=seed)  # type: ignore[arg-type]
    result = search.search(ctx, evaluate=objective)
    tried = [r["arch"] for r in result.history if r["state"] == "COMPLETE"]
    assert 0 < len(tried) <= TRIALS  # fewer: the strategy converged (only repeats left)
    return max(objective.exact(a) for a in tried)


@pytest.fixture(scope="module")
def random_baseline(tmp_path_factory) -> float:
    folder = tmp_path_factory.mktemp("random")
    return statistics.fmean(best_found("random", s, folder) for s in SEEDS)


@pytest.mark.parametrize("strategy", ["evolution", "reinforce", "tpe", "bohb", "nsga2"])
def test_each_strategy_beats_random_sampling(strategy, random_baseline, tmp_path):
    found = statistics.fmean(best_found(strategy, s, tmp_path) for s in SEEDS)
    regret, random_regret = Objective().best - found, Objective().best - random_baseline
    assert found > random_baseline, (f"{strategy}: mean best {found:.3f} (regret "
                                     f"{regret:.3f}) vs random {random_baseline:.3f} "
                                     f"(regret {random_regret:.3f})")


def test_a_short_evolution_still_evolves():
    """The default population fits the trial budget: five trials are not all random."""
    space = GridSpace()
    assert make_strategy("evolution", space, max_trials=5).population() < 5
    assert make_strategy("evolution", space, max_trials=400).population() == 50
    assert make_strategy("nsga2", space, max_trials=100).population() == 25
    assert make_strategy("evolution", space, max_trials=5, population_size=3).population() == 3


def test_too_few_trials_for_the_population_is_recorded_as_random(tmp_path):
    space = GridSpace()
    search = make_strategy("evolution", space, max_trials=3, population_size=10,
                           sample_size=2, storage="memory")
    run = RunDir.create(tmp_path / "short", name="quality")
    ctx = SearchContext(data=None, space=space, run=run, deadline=Deadline(None),  # type: ignore[arg-type]
                        device=None, seed=0)  # type: ignore[arg-type]
    result = search.search(ctx, evaluate=Objective())
    assert result.extra["random_only"] is True



def test_a_budget_limited_evolution_sizes_its_population_to_the_trials_that_fit(tmp_path):
    """No max_trials: the population follows the trials the budget leaves room for (here
    about 30 trials of 0.05 s in 1.5 s), so the search gets past random sampling."""
    import time

    space = GridSpace()
    objective = Objective()

    def slow(job):
        time.sleep(0.05)
        return objective(job)

    search = make_strategy("evolution", space, storage="memory")
    run = RunDir.create(tmp_path / "budget", name="quality")
    ctx = SearchContext(data=None, space=space, run=run, deadline=Deadline.after(1.5),  # type: ignore[arg-type]
                        device=None, seed=0)  # type: ignore[arg-type]
    result = search.search(ctx, evaluate=slow)
    assert search.population() < 50
    assert "random_only" not in result.extra
    assert len(result.history) > search.population()
