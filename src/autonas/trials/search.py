"""Multi-trial architecture search on the trial runner: the plan that turns a strategy's
proposals into trials, the default evaluation (build, profile, train), and the search
driver the strategies' ``search`` calls, in one process or with workers.

A trial builds the proposed network at a proxy size (``trial_channels``/``trial_layers``),
profiles it (params, FLOPs, latency; constraints are checked before any training), trains
it for ``trial_epochs`` on ``data_fraction`` of the training split (a given share, or
one sized from the budget: see ``fidelity``) with the one training loop, and reports
validation metrics after every epoch so a pruner can stop it.

Strategies either let an Optuna sampler pick the choices (TPE, NSGA-II) or pick the
architecture themselves (random, grid, evolution, REINFORCE); their picks reach the study
through a sampler that replays them, so every trial's choices are stored the same way.
Each architecture is trained once (``dedup``, as KerasTuner's oracles do): a strategy's
repeat is drawn again; a sampler's repeat is told the earlier result without training, as
Optuna's FAQ advises. The search ends when a finite space has no untrained architecture
left, or after ``max_collisions`` repeats in a row.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna

from ..errors import ConfigError
from ..recorder import Recorder
from ..run import get_logger, jsonable
from ..spaces.base import SearchSpace, build_network
from ..training.budget import Deadline
from ..training.device import to_channels_last
from ..training.loop import profile_seconds
from ..training.profile import profile_model
from ..training.trainer import fit
from .fidelity import FRACTION_ATTR, resolve_data_fraction
from .runner import (
    PROPOSAL,
    Evaluate,
    InvalidProposal,
    TrialJob,
    TrialRunner,
    describe_error,
    progress_rows,
)
from .study import (
    default_storage,
    exclusive_sqlite,
    is_sqlite,
    make_storage,
    masked,
    metric_value,
    no_experimental_warnings,
    open_study,
    pareto_front,
    single_process,
)

if TYPE_CHECKING:
    from ..strategies.base import SearchContext, SearchResult
    from ..strategies.multitrial import MultiTrialStrategy

TRIALS_KIND = "search/trials"
TRIALS_FILE = TRIALS_KIND + ".jsonl"
ROW_KEYS = ("arch", "val", "params", "flops", "latency_ms", "seconds", "error", "epochs",
            "seed", PROPOSAL)


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


class ArchitecturePlan:
    """A multi-trial strategy's proposals as trials: JSON architectures, keyed by their
    choices for dedup."""

    subject = "arch"
    keys = ROW_KEYS

    def __init__(self, strategy: MultiTrialStrategy, space: SearchSpace) -> None:
        self.strategy, self.space = strategy, space
        self.metrics = strategy.metrics
        self.categorical = has_categorical_view(space)
        self.choices = space.choices() if self.categorical else {}
        self.replay = ProposalSampler()
        self.drawn_by_sampler = strategy.make_sampler(0) is not None

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler | None:
        return self.strategy.make_sampler(seed) if self.drawn_by_sampler else None

    def propose(self, trial: optuna.Trial | None, rng: random.Random,
                history: list[dict[str, Any]]) -> dict[str, Any] | None:
        if not self.drawn_by_sampler:
            arch = self.strategy.propose(rng, history)
            return None if arch is None else self.space.validate(arch)
        assert trial is not None
        values = {label: trial.suggest_categorical(label, options)
                  for label, options in self.choices.items()}
        try:
            return self.space.validate(self.space.from_choices(values))
        except Exception as exc:  # a combination the space rejects is a failed trial
            raise InvalidProposal(describe_error(exc)) from None

    def fix(self, trial: optuna.Trial, arch: dict[str, Any]) -> None:
        self.replay.values = self.space.to_choices(arch) if self.categorical else {}
        with no_experimental_warnings():
            for label, options in self.choices.items():
                trial.suggest_categorical(label, options)

    def key(self, arch: dict[str, Any]) -> str:
        return choice_key(self.space.to_choices(arch) if self.categorical else arch)

    def exhausted(self, tried: int) -> str | None:
        if self.categorical and not self.strategy.finite and tried >= space_size(self.choices):
            return f"exhausted: all {tried} architectures of the space were trained"
        return None

    def observe(self, row: dict[str, Any]) -> None:
        self.strategy.observe(row)


def train_architecture(strategy: MultiTrialStrategy, ctx: SearchContext,
                       fraction: float = 1.0) -> Evaluate:
    """The default evaluation: build the proposed network at the proxy size, profile it,
    check the constraints, train it for ``trial_epochs`` on ``fraction`` of the training
    split."""
    data = strategy.trial_data(ctx.data, ctx.seed, fraction)
    spec = strategy.build_spec(data)
    space = ctx.space

    def evaluate(job: TrialJob) -> dict[str, Any]:
        import torch

        torch.manual_seed(job.seed)
        model = to_channels_last(build_network(space, job.subject, spec).to(ctx.device))
        shape = (data.channels, *data.image_size)
        # Profiling is part of the trial's time: checked against the deadline first.
        if not job.deadline.fits(profile_seconds(model, shape, ctx.device)):
            return {"state": "PRUNED", "error": "budget: no time left to profile it"}
        cost = profile_model(model, shape)
        row: dict[str, Any] = dict(cost)
        violated = job.constraints(cost)
        if violated:
            return {**row, "state": "PRUNED", "error": "constraint: " + "; ".join(violated)}
        job.reporter.cost = cost
        # a space searched jointly with training options trains each trial with its own
        train_cfg = dataclasses.replace(strategy.trial_config(),
                                        **space.train_overrides(job.subject))
        result = fit(model, data, train_cfg, deadline=job.deadline,
                     device=ctx.device, seed=job.seed, prefix=f"trial {job.number}",
                     report=job.reporter, progress=False)
        row.update(epochs=result.epochs, val=result.best_metrics or None)
        if result.epochs < strategy.trial_epochs:
            row.update(state="PRUNED", value=metric_value(strategy.metrics[0],
                                                          result.best_metrics, cost),
                       error=f"budget: the deadline stopped it after {result.epochs} of "
                             f"{strategy.trial_epochs} epochs")
        return row

    return evaluate


def constraint_check(strategy: MultiTrialStrategy
                     ) -> Callable[[optuna.Trial, dict[str, Any]], list[str]]:
    """Record each constraint in the trial (Optuna's samplers steer away from violations:
    value > 0 means violated) and return the violated ones, described."""

    def check(trial: optuna.Trial, cost: dict[str, Any]) -> list[str]:
        violated = []
        limits = (("params", strategy.max_params), ("flops", strategy.max_flops),
                  ("latency_ms", strategy.max_latency_ms))
        for key, limit in limits:
            if limit is None:
                continue
            if hasattr(trial, "set_constraint"):
                trial.set_constraint(key, cost[key] / limit - 1.0)
            if cost[key] > limit:
                violated.append(f"{key} {cost[key]:,.6g} > max_{key} {limit:,.6g}")
        return violated

    return check


def open_search(strategy: MultiTrialStrategy, url: str, name: str, *, resume: bool
                ) -> tuple[optuna.Study, optuna.storages.RDBStorage]:
    heartbeat = None if is_sqlite(url) else strategy.heartbeat_interval
    storage = make_storage(url, heartbeat_interval=heartbeat,
                           grace_period=strategy.grace_period)
    with no_experimental_warnings():
        study = open_study(storage, url, name, strategy.directions, resume=resume,
                           sampler=strategy.make_sampler(0) or ProposalSampler(),
                           pruner=strategy.make_pruner())
    return study, storage


def make_runner(strategy: MultiTrialStrategy, ctx: SearchContext, study: optuna.Study,
                storage: optuna.storages.RDBStorage, url: str, recorder: Recorder,
                evaluate: Evaluate | None = None,
                deadline: Deadline | None = None) -> TrialRunner:
    plan = ArchitecturePlan(strategy, ctx.space)
    if not plan.drawn_by_sampler:
        study.sampler = plan.replay
    if evaluate is None:
        fraction = resolve_data_fraction(strategy, ctx, study)
        if fraction < 1.0:
            get_logger().info("search: each trial trains on %d of the %d training images "
                              "(data_fraction %.2f)", round(fraction * len(ctx.data.train_y)),
                              len(ctx.data.train_y), fraction)
        evaluate = train_architecture(strategy, ctx, fraction)
    return TrialRunner(study, storage, plan, evaluate,
                       recorder=recorder, kind=TRIALS_KIND,
                       deadline=deadline or ctx.deadline, seed=ctx.seed,
                       max_trials=strategy.max_trials, alone=single_process(url),
                       dedup=strategy.dedup, max_collisions=strategy.max_collisions,
                       prune=not strategy.multi_objective,
                       constraints=constraint_check(strategy))


def run_search(strategy: MultiTrialStrategy, ctx: SearchContext,
               evaluate: Evaluate | None = None) -> SearchResult:
    """Run (or resume) ``strategy``'s search: in this process, or with ``strategy.workers``
    worker processes sharing the study (the coordinator then records and waits)."""
    from .workers import coordinate, write_job

    strategy.setup(ctx)
    url = strategy.storage or default_storage(ctx.run.file("search"))
    if strategy.workers > 1 and single_process(url):
        raise ConfigError(f"{strategy.workers} workers cannot share a SQLite study: SQLite "
                          "serves one process. Put the study on PostgreSQL: --storage "
                          "postgresql://user:pass@host/db --workers N")
    name = strategy.study_name or ctx.run.path.name
    recorder = ctx.recorder or Recorder(ctx.run)
    study, storage = open_search(strategy, url, name, resume=ctx.resume)
    runner = make_runner(strategy, ctx, study, storage, url, recorder, evaluate)
    runner.refresh()
    if ctx.resume:
        get_logger().info("search: resuming study %r with %d finished trials", name,
                          len(runner.rows))
    get_logger().info("search: %s, %d-epoch trials, storage %s%s", strategy.name,
                      strategy.trial_epochs, masked(url),
                      f", {strategy.workers} workers" if strategy.workers else "")
    stopped = None
    with progress_rows(recorder, "search", strategy.max_trials, runner) as advance:
        if strategy.workers:
            write_job(study, ctx, url)
            coordinate(strategy.workers, url, name, ctx.run, runner, advance)
        with exclusive_sqlite(url):
            stopped = runner.work(on_row=advance)
    if stopped not in ("completed", "budget"):
        get_logger().info("search: %s", stopped)
    result = search_result(strategy, runner.rows, stopped, url, name)
    if FRACTION_ATTR in study.user_attrs:
        result.extra["data_fraction"] = study.user_attrs[FRACTION_ATTR]
    return result


def search_result(strategy: MultiTrialStrategy, rows: list[dict[str, Any]], stopped: str,
                  url: str, study_name: str) -> SearchResult:
    from ..strategies.base import SearchResult

    complete = [r for r in rows if r["state"] == "COMPLETE"]
    default = strategy.space.default_arch()
    if not complete and default is not None and stopped == "budget":
        # Nothing was chosen: the pipeline trains the space's default and says why.
        return SearchResult(architecture=default, stopped=stopped, epochs=len(rows),
                            history=rows, arch_steps=0, extra={
                                "n_trials": len(rows), "states": {"COMPLETE": 0},
                                "objectives": strategy.metrics, "storage": masked(url),
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
        "objectives": strategy.metrics,
        "storage": masked(url),
        "study_name": study_name,
    }
    population = strategy.population()
    finished = sum(1 for r in rows if r["state"] == "COMPLETE")
    if population is not None and finished < population:
        extra["random_only"] = True  # the pipeline says so (``fallback.search_honesty``)
    if strategy.multi_objective:
        front = pareto_front(rows, strategy.directions)
        extra["pareto"] = [{"number": r["number"], "arch": r["arch"], "value": r["value"],
                            "params": r["params"]} for r in front]
        candidates = front
    else:
        candidates = complete
    best = max(candidates, key=lambda r: (strategy.fitness(r), -order(r)))
    extra["best_trial"] = best["number"]
    extra["best_value"] = best["value"]
    if not strategy.multi_objective:
        extra["runners_up"] = runners_up(complete, best, strategy)
    get_logger().info("search: best trial %d (%s %s) of %d", best["number"],
                      "/".join(strategy.metrics), best["value"], len(rows))
    return SearchResult(architecture=best["arch"], stopped=stopped, epochs=len(rows),
                        history=rows, extra=extra)


def runners_up(complete: list[dict[str, Any]], best: dict[str, Any],
               strategy: MultiTrialStrategy) -> list[dict[str, Any]]:
    """The next best distinct architectures after ``best``, best first (the candidates of
    an ensemble: see ``RunConfig.ensemble``)."""
    from ..config import ENSEMBLE_MAX

    seen = {json.dumps(best["arch"], sort_keys=True)}
    scored = [r for r in complete if strategy.fitness(r) is not None]
    ranked = sorted(scored, key=lambda r: (strategy.fitness(r), -order(r)), reverse=True)
    out = []
    for row in ranked:
        key = json.dumps(row["arch"], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        out.append({"number": row["number"], "arch": row["arch"], "value": row["value"],
                    "flops": row.get("flops"), "params": row.get("params")})
        if len(out) == ENSEMBLE_MAX - 1:
            break
    return out


def order(row: dict[str, Any]) -> int:
    """Ties go to the earlier proposal (a re-run keeps its original's place)."""
    index = row.get(PROPOSAL)
    return row["number"] if index is None else index


def best_finished(rows: list[dict[str, Any]], options: dict[str, Any]) -> dict[str, Any] | None:
    """The best COMPLETE row on the first objective of a strategy's ``options`` (e.g. to
    retrain after a crash), or None when no trial finished."""
    from .study import metric_name, oriented

    objectives = options.get("objectives") or [options.get("objective") or "auc"]
    metric = metric_name(objectives[0] if isinstance(objectives, list) else objectives)
    scored = []
    for r in rows:
        if r.get("state") != "COMPLETE" or r.get("value") is None or r.get("arch") is None:
            continue
        value = r["value"][0] if isinstance(r["value"], list) else r["value"]
        scored.append((oriented(value, metric), -order(r), r))
    if not scored:
        return None
    return max(scored, key=lambda s: (s[0], s[1]))[2]
