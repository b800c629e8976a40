"""Optuna plumbing shared by multi-trial search and tuning: storage, study, trial rows.

The study is the record of truth (a kill -9 loses nothing it has committed); the JSON rows
in ``trials.jsonl`` are rebuilt from it, so the two always agree. SQLite serves one
process; several workers share a study on PostgreSQL, where Optuna's heartbeat tells a
dead worker's trial from a live one and re-queues it.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError
from ..run import jsonable

INTERRUPTED = "interrupted"
"""The error recorded for a trial a kill or Ctrl-C stopped; it does not count as tried."""
REPEAT_OF = "repeat_of"
"""User attribute of a sampler's repeat proposal, told the earlier trial's result."""

# Per metric: whether larger is better. Validation metrics come from the trial's best
# epoch; the costs come from profiling the built network.
METRICS = {"auc": "maximize", "accuracy": "maximize", "balanced_accuracy": "maximize",
           "loss": "minimize", "params": "minimize", "flops": "minimize",
           "latency_ms": "minimize"}
COSTS = ("params", "flops", "latency_ms")
_ALIASES = {"latency": "latency_ms", "acc": "accuracy"}


def quiet_optuna() -> None:
    """Optuna logs every trial at INFO; the run's own log says what matters."""
    optuna.logging.set_verbosity(logging.WARNING)


@contextmanager
def no_experimental_warnings() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
        # the runner beats for its trials itself (ask/tell, not Study.optimize)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        yield


def metric_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in METRICS:
        raise ConfigError(f"unknown objective {name!r}; choose from {', '.join(METRICS)}")
    return name


def metric_value(name: str, val: dict[str, Any] | None, cost: dict[str, Any]) -> float | None:
    """The raw value of a metric (AUC falls back to accuracy where undefined: one class)."""
    if name in COSTS:
        return cost.get(name)
    if not val:
        return None
    value = val.get(name)
    if value is None and name == "auc":
        value = val.get("accuracy")
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


def oriented(value: float, name: str) -> float:
    """Larger is better, whatever the metric."""
    return value if METRICS[name] == "maximize" else -value


# ----------------------------------------------------------------------------- storage


def default_storage(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder.resolve() / 'study.db'}"


def masked(url: str) -> str:
    """The URL without its password, for logs and result files."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def storage_url(url: str) -> str:
    """A SQLAlchemy URL with a driver: ``postgresql://`` (and ``postgres://``) mean psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


MEMORY = "memory"
"""The storage "URL" of a study kept in this process's memory (Optuna's InMemoryStorage):
fastest, for searches that need no resume and no workers (e.g. a synthetic benchmark)."""


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def single_process(url: str) -> bool:
    """Whether a study at ``url`` serves one process only (SQLite, memory)."""
    return is_sqlite(url) or url == MEMORY


def retry_callback() -> Any:
    """Re-queues a dead worker's trial with its params and user attributes (its
    architecture, seed and proposal number), so a live worker re-runs exactly it."""
    with no_experimental_warnings():
        return optuna.storages.RetryHeartbeatStaleTrialCallback()


def make_storage(url: str, *, heartbeat_interval: int | None = None,
                 grace_period: int | None = None) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url``; with ``heartbeat_interval`` (seconds), every
    running trial beats and a trial silent for ``grace_period`` is failed and re-queued."""
    quiet_optuna()
    if url == MEMORY:
        return optuna.storages.InMemoryStorage()  # type: ignore[return-value]
    full = storage_url(url)
    heartbeat: dict[str, Any] = {}
    if heartbeat_interval is not None:
        heartbeat = {"heartbeat_interval": int(heartbeat_interval),
                     "grace_period": int(grace_period or 3 * heartbeat_interval),
                     "heartbeat_stale_trial_callback": retry_callback()}
    engine = {} if is_sqlite(full) else {"pool_pre_ping": True}
    try:
        with no_experimental_warnings():
            storage = optuna.storages.RDBStorage(full, engine_kwargs=engine, **heartbeat)
        if is_sqlite(full) and ":memory:" not in full:
            _write_ahead_log(storage.engine)
        return storage
    except ImportError as exc:
        raise ConfigError(f"storage {masked(url)} needs a database driver that is not "
                          f"installed ({exc}); for PostgreSQL: pip install 'autonas"
                          "[distributed]' (psycopg 3), or leave --storage out for SQLite in "
                          "the run folder") from None
    except Exception as exc:
        raise ConfigError(f"cannot open the Optuna storage {masked(url)}: "
                          f"{type(exc).__name__}: {exc}; pass a SQLAlchemy URL such as "
                          "sqlite:///path/study.db or postgresql://user:pass@host/db") from None


@contextmanager
def exclusive_sqlite(url: str) -> Iterator[None]:
    """Hold the one-process lock of a SQLite study file (the OS drops it when the process
    dies, even by kill -9); a second process on the same file is refused."""
    if not is_sqlite(url):
        yield
        return
    import fcntl

    path = url.split("///", 1)[-1]
    if not path or path == ":memory:":
        yield
        return
    lock = open(f"{path}.lock", "a")  # noqa: SIM115 - held for the whole search
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"another process is searching the SQLite study {path}; SQLite serves one "
                "process. For several workers on one study, put it on a PostgreSQL server: "
                "--storage postgresql://user:pass@host/db --workers N (or autonas worker "
                "--storage postgresql://... --study NAME on each machine)") from None
        yield
    finally:
        lock.close()


@contextmanager
def ask_lock(storage: optuna.storages.RDBStorage, study_name: str) -> Iterator[None]:
    """Serialise asking between workers on PostgreSQL (an advisory lock, released by the
    server if the worker dies), so that counting trials, proposing and asking are one
    step: the search runs exactly the asked number of trials and no architecture twice.
    One process on SQLite needs no lock."""
    engine = getattr(storage, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    key = "autonas:" + study_name
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(hashtext(:k))"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(hashtext(:k))"), {"k": key})
            conn.commit()


def _write_ahead_log(engine: Any) -> None:
    """SQLite in WAL mode, synced at checkpoints: a trial's dozen small commits then cost
    microseconds, not an fsync each. A killed process loses nothing it committed (the log is
    in the OS's hands); only a power cut could cost the last trials."""
    from sqlalchemy import event

    def on_connect(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened while Optuna created its tables lack the pragmas


def open_study(storage: optuna.storages.BaseStorage, url: str, name: str,
               directions: Sequence[str], *, resume: bool,
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """A new study in ``storage`` (opened from ``url``), or on ``resume`` the existing one
    of that name (created if missing)."""
    quiet_optuna()
    try:
        study = optuna.create_study(storage=storage, study_name=name, sampler=sampler,
                                    pruner=pruner, directions=list(directions),
                                    load_if_exists=resume)
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(f"the storage {masked(url)} already holds a study named {name!r}; "
                          "pass --resume RUN_DIR to continue it, or choose another study "
                          "name (--set search.study_name=NAME)") from None
    wanted = [optuna.study.StudyDirection[d.upper()] for d in directions]
    if list(study.directions) != wanted:
        raise ConfigError(f"study {name!r} in {masked(url)} optimises {study.directions}, not "
                          f"{list(directions)}; resume it with the same objectives")
    return study


def recover_dead_trials(study: optuna.Study, storage: optuna.storages.RDBStorage, *,
                        alone: bool) -> list[int]:
    """Fail the trials whose worker is dead and queue each again (same params and user
    attributes: architecture, seed, proposal number); returns the failed trials' numbers.

    ``alone``: this process holds the study by itself (SQLite's lock), so every RUNNING
    trial is a dead process's. Otherwise only trials whose heartbeat went silent for the
    grace period are touched: a live worker's trial is never failed.
    """
    if not alone:
        before = {t.number for t in study.get_trials(deepcopy=False,
                                                     states=(TrialState.RUNNING,))}
        with no_experimental_warnings():
            optuna.storages.fail_stale_trials(study)
        after = {t.number for t in study.get_trials(deepcopy=False,
                                                    states=(TrialState.RUNNING,))}
        return sorted(before - after)
    numbers = []
    retry = retry_callback()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial_id = t._trial_id
        study._storage.set_trial_state_values(trial_id, TrialState.FAIL)
        with no_experimental_warnings():  # the runner closes a queued copy it cannot replay
            retry(study, study._storage.get_trial(trial_id))
        numbers.append(t.number)
    return numbers


# ----------------------------------------------------------------------------- rows


def finished_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Trials that trained (or failed trying), in order; repeats told an earlier result
    are left out."""
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return sorted((t for t in study.get_trials(deepcopy=False, states=states)
                   if REPEAT_OF not in t.user_attrs), key=lambda t: t.number)


def trial_row(trial: FrozenTrial, keys: Sequence[str]) -> dict[str, Any]:
    """One ``trials.jsonl`` row: ``number``, ``state``, ``value`` (a list for several
    objectives; for a pruned trial, its best value before it was stopped), then ``keys``
    from the trial's user attributes (the proposal's, and the ``result`` the runner
    writes when the trial ends)."""
    attrs = {**trial.user_attrs, **(trial.user_attrs.get("result") or {})}
    if trial.state == TrialState.COMPLETE:
        values = trial.values or []
        value: Any = values[0] if len(values) == 1 else list(values)
    else:
        value = attrs.get("value")
    row = {"number": trial.number, "state": trial.state.name, "value": value}
    row.update({k: attrs.get(k) for k in keys})
    if trial.state == TrialState.FAIL and "error" in keys and not attrs.get("error"):
        row["error"] = INTERRUPTED  # failed by a heartbeat check: its worker died
    return jsonable(row)


def pareto_front(rows: Sequence[dict[str, Any]], directions: Sequence[str]
                 ) -> list[dict[str, Any]]:
    """COMPLETE rows no other COMPLETE row dominates (better or equal everywhere, better
    somewhere); duplicates of a point are all kept."""
    points = []
    for r in rows:
        if r["state"] != "COMPLETE" or r["value"] is None:
            continue
        values = r["value"] if isinstance(r["value"], list) else [r["value"]]
        signs = [1.0 if d == "maximize" else -1.0 for d in directions]
        points.append((r, [s * v for s, v in zip(signs, values)]))

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [r for r, p in points if not any(dominates(q, p) for _, q in points)]
