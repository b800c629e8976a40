"""Hyperparameter tuning after the search: the found architecture stays fixed, the training
settings are searched (learning rate, weight decay, batch size, augmentation strength,
loss and class weights), BOHB-style: TPE proposals, Hyperband stopping over epochs.

Trials live in an Optuna study in ``RUN_DIR/tune/`` (or ``storage``); running ``autonas
tune`` on the same folder again continues that study. Results: ``tune/trials.jsonl`` (one
row per trial), ``tune/best.yaml`` (a ``train:`` section for ``--config``) and
``tune/result.json``; with ``retrain``, the architecture is retrained with the best
settings into ``RUN_DIR/tuned/`` and evaluated.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import TrialState

from .config import RunConfig
from .data import ImageData
from .errors import ConfigError
from .pipeline import build_spec, execute, load_data, read_architecture
from .run import RunDir, detach_log, get_logger, jsonable
from .spaces import make_space
from .spaces.base import build_network
from .strategies.multitrial import (
    EpochReporter,
    describe_error,
    is_out_of_memory,
    release_memory,
)
from .strategies.study import (
    INTERRUPTED,
    METRICS,
    default_storage,
    fail_interrupted,
    make_storage,
    masked,
    metric_value,
    no_experimental_warnings,
    open_study,
    sync_rows,
    trial_row,
)
from .training.budget import Budget
from .training.device import (
    configure_threads,
    resolve_device,
    seed_everything,
    to_channels_last,
)
from .training.trainer import TrainConfig, fit

TUNE_DIR = "tune"
TRIALS_FILE = "tune/trials.jsonl"
ROW_KEYS = ("hparams", "val", "epochs", "seconds", "error")
TUNE_FRACTION = 0.5
"""With ``retrain``: the share of the budget tuning may use; retraining gets the rest."""
BATCH_SIZES = (16, 32, 64, 128)


def suggest_hparams(trial: optuna.Trial, data: ImageData) -> dict[str, Any]:
    """The tuned training options, as ``TrainConfig`` fields."""
    n_train = len(data.train_y)
    sizes = [b for b in BATCH_SIZES if b <= max(BATCH_SIZES[0], n_train // 2)]
    hp: dict[str, Any] = {
        "lr": trial.suggest_float("lr", 1e-3, 0.3, log=True),
        "weight_decay": trial.suggest_float("weight_decay", 1e-6, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", sizes),
        "augment_pad": trial.suggest_int("augment_pad", 0, max(1, data.image_size[0] // 4)),
        "loss": trial.suggest_categorical("loss", ["ce", "focal"]),
        "class_weights": trial.suggest_categorical("class_weights", ["none", "auto"]),
    }
    if data.hflip or data.vflip:  # flips are only offered where they keep the label
        hp["augment_flips"] = trial.suggest_categorical("augment_flips", [True, False])
    hp["augment"] = hp["augment_pad"] > 0 or hp.get("augment_flips", False)
    return hp


def tune(run_dir: str | Path, *, budget: float | None = 600.0, max_trials: int | None = None,
         storage: str | None = None, trial_epochs: int = 9, min_epochs: int = 1,
         seed: int | None = None, device: str = "auto", retrain: bool = False
         ) -> dict[str, Any]:
    """Tune the training settings of the architecture a finished search found in ``run_dir``.

    ``budget`` (seconds; None: no limit, then ``max_trials`` is needed) covers tuning and,
    with ``retrain``, retraining and evaluation too. Returns a summary: best settings and
    value, trial counts, files written, and the tuned run's metrics when retrained.
    """
    if budget is None and max_trials is None:
        raise ConfigError("tuning needs an end: pass --budget or --max-trials")
    if max_trials is not None and max_trials < 1:
        raise ConfigError(f"max_trials must be >= 1, got {max_trials}")
    if not 1 <= min_epochs <= trial_epochs:
        raise ConfigError(f"tuning needs 1 <= min_epochs <= trial_epochs, got {min_epochs} "
                          f"and {trial_epochs}")
    run = RunDir.open(run_dir)
    cfg = RunConfig.from_dict(run.read_yaml("config.yaml"))
    arch = read_architecture(run)
    tuned_dir = run.file("tuned")
    if retrain and tuned_dir.exists() and any(tuned_dir.iterdir()):
        raise ConfigError(f"{tuned_dir} already holds a tuned run; move it away, or retrain "
                          f"with: autonas train --arch {run.file('architecture.json')} "
                          f"--config {run.file('tune/best.yaml')}")
    seed = cfg.seed if seed is None else seed
    clock = Budget(budget)
    deadline = clock.until_fraction(TUNE_FRACTION) if retrain else clock.deadline
    handler = run.attach_log()
    log = get_logger()
    try:
        dev = resolve_device(device if device != "auto" else cfg.device)
        configure_threads(cfg.threads)
        data = load_data(cfg)
        meta = run.read_json("architecture.json") if run.exists("architecture.json") else {}
        space = make_space(meta.get("space", cfg.space),
                           **meta.get("space_options", cfg.space_options))
        arch = space.validate(arch)
        spec = build_spec(cfg, data)
        metric = cfg.train.objective
        url = storage or default_storage(run.file(TUNE_DIR))
        store = make_storage(url)
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)
        pruner = optuna.pruners.HyperbandPruner(min_resource=min_epochs,
                                                max_resource=trial_epochs, reduction_factor=3)
        study_name = f"tune-{run.path.name}"
        with no_experimental_warnings():
            study = open_study(store, url, study_name, [METRICS[metric]], resume=True,
                               sampler=sampler, pruner=pruner)
        fail_interrupted(study, store)
        rows = sync_rows(run, TRIALS_FILE, study, ROW_KEYS)
        log.info("tune: %s of %s (%s), %d-epoch trials, %s", metric, space.describe(arch),
                 data.name, trial_epochs, masked(url))
        stopped = "completed"
        counted = sum(1 for r in rows if r.get("error") != INTERRUPTED)
        while max_trials is None or counted < max_trials:
            times = [r["seconds"] for r in rows if r["state"] == "COMPLETE"]
            if deadline.expired() or not deadline.fits(statistics.fmean(times) if times else 0):
                stopped = "budget"
                break
            with no_experimental_warnings():
                trial = study.ask()
                hparams = suggest_hparams(trial, data)
            frozen = _run_trial(study, trial, hparams, cfg, space, arch, spec, data, deadline,
                                dev, seed, trial_epochs, metric)
            row = trial_row(frozen, ROW_KEYS)
            run.append_jsonl(TRIALS_FILE, row)
            rows.append(row)
            counted += 1
            log.info("tune trial %d %s: %s %s, %.1f s%s", row["number"], row["state"], metric,
                     "n/a" if row["value"] is None else f"{row['value']:.4f}", row["seconds"],
                     f" ({row['error']})" if row["error"] else "")
            if row["state"] == "PRUNED" and str(row["error"]).startswith("budget"):
                stopped = "budget"
                break
        complete = [r for r in rows if r["state"] == "COMPLETE"]
        if not complete:
            raise ConfigError("no tuning trial completed (" + (
                "; ".join(sorted({str(r['error']) for r in rows})[:3]) if rows else
                "the budget ended first") + "); give it a larger --budget or fewer epochs "
                "per trial (--trial-epochs)")
        sign = 1.0 if METRICS[metric] == "maximize" else -1.0
        best = max(complete, key=lambda r: (sign * r["value"], -r["number"]))
        train = {**dataclasses.asdict(cfg.train), **best["hparams"]}
        run.write_yaml("tune/best.yaml", {"train": train})
        summary: dict[str, Any] = {
            "best": best["hparams"], "value": best["value"], "objective": metric,
            "best_trial": best["number"], "n_trials": len(rows), "stopped": stopped,
            "states": {s: sum(r["state"] == s for r in rows)
                       for s in ("COMPLETE", "PRUNED", "FAIL")},
            "storage": masked(url), "study_name": study_name,
            "best_yaml": str(run.file("tune/best.yaml")), "seconds": clock.elapsed(),
        }
        run.write_json("tune/result.json", summary)
        log.info("tune: best trial %d, %s %.4f with %s", best["number"], metric,
                 best["value"], best["hparams"])
    finally:
        detach_log(handler)
    if retrain:
        tuned_cfg = dataclasses.replace(cfg, train=TrainConfig.from_dict(train))
        tuned = RunDir.create(tuned_dir, name="tuned")
        left = clock.remaining()
        if left <= 1.0:
            raise ConfigError("tuning used the whole budget; retrain with: autonas train "
                              f"--arch {run.file('architecture.json')} --config "
                              f"{run.file('tune/best.yaml')}")
        result = execute(tuned_cfg, tuned, ("retrain", "evaluate"), arch=arch,
                         budget_seconds=None if math.isinf(left) else left, data=data)
        summary["tuned_run"] = str(tuned.path)
        summary["metrics"] = result.get("metrics")
        run.write_json("tune/result.json", summary)
    return summary


def _run_trial(study: optuna.Study, trial: optuna.Trial, hparams: dict[str, Any],
               cfg: RunConfig, space: Any, arch: dict[str, Any], spec: Any, data: ImageData,
               deadline: Any, device: torch.device, seed: int, epochs: int,
               metric: str) -> optuna.trial.FrozenTrial:
    started = time.monotonic()
    attrs: dict[str, Any] = {"hparams": hparams, "val": None, "epochs": 0, "error": None,
                             "value": None}
    state, value = TrialState.FAIL, None
    reporter = EpochReporter(trial, metric, {}, prune=True)
    model, oom = None, False
    try:
        train = TrainConfig.from_dict({**dataclasses.asdict(cfg.train), **hparams,
                                       "epochs": epochs})
        seed_everything(seed + trial.number)
        model = to_channels_last(build_network(space, arch, spec).to(device))
        result = fit(model, data, train, deadline=deadline, device=device,
                     seed=seed + trial.number, prefix=f"tune trial {trial.number}",
                     report=reporter, progress=False)
        attrs.update(epochs=result.epochs, val=result.best_metrics or None,
                     value=metric_value(metric, result.best_metrics, {}))
        if result.epochs < epochs:
            state = TrialState.PRUNED
            attrs["error"] = (f"budget: the deadline stopped it after {result.epochs} of "
                              f"{epochs} epochs")
        elif attrs["value"] is not None:
            state, value = TrialState.COMPLETE, attrs["value"]
    except optuna.TrialPruned as exc:
        state = TrialState.PRUNED
        attrs.update(error=f"pruner: {exc}", epochs=reporter.epochs, val=reporter.best_val,
                     value=reporter.best)
    except KeyboardInterrupt:
        attrs["error"] = INTERRUPTED
        _finish(study, trial, attrs, started, TrialState.FAIL, None)
        raise
    except Exception as exc:  # a setting that breaks training is a result, not a crash
        attrs.update(error=describe_error(exc), epochs=reporter.epochs, val=reporter.best_val)
        oom = is_out_of_memory(exc)
    model = None
    if oom:
        release_memory()
    return _finish(study, trial, attrs, started, state, value)


def _finish(study: optuna.Study, trial: optuna.Trial, attrs: dict[str, Any], started: float,
            state: TrialState, value: float | None) -> optuna.trial.FrozenTrial:
    attrs["seconds"] = time.monotonic() - started
    for key, v in jsonable(attrs).items():
        trial.set_user_attr(key, v)
    return study.tell(trial, value, state=state)
