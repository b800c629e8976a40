"""The one trial loop: ask -> propose -> evaluate (build, profile, fit) -> tell, for
multi-trial search, tuning and workers alike.

What varies is plugged in: a ``TrialPlan`` says what a trial tries (an architecture, a set
of training settings) and how to propose it; an ``Evaluate`` callable turns a proposal into
a metrics row (the default one builds, profiles and trains a network; a test can pass a
synthetic objective). The runner owns everything else:

- Every proposal gets an index (0, 1, 2, ...) and a seed, stored in the trial's user
  attributes with the proposal *before* training. A trial whose worker died (Ctrl-C, kill
  -9, a lost machine) is failed and re-queued with those attributes (Optuna's retry
  callback), and the next worker to ask re-runs exactly that proposal with that seed.
  Strategies see the history in proposal order and draw from a stream keyed by the
  proposal index, so a resumed search proposes what an uninterrupted one would have.
- Workers sharing a study on PostgreSQL ask one at a time (an advisory lock): counting
  trials, proposing and asking are one step, so exactly ``max_trials`` proposals run and
  no architecture is trained twice. Each running trial sends a heartbeat; a silent one is
  failed and re-queued, never a live worker's.
- Dedup (each architecture trained once), failure records, the shared deadline, and the
  rows of the run folder (through the recorder, which writes only in the coordinator).
"""

from __future__ import annotations

import gc
import os
import random
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from ..recorder import Recorder
from ..run import get_logger, jsonable
from ..training.budget import Deadline
from .study import (
    INTERRUPTED,
    METRICS,
    REPEAT_OF,
    ask_lock,
    metric_value,
    no_experimental_warnings,
    oriented,
    recover_dead_trials,
    retry_callback,
    trial_row,
)

PROPOSAL = "proposal"
"""User attribute: the proposal's index (0, 1, ...), kept by a re-run of the same proposal."""
SEED = "seed"
"""User attribute: the seed the trial trains with, kept by a re-run."""
WORKER = "worker"
"""User attribute: ``host:pid`` of the process that runs (or ran) the trial."""
ABANDONED = "abandoned"
"""User attribute of a re-queued trial whose original died before its proposal was stored:
it is closed without a row, and the proposal is drawn again from its index."""
RESULT = "result"
"""User attribute: the finished trial's row (metrics, costs, error, seconds), in one write."""
MAX_CONSECUTIVE_FAILURES = 20
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)


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


def derived_seed(seed: int, index: int) -> int:
    """A seed for proposal ``index`` of a run seeded ``seed`` (stable across processes)."""
    return (seed * 1_000_003 + index) % 2**31


class InvalidProposal(Exception):
    """A proposal the space rejects: recorded as a failed trial, the search goes on."""


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
class TrialJob:
    """What an evaluation gets: the proposal, its seed, and the trial's hooks."""

    number: int
    subject: dict[str, Any]
    seed: int
    deadline: Deadline
    trial: optuna.Trial
    reporter: EpochReporter
    constraints: Callable[[dict[str, Any]], list[str]] = field(default=lambda cost: [])
    """Checks a profiled cost (params, flops, latency_ms): the violated limits, described."""


Evaluate = Callable[[TrialJob], dict[str, Any]]
"""A trial's evaluation: returns its row (``val``: validation metrics of the best epoch,
costs, ``epochs``); ``state`` (PRUNED, FAIL) and ``error`` in it end the trial so
(a constraint, the deadline). An exception is a failed trial; ``optuna.TrialPruned``
(from ``job.reporter``) a pruned one."""


class TrialPlan(Protocol):
    """What a search or a tuning study plugs into the runner."""

    subject: str
    """Row key of what a trial tries: ``arch`` or ``hparams``."""
    keys: tuple[str, ...]
    """Row keys kept from the trial's user attributes."""
    metrics: list[str]
    drawn_by_sampler: bool
    """Whether ``propose`` lets the study's sampler pick (through ``trial.suggest_*``):
    a repeat is then told the earlier result; otherwise it is drawn again."""

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler | None: ...

    def propose(self, trial: optuna.Trial, rng: random.Random,
                history: list[dict[str, Any]]) -> dict[str, Any] | None: ...

    def fix(self, trial: optuna.Trial, subject: dict[str, Any]) -> None: ...

    def key(self, subject: dict[str, Any]) -> str | None: ...

    def exhausted(self, tried: int) -> str | None: ...

    def observe(self, row: dict[str, Any]) -> None: ...


class Heartbeat:
    """Records a running trial's heartbeat every interval in a thread (Optuna's stale-trial
    check fails trials whose heartbeat stops)."""

    def __init__(self, storage: Any, trial_id: int) -> None:
        self.storage, self.trial_id = storage, trial_id
        self.interval = storage.get_heartbeat_interval() if hasattr(
            storage, "get_heartbeat_interval") else None
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self.interval:
            self.storage.record_heartbeat(self.trial_id)
            self.thread = threading.Thread(target=self._beat, daemon=True)
            self.thread.start()
        return self

    def _beat(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:  # a lost connection: the next beat tries again
                continue

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


@dataclass
class Picked:
    trial: optuna.Trial
    subject: dict[str, Any] | None
    seed: int
    index: int
    error: str | None = None
    retry_of: int | None = None


class TrialRunner:
    """Runs a plan's trials in one study until ``max_trials`` proposals, the deadline, or
    the plan has nothing new; several runners (workers) may share the study."""

    def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage,
                 plan: TrialPlan, evaluate: Evaluate, *, recorder: Recorder, kind: str,
                 deadline: Deadline, seed: int,
                 max_trials: int | None, alone: bool, dedup: bool = True,
                 max_collisions: int = 50, prune: bool = False, log_prefix: str = "trial",
                 constraints: Callable[[optuna.Trial, dict[str, Any]], list[str]] | None = None
                 ) -> None:
        self.study, self.plan, self.evaluate = study, plan, evaluate
        self.storage = storage  # the RDB storage itself (the study's may be a cache over it)
        self.recorder, self.kind, self.deadline, self.seed = recorder, kind, deadline, seed
        self.max_trials, self.alone, self.dedup = max_trials, alone, dedup
        self.max_collisions, self.prune, self.log_prefix = max_collisions, prune, log_prefix
        self.constraints = constraints
        self.rows: list[dict[str, Any]] = []
        self._rows: dict[int, dict[str, Any]] = {}
        self._recovered = False

    # -- the history ---------------------------------------------------------------------
    def refresh(self, trials: list[FrozenTrial] | None = None) -> list[dict[str, Any]]:
        """Take in the newly finished trials (all workers'; ``trials`` if just read):
        record their rows and let the plan observe them in proposal order; returns every
        finished row in proposal order."""
        if trials is None:
            trials = self.study.get_trials(deepcopy=False)
        new = [trial_row(t, self.plan.keys) for t in trials
               if t.state in FINISHED and t.number not in self._rows and is_row(t)]
        if new:
            self.recorder.sync(self.kind, sorted(new, key=lambda r: r["number"]))
            for row in sorted(new, key=proposal_order):
                self._rows[row["number"]] = row
                self.plan.observe(row)
            self.rows = sorted(self._rows.values(), key=proposal_order)
        return self.rows

    def history(self) -> list[dict[str, Any]]:
        """Finished rows a strategy learns from: in proposal order, without the trials a
        kill cut short (their proposal runs again)."""
        return [r for r in self.rows if r.get("error") != INTERRUPTED]

    def counted(self) -> int:
        return sum(1 for r in self.rows if r.get("error") != INTERRUPTED)

    def estimate(self) -> float:
        """Expected seconds of the next trial, from the finished ones."""
        times = [r["seconds"] for r in self.rows if r["state"] == "COMPLETE" and r.get("seconds")]
        return statistics.fmean(times) if times else 0.0

    def recover(self) -> list[int]:
        return recover_dead_trials(self.study, self.storage, alone=self.alone)

    # -- the loop ---------------------------------------------------------------------------
    def work(self, on_row: Callable[[dict[str, Any]], None] | None = None) -> str:
        """Run trials until the search is over; returns why it ended (``completed``,
        ``budget``, ``exhausted: ...``, ``converged: ...``, ``early-stop: ...``)."""
        failures = 0
        interval = getattr(self.storage, "heartbeat_interval", None) or 1
        try:
            while True:
                if failures >= MAX_CONSECUTIVE_FAILURES:
                    return f"early-stop: {failures} trials in a row failed"
                picked = self.pick()
                if isinstance(picked, str):
                    if picked == "budget" or self.alone or not self._others_running():
                        return picked
                    # others' trials still run: if a worker dies, its trial needs a re-run
                    time.sleep(min(interval, 1.0))
                    continue
                frozen = self.run(picked)
                row = trial_row(frozen, self.plan.keys)
                failures = failures + 1 if row["state"] == "FAIL" else 0
                self.log(row)
                self.refresh()
                if on_row is not None:
                    on_row(row)
                if row["state"] == "PRUNED" and str(row["error"]).startswith("budget"):
                    return "budget"
        finally:
            self.refresh()

    def pick(self) -> Picked | str:
        """The next trial with its proposal, or why this runner has nothing to start
        (``budget``, ``completed``, ``exhausted: ...``, ``converged: ...``)."""
        with ask_lock(self.storage, self.study.study_name):
            if not (self.alone and self._recovered):  # alone, no one else leaves trials
                self.recover()
                self._recovered = True
            while True:
                trials = self.study.get_trials(deepcopy=False)
                self.refresh(trials)
                index = len({t.user_attrs[PROPOSAL] for t in trials
                             if PROPOSAL in t.user_attrs})
                if not any(t.state == TrialState.WAITING for t in trials):
                    break
                trial = self._new_trial(index)  # a dead worker's trial, queued again
                if PROPOSAL in trial.user_attrs:
                    return self._retry(trial)  # re-run it exactly
                self._abandon(trial)  # killed before its proposal was stored: none lost
            if self.deadline.expired() or not self.deadline.fits(self.estimate()):
                return "budget"
            if self.max_trials is not None and index >= self.max_trials:
                return "completed"
            return self._ask(index, trials)

    def _others_running(self) -> bool:
        return any(t.state == TrialState.RUNNING
                   for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)))

    def _abandon(self, trial: optuna.Trial) -> None:
        trial.set_user_attr(ABANDONED, True)
        self.study.tell(trial, state=TrialState.FAIL)

    def _ask(self, index: int, trials: list[FrozenTrial]) -> Picked | str:
        tried = self._tried(trials) if self.dedup else {}
        if self.dedup:
            ended = self.plan.exhausted(len(tried))
            if ended:
                return ended
        history = self.history()
        if not self.plan.drawn_by_sampler:
            drawn = self._draw(index, history, tried)
            if isinstance(drawn, str):
                return drawn
            subject, error = drawn
            trial = self._new_trial(index)
            if subject is not None:
                self.plan.fix(trial, subject)
            return self._store(trial, subject, index, error)
        for attempt in range(self.max_collisions if self.dedup else 1):
            trial = self._new_trial(index, attempt)
            try:
                subject = self.plan.propose(trial, random.Random(f"{self.seed}:{index}"),
                                            history)
            except InvalidProposal as exc:
                return self._store(trial, None, index, str(exc))
            assert subject is not None, "a sampler always proposes"
            key = self.plan.key(subject) if self.dedup else None
            earlier = tried.get(key) if key is not None else None
            if earlier is None:
                return self._store(trial, subject, index, None)
            self._tell_repeat(trial, earlier)
        return (f"converged: {self.max_collisions} proposals in a row were architectures "
                "already trained")

    def _new_trial(self, index: int, attempt: int = 0) -> optuna.Trial:
        sampler = self.plan.make_sampler(derived_seed(self.seed, index) + attempt)
        if sampler is not None:  # seeded by the proposal index: a resumed search draws alike
            self.study.sampler = sampler
        with no_experimental_warnings():
            return self.study.ask()

    def _draw(self, index: int, history: list[dict[str, Any]], tried: dict[str, Any]
              ) -> tuple[dict[str, Any] | None, str | None] | str:
        """A strategy's own proposal (drawn again on a repeat), before any trial exists."""
        for attempt in range(self.max_collisions if self.dedup else 1):
            rng = random.Random(f"{self.seed}:{index}" + (f":{attempt}" if attempt else ""))
            try:
                subject = self.plan.propose(None, rng, history)
            except InvalidProposal as exc:
                return None, str(exc)
            if subject is None:
                return "completed"
            key = self.plan.key(subject) if self.dedup else None
            if key is None or key not in tried:
                return subject, None
        return (f"converged: {self.max_collisions} proposals in a row were architectures "
                "already trained")

    def _retry(self, trial: optuna.Trial) -> Picked:
        attrs = trial.user_attrs
        retry_of = self.storage.get_trial(trial._trial_id).system_attrs.get("failed_trial")
        get_logger().info("%s %d: re-runs trial %s (proposal %d, seed %d) whose run was cut "
                          "short", self.log_prefix, trial.number, retry_of, attrs[PROPOSAL],
                          attrs[SEED])
        return Picked(trial, attrs.get(self.plan.subject), attrs[SEED], attrs[PROPOSAL],
                      retry_of=retry_of)

    def _store(self, trial: optuna.Trial, subject: dict[str, Any] | None, index: int,
               error: str | None) -> Picked:
        """Keep the proposal and its seed in the trial before it trains, so a re-run after
        a kill can repeat it exactly."""
        seed = self.seed + index
        trial.set_user_attr(self.plan.subject, jsonable(subject))
        trial.set_user_attr(SEED, seed)
        trial.set_user_attr(PROPOSAL, index)  # last: marks the proposal as stored
        return Picked(trial, subject, seed, index, error=error)

    def _tried(self, trials: list[FrozenTrial]) -> dict[str, Any]:
        """Key -> the earlier row (a stand-in for a trial still running), for proposals
        that ran to an outcome or are running (not those a kill or the deadline cut
        short)."""
        tried: dict[str, Any] = {}
        for t in trials:
            subject = t.user_attrs.get(self.plan.subject)
            if subject is None or REPEAT_OF in t.user_attrs:
                continue
            if t.state in (TrialState.RUNNING, TrialState.WAITING):
                key = self.plan.key(subject)
                if key is not None:
                    tried.setdefault(key, {"number": t.number, "state": "RUNNING"})
        for r in self.rows:
            error = str(r.get("error") or "")
            if r.get(self.plan.subject) is None or error == INTERRUPTED or \
                    error.startswith("budget"):
                continue
            key = self.plan.key(r[self.plan.subject])
            if key is not None:
                tried[key] = r
        return tried

    def _tell_repeat(self, trial: optuna.Trial, earlier: dict[str, Any]) -> None:
        """Give a sampler's repeat the earlier trial's outcome; it is no row of its own.
        (A repeat of a trial still running is told nothing yet: it fails quietly.)"""
        trial.set_user_attr(REPEAT_OF, earlier["number"])
        state = TrialState[earlier["state"]] if earlier["state"] != "RUNNING" else \
            TrialState.FAIL
        values = None
        if state == TrialState.COMPLETE:
            value = earlier["value"]
            values = value if isinstance(value, list) else [value]
        self.study.tell(trial, values, state=state)

    # -- one trial ------------------------------------------------------------------------------
    def run(self, picked: Picked) -> FrozenTrial:
        trial = picked.trial
        started = time.monotonic()
        attrs: dict[str, Any] = {"val": None, "error": picked.error, "epochs": 0,
                                 "value": None}
        if picked.error is not None or picked.subject is None:
            attrs["error"] = attrs["error"] or "no proposal"
            return self.finish(trial, attrs, started, TrialState.FAIL, None)
        trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
        metric = self.plan.metrics[0]
        reporter = EpochReporter(trial, metric, {}, self.prune)
        job = TrialJob(number=trial.number, subject=picked.subject, seed=picked.seed,
                       deadline=self.deadline, trial=trial, reporter=reporter,
                       constraints=lambda cost: self._constraints(trial, cost))
        state, values, oom = TrialState.FAIL, None, False
        with Heartbeat(self.storage, trial._trial_id):
            try:
                out = self.evaluate(job)
                attrs.update(out)
                state, values = self._outcome(attrs)
            except optuna.TrialPruned as exc:
                state, attrs["error"] = TrialState.PRUNED, f"pruner: {exc}"
                attrs.update(epochs=reporter.epochs, val=reporter.best_val, value=reporter.best)
            except KeyboardInterrupt:
                attrs["error"] = INTERRUPTED
                frozen = self.finish(trial, attrs, started, TrialState.FAIL, None)
                with no_experimental_warnings():
                    retry_callback()(self.study, frozen)  # re-run as it was on resume
                raise
            except Exception as exc:  # one bad proposal must not end the search
                attrs["error"] = describe_error(exc)
                attrs.update(epochs=reporter.epochs, val=reporter.best_val)
                oom = is_out_of_memory(exc)
        if oom:
            release_memory()
        return self.finish(trial, attrs, started, state, values)

    def _outcome(self, attrs: dict[str, Any]) -> tuple[TrialState, list[float] | None]:
        if attrs.get("state") is not None:
            return TrialState[attrs.pop("state")], None
        measured = [metric_value(m, attrs.get("val"), attrs) for m in self.plan.metrics]
        attrs["value"] = measured[0]
        if any(v is None for v in measured):
            attrs["error"] = "no objective value (the validation metrics are undefined)"
            return TrialState.FAIL, None
        return TrialState.COMPLETE, [float(v) for v in measured]

    def _constraints(self, trial: optuna.Trial, cost: dict[str, Any]) -> list[str]:
        return self.constraints(trial, cost) if self.constraints is not None else []

    def finish(self, trial: optuna.Trial, attrs: dict[str, Any], started: float,
               state: TrialState, values: list[float] | None) -> FrozenTrial:
        attrs.pop("state", None)
        attrs["seconds"] = time.monotonic() - started
        trial.set_user_attr(RESULT, jsonable(attrs))  # one write: a trial's row
        return self.study.tell(trial, values, state=state)

    def log(self, row: dict[str, Any]) -> None:
        value = row["value"]
        shown = ("n/a" if value is None else
                 ", ".join(f"{v:.4f}" for v in value) if isinstance(value, list) else
                 f"{value:.4f}")
        extra = f", {row['params']:,} params" if row.get("params") is not None else ""
        get_logger().info("%s %d %s: %s %s%s, %.1f s%s", self.log_prefix, row["number"],
                          row["state"], "/".join(self.plan.metrics), shown, extra,
                          row.get("seconds") or 0.0,
                          f" ({row['error']})" if row.get("error") else "")

    def best_info(self) -> str:
        metric = self.plan.metrics[0]
        scores = [oriented(v[0] if isinstance(v, list) else v, metric)
                  for r in self.rows if r["state"] == "COMPLETE" and (v := r["value"]) is not None]
        if not scores:
            return f"{len(self.rows)} trials"
        best = max(scores)
        return f"best {metric} {best if METRICS[metric] == 'maximize' else -best:.4f}"


def is_row(trial: FrozenTrial) -> bool:
    """Whether a finished trial is one of the search's rows: not a sampler's repeat, not
    a trial killed before its proposal was stored (nothing of it was lost)."""
    attrs = trial.user_attrs
    if REPEAT_OF in attrs or ABANDONED in attrs:
        return False
    if PROPOSAL in attrs or trial.state != TrialState.FAIL:
        return True
    return bool((attrs.get(RESULT) or {}).get("error") or attrs.get("error"))  # older runs


def proposal_order(row: dict[str, Any]) -> tuple[int, int]:
    """Rows sort by proposal index (a re-run takes its original's place), then number."""
    index = row.get(PROPOSAL)
    return (row["number"] if index is None else index, row["number"])


@contextmanager
def progress_rows(recorder: Recorder, phase: str, total: int | None, runner: TrialRunner
                  ) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar advanced by each finished row (nothing drawn where nothing is
    recorded)."""
    with recorder.progress(phase, total) as bar:
        if bar is not None:
            bar.update(completed=runner.counted())

        def advance(_row: dict[str, Any]) -> None:
            if bar is not None:
                bar.update(completed=runner.counted(), info=runner.best_info())

        yield advance
