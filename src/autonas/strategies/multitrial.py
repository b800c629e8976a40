"""Multi-trial search: propose an architecture, train it briefly, record it, repeat.

A trial builds the proposed network at a proxy size (``trial_channels``/``trial_layers``),
profiles it (params, FLOPs, latency; constraints are checked before any training), trains
it for ``trial_epochs`` on ``data_fraction`` of the training split with the one training
loop, and reports validation metrics after every epoch so a pruner can stop it.

Every trial lives in an Optuna study (SQLite in the run folder unless ``storage`` names
another database), so a killed search resumes without losing a finished trial. Strategies
either let an Optuna sampler pick the choices (TPE, NSGA-II) or pick the architecture
themselves (random, grid, evolution, REINFORCE); their picks reach the study through a
sampler that replays them, so every trial's choices are stored the same way. Each finished
trial is also one row of ``search/trials.jsonl``.

Each architecture is trained once (``dedup``, as KerasTuner's oracles do): a strategy's
repeat is drawn again; a sampler's repeat is told the earlier result without training, as
Optuna's FAQ advises, so the sampler still learns it was proposed. The search ends when a
finite space has no untrained architecture left, or after ``max_collisions`` repeats in a
row: the strategy has converged, and more trials would only retrain what it already knows.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import optuna
import torch
from optuna.trial import TrialState

from ..data import ImageData, split_indices, subset
from ..errors import ConfigError
from ..run import get_logger, jsonable
from ..spaces.base import BuildSpec, SearchSpace
from ..training.device import to_channels_last
from ..training.loop import profile_seconds
from ..training.metrics import OBJECTIVES
from ..training.profile import profile_model
from ..training.trainer import TrainConfig, fit
from ..ui import PhaseProgress
from .base import SearchContext, SearchResult, Strategy
from .study import (
    INTERRUPTED,
    METRICS,
    REPEAT_OF,
    default_storage,
    fail_interrupted,
    make_storage,
    masked,
    metric_name,
    metric_value,
    no_experimental_warnings,
    open_study,
    oriented,
    pareto_front,
    sync_rows,
    trial_row,
)

TRIALS_FILE = "search/trials.jsonl"
ROW_KEYS = ("arch", "val", "params", "flops", "latency_ms", "seconds", "error", "epochs")
MAX_CONSECUTIVE_FAILURES = 20


def space_size(choices: dict[str, list[Any]]) -> int:
    """Architectures in a categorical view (an upper bound when choices interact)."""
    return math.prod(len(v) for v in choices.values())


def choice_key(values: dict[str, Any]) -> str:
    return json.dumps(jsonable(values), sort_keys=True)


def has_categorical_view(space: SearchSpace) -> bool:
    try:
        space.choices()
    except NotImplementedError:
        return False
    return True


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def release_memory() -> None:
    """After an out-of-memory trial: give the cached blocks back before the next one."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class ProposalSampler(optuna.samplers.BaseSampler):
    """Hands Optuna the choices a strategy made itself, so they are stored as the trial's
    params like any sampler's (and a dashboard or a later TPE study can read them)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def infer_relative_search_space(self, study, trial):
        return {}

    def sample_relative(self, study, trial, search_space):
        return {}

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.values[param_name]


class EpochReporter:
    """fit's per-epoch callback: tracks the best epoch, feeds the pruner."""

    def __init__(self, trial: optuna.Trial, metric: str, cost: dict[str, Any],
                 prune: bool) -> None:
        self.trial, self.metric, self.cost, self.prune = trial, metric, cost, prune
        self.best: float | None = None
        self.best_val: dict[str, Any] | None = None
        self.epochs = 0

    def __call__(self, epoch: int, val: dict[str, Any]) -> None:
        self.epochs = epoch + 1
        value = metric_value(self.metric, val, self.cost)
        if value is None:
            return
        if self.best is None or oriented(value, self.metric) > oriented(self.best, self.metric):
            self.best, self.best_val = value, val
        if self.prune:  # the step is the resource spent: epochs trained
            self.trial.report(value, self.epochs)
            if self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after epoch {epoch + 1}")


@dataclass
class MultiTrialStrategy(Strategy):
    """Options shared by every multi-trial strategy."""

    max_trials: int | None = None
    """Trials to run at most (interrupted ones do not count); None = until the budget ends."""
    trial_epochs: int = 4
    """Proxy task: training epochs per trial."""
    data_fraction: float = 1.0
    """Proxy task: stratified fraction of the training split each trial trains on."""
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

    name = "multi-trial"
    needs_choices: ClassVar[bool] = False
    """Whether the strategy searches the categorical view (``space.choices()``)."""
    finite: ClassVar[bool] = False
    """Whether the strategy ends by itself (a grid), so neither budget nor max_trials is needed."""

    def __post_init__(self) -> None:
        if self.max_trials is not None and self.max_trials < 1:
            raise ConfigError(f"max_trials must be >= 1, got {self.max_trials}")
        if self.trial_epochs < 1:
            raise ConfigError(f"trial_epochs must be >= 1, got {self.trial_epochs}")
        if not 0.0 < self.data_fraction <= 1.0:
            raise ConfigError(f"data_fraction must be in (0, 1], got {self.data_fraction}")
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

    def trial_data(self, data: ImageData, seed: int) -> ImageData:
        """The same stratified share of the training split for every trial."""
        if self.data_fraction >= 1.0:
            return data
        _, idx = split_indices(data.train_y, self.data_fraction, seed=seed)
        x, y = subset(data.train_x, data.train_y, idx)
        return dataclasses.replace(data, train_x=x, train_y=y)

    def build_spec(self, data: ImageData) -> BuildSpec:
        return BuildSpec(in_channels=data.channels, num_classes=data.n_classes,
                         image_size=data.image_size[0], channels=self.trial_channels,
                         layers=self.trial_layers)

    # -- the loop ------------------------------------------------------------------------------
    def search(self, ctx: SearchContext) -> SearchResult:
        self._check(ctx)
        self.prepare(ctx)
        data = self.trial_data(ctx.data, ctx.seed)
        spec = self.build_spec(data)
        study, proposals, rows, url = self._open(ctx)
        for row in rows:
            self.observe(row)
        get_logger().info("search: %s, %d-epoch trials on %d images, storage %s", self.name,
                          self.trial_epochs, len(data.train_y), masked(url))
        stopped = "completed"
        failures = 0
        with PhaseProgress("search", total=self.max_trials) as bar:
            bar.update(completed=self._counted(rows))
            while True:
                if self.max_trials is not None and self._counted(rows) >= self.max_trials:
                    break
                if ctx.deadline.expired() or not ctx.deadline.fits(self._estimate(rows)):
                    stopped = "budget"
                    break
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    stopped = f"early-stop: {failures} trials in a row failed"
                    break
                asked = self._ask(study, proposals, rows, ctx.seed)
                if isinstance(asked, str):  # nothing new left to try
                    stopped = asked
                    get_logger().info("search: %s", asked)
                    break
                trial, arch, error = asked
                if error is None:
                    frozen = self._run_trial(study, trial, arch, ctx, data, spec)
                else:
                    frozen = self._finish(study, trial, {"arch": None, "error": error},
                                          time.monotonic(), TrialState.FAIL, None)
                row = trial_row(frozen, ROW_KEYS)
                ctx.run.append_jsonl(TRIALS_FILE, row)
                rows.append(row)
                self.observe(row)
                failures = failures + 1 if row["state"] == "FAIL" else 0
                self._log_trial(row)
                bar.advance(info=self._bar_info(rows))
                if row["state"] == "PRUNED" and str(row["error"]).startswith("budget"):
                    stopped = "budget"
                    break
        return self._result(rows, stopped, url, study.study_name)

    def _check(self, ctx: SearchContext) -> None:
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

    def _open(self, ctx: SearchContext
              ) -> tuple[optuna.Study, ProposalSampler | None, list[dict[str, Any]], str]:
        """The study (new, or the run's on resume, its interrupted trials failed), the
        sampler that replays this strategy's own picks (None: Optuna's sampler picks), the
        finished trials' rows, and the storage URL."""
        url = self.storage or default_storage(ctx.run.file("search"))
        name = self.study_name or ctx.run.path.name
        storage = make_storage(url)
        sampler = self.make_sampler(ctx.seed)
        proposals = ProposalSampler() if sampler is None else None
        with no_experimental_warnings():
            study = open_study(storage, url, name, self.directions, resume=ctx.resume,
                               sampler=sampler or proposals, pruner=self.make_pruner())
        rows: list[dict[str, Any]] = []
        if ctx.resume:
            interrupted = fail_interrupted(study, storage)
            rows = sync_rows(ctx.run, TRIALS_FILE, study, ROW_KEYS)
            get_logger().info("search: resuming study %r with %d finished trials%s", name,
                              len(rows), f" ({len(interrupted)} interrupted, to be re-run)"
                              if interrupted else "")
        return study, proposals, rows, url

    def _ask(self, study: optuna.Study, proposals: ProposalSampler | None,
             rows: list[dict[str, Any]], seed: int
             ) -> tuple[optuna.Trial, dict[str, Any] | None, str | None] | str:
        """A new trial and its architecture (or the error that made it invalid), or why the
        search ends: the strategy has nothing left to propose, or only repeats."""
        tried = self._tried(rows) if self.dedup else {}
        if (self.dedup and self.categorical and not self.finite
                and len(tried) >= space_size(self.choices)):
            return f"exhausted: all {len(tried)} architectures of the space were trained"
        number = len(study.get_trials(deepcopy=False))  # a redraw adds no trial
        for attempt in range(self.max_collisions if self.dedup else 1):
            if proposals is not None:
                stream = f"{seed}:{number}" + (f":{attempt}" if attempt else "")
                arch = self.propose(random.Random(stream), rows)
                if arch is None:
                    return "completed"
                arch = self.space.validate(arch)
                if self._key(arch) in tried:
                    continue  # drawn again, before the study hears of it
                proposals.values = self.space.to_choices(arch) if self.categorical else {}
            with no_experimental_warnings():
                trial = study.ask()
                values = {label: trial.suggest_categorical(label, options)
                          for label, options in self.choices.items()}
            if proposals is not None:
                return trial, arch, None
            try:
                arch = self.space.validate(self.space.from_choices(values))
            except Exception as exc:  # a combination the space rejects is a failed trial
                return trial, None, describe_error(exc)
            earlier = tried.get(self._key(arch))
            if earlier is None:
                return trial, arch, None
            self._tell_repeat(study, trial, earlier)
        return (f"converged: {self.max_collisions} proposals in a row were architectures "
                "already trained")

    def _key(self, arch: dict[str, Any]) -> str:
        return choice_key(self.space.to_choices(arch) if self.categorical else arch)

    def _tried(self, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """Architecture key -> its trial's row, for trials that ran to an outcome (not those
        a kill or the deadline cut short: they are worth running again)."""
        return {self._key(r["arch"]): r for r in rows
                if r["arch"] is not None and r.get("error") != INTERRUPTED
                and not str(r.get("error") or "").startswith("budget")}

    def _tell_repeat(self, study: optuna.Study, trial: optuna.Trial,
                     earlier: dict[str, Any]) -> None:
        """Give a sampler's repeat the earlier trial's outcome; it is no row of its own."""
        trial.set_user_attr(REPEAT_OF, earlier["number"])
        state = TrialState[earlier["state"]]
        values = None
        if state == TrialState.COMPLETE:
            value = earlier["value"]
            values = value if isinstance(value, list) else [value]
        study.tell(trial, values, state=state)

    def prepare(self, ctx: SearchContext) -> None:
        """Checks and set-up a strategy needs before the first trial (e.g. grid size)."""

    def _counted(self, rows: list[dict[str, Any]]) -> int:
        return sum(1 for r in rows if r.get("error") != INTERRUPTED)

    def _estimate(self, rows: list[dict[str, Any]]) -> float:
        """Expected seconds of the next trial, from the finished ones."""
        times = [r["seconds"] for r in rows if r["state"] == "COMPLETE" and r.get("seconds")]
        return statistics.fmean(times) if times else 0.0

    def _run_trial(self, study: optuna.Study, trial: optuna.Trial, arch: dict[str, Any],
                   ctx: SearchContext, data: ImageData, spec: BuildSpec
                   ) -> optuna.trial.FrozenTrial:
        started = time.monotonic()
        attrs: dict[str, Any] = {"arch": arch, "val": None, "params": None, "flops": None,
                                 "latency_ms": None, "error": None, "epochs": 0, "value": None}
        state, values = TrialState.FAIL, None
        model = reporter = None
        oom = False
        trial.set_user_attr("arch", jsonable(arch))  # so even a killed trial says what it was
        try:
            torch.manual_seed(ctx.seed + trial.number)
            model = to_channels_last(self.space.build(arch, spec).to(ctx.device))
            shape = (data.channels, *data.image_size)
            # Profiling is part of the trial's time: checked against the deadline first.
            fits = ctx.deadline.fits(profile_seconds(model, shape, ctx.device))
            cost = profile_model(model, shape) if fits else {}
            attrs.update(cost)
            violated = self._check_constraints(trial, cost) if fits else []
            if not fits:
                state, attrs["error"] = TrialState.PRUNED, "budget: no time left to profile it"
            elif violated:
                state, attrs["error"] = TrialState.PRUNED, "constraint: " + "; ".join(violated)
            else:
                reporter = EpochReporter(trial, self.metrics[0], cost, not self.multi_objective)
                train_cfg = dataclasses.replace(self.trial_config(),
                                                **self.space.train_overrides(arch))
                result = fit(model, data, train_cfg, deadline=ctx.deadline,
                             device=ctx.device, seed=ctx.seed + trial.number,
                             prefix=f"trial {trial.number}", report=reporter, progress=False)
                attrs["epochs"] = result.epochs
                attrs["val"] = result.best_metrics or None
                measured = [metric_value(m, result.best_metrics, cost) for m in self.metrics]
                attrs["value"] = measured[0]
                if result.epochs < self.trial_epochs:
                    state = TrialState.PRUNED
                    attrs["error"] = (f"budget: the deadline stopped it after {result.epochs} "
                                      f"of {self.trial_epochs} epochs")
                elif any(v is None for v in measured):
                    attrs["error"] = "no objective value (the validation metrics are undefined)"
                else:
                    state, values = TrialState.COMPLETE, measured
        except optuna.TrialPruned as exc:
            state, attrs["error"] = TrialState.PRUNED, f"pruner: {exc}"
            attrs["epochs"], attrs["val"], attrs["value"] = (reporter.epochs, reporter.best_val,
                                                             reporter.best)
        except KeyboardInterrupt:
            attrs["error"] = INTERRUPTED
            self._finish(study, trial, attrs, started, TrialState.FAIL, None)
            raise
        except Exception as exc:  # one bad architecture must not end the search
            attrs["error"] = describe_error(exc)
            if reporter is not None:
                attrs["epochs"], attrs["val"] = reporter.epochs, reporter.best_val
            oom = is_out_of_memory(exc)
        del model
        if oom:
            release_memory()
        return self._finish(study, trial, attrs, started, state, values)

    def _finish(self, study: optuna.Study, trial: optuna.Trial, attrs: dict[str, Any],
                started: float, state: TrialState, values: list[float] | None
                ) -> optuna.trial.FrozenTrial:
        attrs["seconds"] = time.monotonic() - started
        for key, value in jsonable(attrs).items():
            trial.set_user_attr(key, value)
        return study.tell(trial, values, state=state)

    def _check_constraints(self, trial: optuna.Trial, cost: dict[str, Any]) -> list[str]:
        """Record each constraint in the trial (Optuna's samplers steer away from violations:
        value > 0 means violated) and return the violated ones, described."""
        violated = []
        limits = (("params", self.max_params), ("flops", self.max_flops),
                  ("latency_ms", self.max_latency_ms))
        for key, limit in limits:
            if limit is None:
                continue
            if hasattr(trial, "set_constraint"):  # Optuna >= 5
                trial.set_constraint(key, cost[key] / limit - 1.0)
            if cost[key] > limit:
                violated.append(f"{key} {cost[key]:,.6g} > max_{key} {limit:,.6g}")
        return violated

    def _log_trial(self, row: dict[str, Any]) -> None:
        value = row["value"]
        shown = ("n/a" if value is None else
                 ", ".join(f"{v:.4f}" for v in value) if isinstance(value, list) else
                 f"{value:.4f}")
        params = "?" if row["params"] is None else f"{row['params']:,}"
        get_logger().info("trial %d %s: %s %s, %s params, %.1f s%s", row["number"],
                          row["state"], "/".join(self.metrics), shown, params,
                          row["seconds"] or 0.0, f" ({row['error']})" if row["error"] else "")

    def _bar_info(self, rows: list[dict[str, Any]]) -> str:
        scores = [f for f in map(self.fitness, rows) if f is not None]
        if not scores:
            return f"{len(rows)} trials"
        best = max(scores)
        best = best if METRICS[self.metrics[0]] == "maximize" else -best
        return f"best {self.metrics[0]} {best:.4f}"

    def _result(self, rows: list[dict[str, Any]], stopped: str, url: str,
                study_name: str) -> SearchResult:
        complete = [r for r in rows if r["state"] == "COMPLETE"]
        default = self.space.default_arch()
        if not complete and default is not None and stopped == "budget":
            # Nothing was chosen: the pipeline trains the space's default and says why.
            return SearchResult(architecture=default, stopped=stopped, epochs=len(rows),
                                history=rows, arch_steps=0, extra={
                                    "n_trials": len(rows), "states": {"COMPLETE": 0},
                                    "objectives": self.metrics, "storage": masked(url),
                                    "study_name": study_name})
        if not complete:
            errors = sorted({str(r["error"]) for r in rows if r["error"]})
            if not rows:
                raise ConfigError("the budget ended before the first trial finished; give the "
                                  "search more time (--budget) or cheaper trials "
                                  "(--set search.trial_epochs=1, search.data_fraction=0.3)")
            raise ConfigError(f"none of the {len(rows)} trials completed; their errors: "
                              f"{'; '.join(errors[:5])}")
        extra: dict[str, Any] = {
            "n_trials": len(rows),
            "states": {s: sum(r["state"] == s for r in rows)
                       for s in ("COMPLETE", "PRUNED", "FAIL")},
            "objectives": self.metrics,
            "storage": masked(url),
            "study_name": study_name,
        }
        if self.multi_objective:
            front = pareto_front(rows, self.directions)
            extra["pareto"] = [{"number": r["number"], "arch": r["arch"], "value": r["value"],
                                "params": r["params"]} for r in front]
            candidates = front
        else:
            candidates = complete
        best = max(candidates, key=lambda r: (self.fitness(r), -r["number"]))
        extra["best_trial"] = best["number"]
        extra["best_value"] = best["value"]
        get_logger().info("search: best trial %d (%s %s) of %d", best["number"],
                          "/".join(self.metrics), best["value"], len(rows))
        return SearchResult(architecture=best["arch"], stopped=stopped, epochs=len(rows),
                            history=rows, extra=extra)
