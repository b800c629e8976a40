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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import torch

from .config import RunConfig
from .data import ImageData
from .errors import ConfigError
from .pipeline import build_spec, execute, load_data, read_architecture
from .recorder import Recorder
from .run import RunDir, detach_log, get_logger
from .spaces import make_space
from .training.budget import Budget
from .training.device import (
    configure_threads,
    resolve_device,
    seed_everything,
    to_channels_last,
)
from .training.trainer import TrainConfig, fit
from .trials.runner import TrialJob, TrialRunner
from .trials.study import (
    METRICS,
    default_storage,
    exclusive_sqlite,
    make_storage,
    masked,
    no_experimental_warnings,
    open_study,
    single_process,
)

TUNE_DIR = "tune"
TRIALS_FILE = "tune/trials.jsonl"
ROW_KEYS = ("hparams", "val", "epochs", "seconds", "error", "seed", "proposal")
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
        pruner = optuna.pruners.HyperbandPruner(min_resource=min_epochs,
                                                max_resource=trial_epochs, reduction_factor=3)
        study_name = f"tune-{run.path.name}"
        plan = HparamPlan(data, metric, seed)
        with no_experimental_warnings():
            study = open_study(store, url, study_name, [METRICS[metric]], resume=True,
                               sampler=plan.make_sampler(seed), pruner=pruner)
        evaluate = train_hparams(cfg, space, arch, spec, data, dev, trial_epochs)
        runner = TrialRunner(study, store, plan, evaluate, recorder=Recorder(run),
                             kind=TRIALS_FILE.removesuffix(".jsonl"), deadline=deadline,
                             seed=seed, max_trials=max_trials, alone=single_process(url),
                             dedup=False, prune=True, log_prefix="tune trial")
        log.info("tune: %s of %s (%s), %d-epoch trials, %s", metric, space.describe(arch),
                 data.name, trial_epochs, masked(url))
        with exclusive_sqlite(url):
            stopped = runner.work()
        rows = runner.rows
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


class HparamPlan:
    """Tuning as a trial plan: TPE picks the training settings (no dedup: settings are
    continuous, and the same ones trained again measure the noise)."""

    subject = "hparams"
    keys = ROW_KEYS
    drawn_by_sampler = True

    def __init__(self, data: ImageData, metric: str, seed: int) -> None:
        self.data, self.metrics = data, [metric]

    def make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5, multivariate=True)

    def propose(self, trial: optuna.Trial | None, rng: Any, history: list[dict[str, Any]]
                ) -> dict[str, Any]:
        assert trial is not None
        with no_experimental_warnings():
            return suggest_hparams(trial, self.data)

    def fix(self, trial: optuna.Trial, subject: dict[str, Any]) -> None:
        """Settings always come from the sampler."""

    def key(self, subject: dict[str, Any]) -> None:
        return None

    def exhausted(self, tried: int) -> None:
        return None

    def observe(self, row: dict[str, Any]) -> None:
        """TPE reads the study itself."""


def train_hparams(cfg: RunConfig, space: Any, arch: dict[str, Any], spec: Any,
                  data: ImageData, device: torch.device, epochs: int
                  ) -> Callable[[TrialJob], dict[str, Any]]:
    """A tuning trial's evaluation: the fixed architecture trained with the proposed
    settings."""

    def evaluate(job: TrialJob) -> dict[str, Any]:
        train = TrainConfig.from_dict({**dataclasses.asdict(cfg.train), **job.subject,
                                       "epochs": epochs})
        seed_everything(job.seed)
        model = to_channels_last(space.build(arch, spec).to(device))
        result = fit(model, data, train, deadline=job.deadline, device=device,
                     seed=job.seed, prefix=f"tune trial {job.number}",
                     report=job.reporter, progress=False)
        row: dict[str, Any] = {"epochs": result.epochs, "val": result.best_metrics or None}
        if result.epochs < epochs:
            row.update(state="PRUNED", value=job.reporter.best,
                       error=f"budget: the deadline stopped it after {result.epochs} of "
                             f"{epochs} epochs")
        return row

    return evaluate
