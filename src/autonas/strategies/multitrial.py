"""Multi-trial search strategies: the options they share and the two things each one
decides, ``propose`` (or an Optuna sampler) and ``observe``.

The trial loop itself (ask, build, profile, fit, tell, dedup, failure records, resume,
workers sharing a study) is ``autonas.trials``: a strategy never trains, writes files or
draws progress bars. See ``autonas.trials.search`` for what a trial is.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar

import optuna

from ..data import ImageData, split_indices, subset
from ..errors import ConfigError
from ..spaces.base import BuildSpec
from ..training.metrics import OBJECTIVES
from ..training.tasks import head_for
from ..training.trainer import TrainConfig
from ..trials.search import has_categorical_view
from ..trials.study import METRICS, metric_name, oriented
from .base import SearchContext, SearchResult, Strategy


@dataclass
class MultiTrialStrategy(Strategy):
    """Options shared by every multi-trial strategy."""

    max_trials: int | None = None
    """Trials to run at most (interrupted ones do not count); None = until the budget ends."""
    trial_epochs: int = 4
    """Proxy task: training epochs per trial."""
    data_fraction: float | str = 1.0
    """Proxy task: stratified fraction of the training split each trial trains on; "auto"
    sizes it so that the budget holds about 25 trials (see ``autonas.trials.fidelity``).
    Not the default: on PneumoniaMNIST, 24-31 trials on a fifth of the images chose worse
    than 5-7 full-data trials (README, "Does the search earn its cost?")."""
    trial_channels: int = 8
    trial_layers: int = 5
    objective: str = "auc"
    """Validation metric to optimise: auc, accuracy or loss."""
    objectives: list[str] | None = None
    """Several objectives, e.g. [auc, params]: the search returns their Pareto front."""
    max_params: int | None = None
    max_flops: int | None = None
    max_latency_ms: float | None = None
    storage: str | None = None
    """Optuna storage URL (default: SQLite search/study.db in the run folder)."""
    study_name: str | None = None
    """Default: the run folder's name."""
    train: dict[str, Any] = field(default_factory=dict)
    """Overrides of the trial training options (the ``train`` section's keys)."""
    dedup: bool = True
    """Train each architecture once (see the module docstring); False retrains repeats,
    e.g. to average out the noise of short trials."""
    max_collisions: int = 50
    """With dedup: repeats in a row after which the search ends as converged."""
    workers: int = 0
    """Worker processes to start on this machine (0: trials run in this process); more
    than one needs a PostgreSQL ``storage``. Workers on other machines join with
    ``autonas worker --storage URL --study NAME``."""
    heartbeat_interval: int = 10
    """PostgreSQL: seconds between a running trial's heartbeats."""
    grace_period: int | None = None
    """PostgreSQL: seconds without a heartbeat after which a trial's worker counts as dead
    and its trial is re-run by another (default: three intervals)."""

    name = "multi-trial"
    step: ClassVar[str] = "trial"
    needs_choices: ClassVar[bool] = False
    """Whether the strategy searches the categorical view (``space.choices()``)."""
    finite: ClassVar[bool] = False
    """Whether the strategy ends by itself (a grid), so neither budget nor max_trials is needed."""

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ConfigError(f"max_trials must be >= 1, got {self.max_trials}")
        if self.trial_epochs < 1:
            raise ConfigError(f"trial_epochs must be >= 1, got {self.trial_epochs}")
        if self.data_fraction != "auto" and not (
                isinstance(self.data_fraction, (int, float))
                and not isinstance(self.data_fraction, bool) and 0.0 < self.data_fraction <= 1.0):
            raise ConfigError(f"data_fraction must be in (0, 1] or auto, got "
                              f"{self.data_fraction!r}")
        if self.objective not in OBJECTIVES:
            raise ConfigError(f"objective must be one of {', '.join(OBJECTIVES)}, got "
                              f"{self.objective!r} (costs go in objectives, e.g. "
                              "[auc, params])")
        if self.objectives is not None:
            if isinstance(self.objectives, str):
                self.objectives = [self.objectives]
            self.objectives = [metric_name(m) for m in self.objectives]
            if not self.objectives or len(set(self.objectives)) != len(self.objectives):
                raise ConfigError(f"objectives must be distinct metric names, got "
                                  f"{self.objectives}")
        if not isinstance(self.train, dict):
            raise ConfigError(f"train must be a mapping of training options, got {self.train!r}")
        if self.workers < 0:
            raise ConfigError(f"workers must be >= 0, got {self.workers}")
        if self.heartbeat_interval < 1 or (self.grace_period is not None
                                           and self.grace_period <= self.heartbeat_interval):
            raise ConfigError(f"heartbeat_interval must be >= 1 s and grace_period longer "
                              f"than it, got {self.heartbeat_interval} and {self.grace_period}")
        if self.max_collisions < 1:
            raise ConfigError(f"max_collisions must be >= 1, got {self.max_collisions}")
        self.trial_config()  # unknown or invalid train options fail now, not in a trial

    # -- what a strategy decides ---------------------------------------------------------
    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler | None:
        """An Optuna sampler that picks each trial's choices, or None: ``propose`` picks."""
        return None

    def make_pruner(self) -> optuna.pruners.BasePruner:
        """Stops unpromising trials early from their per-epoch reports (default: never)."""
        return optuna.pruners.NopPruner()

    def propose(self, rng: random.Random, history: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The next architecture (None: nothing is left to try). ``history`` holds the
        finished trials' rows in trial order."""
        return self.space.sample(rng)

    def observe(self, row: dict[str, Any]) -> None:
        """Learn from a finished trial (called in trial order, on resume for old trials too)."""

    # -- derived settings --------------------------------------------------------------------
    @property
    def metrics(self) -> list[str]:
        return list(self.objectives) if self.objectives else [self.objective]

    @property
    def directions(self) -> list[str]:
        return [METRICS[m] for m in self.metrics]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    def fitness(self, row: dict[str, Any]) -> float | None:
        """A COMPLETE trial's first objective, larger is better; None otherwise."""
        if row["state"] != "COMPLETE" or row["value"] is None:
            return None
        value = row["value"][0] if isinstance(row["value"], list) else row["value"]
        return oriented(value, self.metrics[0])

    def trial_config(self) -> TrainConfig:
        selection = next((m for m in self.metrics if m in OBJECTIVES), "auc")
        try:
            return TrainConfig.from_dict({**self.train, "epochs": self.trial_epochs,
                                          "objective": selection})
        except TypeError as exc:
            raise ConfigError(f"invalid trial training options {self.train}: {exc}") from None

    def trial_data(self, data: ImageData, seed: int, fraction: float) -> ImageData:
        """The same stratified share of the training split for every trial."""
        if fraction >= 1.0:
            return data
        _, idx = split_indices(data.train_y, fraction, seed=seed)
        x, y = subset(data.train_x, data.train_y, idx)
        return dataclasses.replace(data, train_x=x, train_y=y)

    def build_spec(self, data: ImageData) -> BuildSpec:
        return BuildSpec(in_channels=data.channels, num_classes=data.n_classes,
                         image_size=data.image_size[0], channels=self.trial_channels,
                         layers=self.trial_layers,
                         head=head_for(data.task, self.trial_config().is_ordinal))

    # -- the search ------------------------------------------------------------------------
    def search(self, ctx: SearchContext, evaluate: Any = None) -> SearchResult:
        """Run (or resume) the search on the trial runner; ``evaluate`` replaces the
        default evaluation (build, profile, train) of a trial: proposal -> metrics row."""
        from ..trials.search import run_search

        return run_search(self, ctx, evaluate)

    def setup(self, ctx: SearchContext) -> None:
        """Checks and set-up before the first trial (also in a worker process)."""
        self.space = ctx.space
        self.check_space(ctx.space)
        self.categorical = has_categorical_view(ctx.space)
        if self.needs_choices and not self.categorical:
            raise ConfigError(f"strategy {self.name!r} searches the categorical view of a space "
                              f"(choices()), which {type(ctx.space).__name__} does not offer; "
                              "use --strategy random")
        self.choices = ctx.space.choices() if self.categorical else {}
        if ctx.deadline.at is None and self.max_trials is None and not self.finite:
            raise ConfigError(f"a {self.name} search needs an end: pass --budget or "
                              "--max-trials")
        self.prepare(ctx)

    def prepare(self, ctx: SearchContext) -> None:
        """Checks and set-up a strategy needs before the first trial (e.g. grid size)."""

    def population(self) -> int | None:
        """Trials a strategy samples at random before it exploits what it learnt (None: no
        such phase); a search with fewer finished trials was random sampling."""
        return None


def scaled_population(max_trials: int | None, low: int = 4, high: int = 50) -> int:
    """A population that fits the trial budget: a quarter of ``max_trials``, within
    [low, high] (``high`` without a trial limit)."""
    if max_trials is None:
        return high
    return max(low, min(high, max_trials // 4))
