"""search -> retrain -> evaluate, through one run folder and one budget.

Each phase records its state in ``status.json``; a resumed run skips finished phases and
continues the unfinished one from its last checkpoint. The CLI and the Python API both
call :func:`execute`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .data import ImageData, Normalizer, load_dataset
from .errors import ConfigError
from .fallback import search_honesty
from .run import RunDir, detach_log, get_logger
from .spaces import BuildSpec, SearchSpace, make_space
from .spaces.darts import DartsSpace
from .spaces.user_source import keep_source, source_fields, space_of_run
from .strategies import SearchContext, make_strategy
from .training.budget import Budget, Deadline
from .training.device import configure_threads, resolve_device, seed_everything, to_channels_last
from .training.loop import predict_proba
from .training.metrics import classification_metrics
from .training.profile import profile_model
from .training.trainer import fit

PHASES = ("search", "retrain", "evaluate")
EVAL_RESERVE = 0.03  # share of the budget kept for evaluation and writing results


class RunInterrupted(Exception):
    """Ctrl-C: the run folder holds everything up to the last finished epoch."""

    def __init__(self, run: RunDir, phase: str) -> None:
        super().__init__(f"{phase} interrupted")
        self.run = run
        self.phase = phase


def load_data(cfg: RunConfig) -> ImageData:
    if cfg.source:
        from .data.folder import load_source

        return load_source(cfg.source, seed=cfg.seed)
    return load_dataset(cfg.dataset, size=cfg.size)


def build_spec(cfg: RunConfig, data: ImageData) -> BuildSpec:
    return BuildSpec(in_channels=data.channels, num_classes=data.n_classes,
                     image_size=data.image_size[0], channels=cfg.network.channels,
                     layers=cfg.network.layers, auxiliary=cfg.network.auxiliary,
                     dropout=cfg.network.dropout)


def load_model(run: RunDir, device: torch.device | str = "cpu"
               ) -> tuple[torch.nn.Module, Normalizer, dict[str, Any]]:
    """Rebuild the retrained network of a run (weights loaded with ``weights_only=True``)."""
    meta = run.read_json("model.json")
    space = space_of_run(run, meta)  # a user space comes from the run's copy of its source
    model = space.build(meta["arch"], BuildSpec(**meta["build"]))
    state = torch.load(run.file("model.pt"), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model = to_channels_last(model.to(device)).eval()
    return model, Normalizer.from_dict(meta["normalizer"]), meta


def write_architecture(run: RunDir, cfg: RunConfig, space: SearchSpace, arch: dict[str, Any],
                       **extra: Any) -> None:
    """architecture.json for every space; genotype.json too for cell spaces."""
    run.write_json("architecture.json", {"space": cfg.space, "space_options": space.options(),
                                         **source_fields(run, cfg.space), "arch": arch, **extra})
    if isinstance(space, DartsSpace):
        run.write_json("genotype.json", {"genotype": arch, **extra})


def read_architecture(run: RunDir) -> dict[str, Any]:
    if run.exists("architecture.json"):
        return run.read_json("architecture.json")["arch"]
    if run.exists("genotype.json"):
        return run.read_json("genotype.json")["genotype"]
    raise ConfigError(f"{run.path} has no architecture.json: run the search first, or pass "
                      "--arch FILE")


# ----------------------------------------------------------------------------- phases


def search_phase(cfg: RunConfig, run: RunDir, data: ImageData, space: SearchSpace,
                 deadline: Deadline, device: torch.device, resume: bool) -> dict[str, Any]:
    log = get_logger()
    strategy = make_strategy(cfg.strategy, space, **cfg.search)
    log.info("search: %s on %s (%d train images), %s", cfg.strategy, data.name,
             len(data.train_y), _remaining(deadline))
    result = strategy.search(SearchContext(data=data, space=space, run=run, deadline=deadline,
                                           device=device, seed=cfg.seed, resume=resume,
                                           target=build_spec(cfg, data)))
    arch = space.validate(result.architecture)
    honesty = search_honesty(strategy, space, result)
    if "fallback" in honesty:
        arch = space.validate(honesty.pop("default_arch"))
    run.write_json("search/result.json", {
        "strategy": cfg.strategy, "stopped": result.stopped, "epochs": result.epochs,
        "architecture": arch, **result.extra, **honesty,
    })
    write_architecture(run, cfg, space, arch, strategy=cfg.strategy, seed=cfg.seed,
                       dataset=data.name,
                       **({"fallback": honesty["fallback"]} if "fallback" in honesty else {}))
    for key in ("fallback", "limited"):
        if key in honesty:
            run.set_phase("search", "running", **{key: honesty[key]})
            log.warning("search: %s", honesty[key])
    if "fallback" in honesty:
        log.info("search stopped (%s after %d epochs) without choosing; training the default "
                 "architecture: %s", result.stopped, result.epochs, space.describe(arch))
    else:
        log.info("search finished (%s after %d epochs): %s", result.stopped, result.epochs,
                 space.describe(arch))
    return arch


def retrain_phase(cfg: RunConfig, run: RunDir, data: ImageData, space: SearchSpace,
                  arch: dict[str, Any], deadline: Deadline, device: torch.device,
                  resume: bool) -> dict[str, Any]:
    log = get_logger()
    seed_everything(cfg.seed)
    spec = build_spec(cfg, data)
    model = to_channels_last(space.build(arch, spec).to(device))
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("retrain: %d parameters, %s", n_params, _remaining(deadline))
    normalizer = Normalizer.fit(data.train_x)
    overrides = space.train_overrides(arch)
    train_cfg = replace(cfg.train, **overrides)
    if overrides:
        log.info("retrain: the architecture's training options %s", overrides)
    result = fit(model, data, train_cfg, deadline=deadline, device=device, seed=cfg.seed, run=run,
                 prefix="retrain", normalizer=normalizer, resume=resume)
    if result.state_dict is None:
        raise ConfigError("the budget ended before the first training epoch finished; "
                          "give the run a larger --budget")
    run.save_state("model.pt", result.state_dict)
    info = {
        "space": cfg.space, "space_options": space.options(), "arch": arch,
        **source_fields(run, cfg.space),
        "build": asdict(spec), "normalizer": normalizer.to_dict(),
        "class_names": data.class_names, "task": data.task, "dataset": data.name,
        "params": n_params, "train_overrides": overrides, "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "planned_epochs": result.planned_epochs, "stopped": result.stopped,
    }
    run.write_json("model.json", info)
    log.info("retrain finished (%s): best epoch %d of %d, val auc %s acc %.3f", result.stopped,
             result.best_epoch + 1, result.epochs, result.best_metrics.get("auc"),
             result.best_metrics.get("accuracy", float("nan")))
    return info


def evaluate_phase(run: RunDir, data: ImageData, device: torch.device) -> dict[str, Any]:
    """Validation and test metrics, the predictions behind them (``predictions.npz``, for
    reports and bootstrap intervals), and the model's cost (params, FLOPs, latency)."""
    model, normalizer, meta = load_model(run, device)
    metrics: dict[str, Any] = {"params": meta["params"], "best_epoch": meta["best_epoch"]}
    predictions: dict[str, np.ndarray] = {}
    for split in ("val", "test"):
        x, y = data.split(split)
        start = time.perf_counter()
        probs = predict_proba(model, x, normalizer=normalizer, device=device)
        metrics[split] = classification_metrics(y.numpy(), probs, data.class_names)
        metrics[split]["seconds"] = time.perf_counter() - start
        predictions[f"{split}_probs"] = probs.astype(np.float32)
        predictions[f"{split}_labels"] = y.numpy().astype(np.int64)
    input_shape = (data.channels, *data.image_size)
    metrics["model"] = profile_model(model, input_shape)
    metrics["model"]["device"] = str(device)
    np.savez_compressed(run.file("predictions.npz"), **predictions)
    run.file("model_summary.txt").write_text(f"{model}\n")
    run.write_json("metrics.json", metrics)
    get_logger().info("test: accuracy %.4f, AUC %s, loss %.4f", metrics["test"]["accuracy"],
                      metrics["test"]["auc"], metrics["test"]["loss"])
    return metrics


# ----------------------------------------------------------------------------- driver


def execute(cfg: RunConfig, run: RunDir, phases: Sequence[str] = PHASES, *,
            resume: bool = False, arch: dict[str, Any] | None = None,
            budget_seconds: float | None = None, data: ImageData | None = None,
            space: SearchSpace | None = None) -> dict[str, Any]:
    """Run ``phases`` in order inside the budget; returns a summary of what was done.

    ``budget_seconds`` overrides the time this invocation may use (a resumed run by
    default gets what its original budget has left). ``data`` gives the dataset in memory
    instead of loading the one ``cfg`` names (the caller then owns reproducing it);
    ``space`` likewise gives the search space as an object instead of by name.
    """
    log = get_logger()
    handler = run.attach_log()
    mirror = None
    try:
        if cfg.tensorboard:
            from .report.tensorboard import start_mirror

            mirror = start_mirror(run.path)
        device = resolve_device(cfg.device)
        configure_threads(cfg.threads)
        seed_everything(cfg.seed)
        if space is None:
            saved = {"space": cfg.space, "space_options": cfg.space_options,
                     **source_fields(run, cfg.space)}
            space = space_of_run(run, saved) if resume else make_space(cfg.space,
                                                                       **cfg.space_options)
        keep_source(run, cfg.space)
        if not resume:
            run.write_yaml("config.yaml", _resolved(cfg, space))
        run.write_environment(cfg.seed, device)
        data = data if data is not None else load_data(cfg)
        if not resume or not run.exists("data.json"):
            run.write_json("data.json", data.summary())
        if not run.exists("samples.npz"):
            from .report.samples import write_samples

            write_samples(run.file("samples.npz"), data, seed=cfg.seed)
        todo = [p for p in phases if not (resume and run.phase_state(p) == "done")]
        for phase in todo:
            if resume and run.phase_state(phase) == "running":
                _count_killed_session(run, phase)
        if budget_seconds is not None:
            seconds = budget_seconds
        elif set(todo) <= {"evaluate"}:
            seconds = None  # evaluation alone is quick and must not be refused for lack of time
        else:
            seconds = _budget_left(cfg, run, resume)
        budget = Budget(seconds)
        reserve = (seconds or 0) * EVAL_RESERVE if "evaluate" in phases else 0.0
        summary: dict[str, Any] = {"run": str(run.path), "phases": {}}
        for phase in todo:
            if phase == "search":
                fraction = cfg.search_fraction if "retrain" in todo else 1.0
                deadline = budget.until_fraction(fraction).earlier(budget.minus(reserve))
            elif phase == "retrain":
                deadline = budget.minus(reserve)
            else:
                deadline = budget.deadline
            resuming = resume and run.phase_state(phase) is not None
            started = time.monotonic()
            run.set_phase(phase, "running", session_start=time.time())
            try:
                if phase == "search":
                    arch = search_phase(cfg, run, data, space, deadline, device, resuming)
                elif phase == "retrain":
                    arch = space.validate(arch if arch is not None else read_architecture(run))
                    summary["model"] = retrain_phase(cfg, run, data, space, arch, deadline,
                                                     device, resuming)
                else:
                    summary["metrics"] = evaluate_phase(run, data, device)
            except KeyboardInterrupt:
                _add_seconds(run, phase, "interrupted", started)
                raise RunInterrupted(run, phase) from None
            except BaseException:
                _add_seconds(run, phase, "failed", started)
                raise
            _add_seconds(run, phase, "done", started)
            summary["phases"][phase] = run.status()[phase]
        if "evaluate" in todo:
            _write_report(run)
        summary["seconds"] = budget.elapsed()
        summary["budget"] = seconds
        if run.exists("architecture.json") or run.exists("genotype.json"):
            summary["arch"] = read_architecture(run)
            summary["space"] = cfg.space
            summary["arch_text"] = space.describe(summary["arch"])
        if "metrics" not in summary and run.exists("metrics.json"):
            summary["metrics"] = run.read_json("metrics.json")
        log.info("run folder: %s (%.0f s)", run.path, summary["seconds"])
        return summary
    finally:
        if mirror is not None:
            mirror.close()
        detach_log(handler)


def _write_report(run: RunDir) -> None:
    """report.html in the run folder; a report that cannot be written never fails the run."""
    try:
        from .report import write_report

        get_logger().info("report: %s", write_report(run.path))
    except Exception as exc:
        get_logger().warning("report.html not written (%s: %s); retry with: autonas report %s",
                             type(exc).__name__, exc, run.path)


def _resolved(cfg: RunConfig, space: SearchSpace) -> dict[str, Any]:
    """The config with every strategy option spelled out, so a run can be repeated."""
    d = cfg.to_dict()
    d["search"] = make_strategy(cfg.strategy, space, **cfg.search).options()
    return d


def _budget_left(cfg: RunConfig, run: RunDir, resume: bool) -> float | None:
    if cfg.budget is None:
        return None
    if not resume:
        return cfg.budget
    used = sum(p.get("seconds", 0.0) for p in run.status().values())
    left = cfg.budget - used
    if left <= 1.0:
        raise ConfigError(
            f"this run has used its {cfg.budget:.0f} s budget; pass --budget to give the "
            "resumed run more time"
        )
    return left


def _add_seconds(run: RunDir, phase: str, state: str, started: float) -> None:
    previous = run.status().get(phase, {}).get("seconds", 0.0)
    run.set_phase(phase, state, seconds=previous + time.monotonic() - started)


def _count_killed_session(run: RunDir, phase: str) -> None:
    """A phase left 'running' was killed: charge its time up to its last checkpoint."""
    entry = run.status().get(phase, {})
    start = entry.get("session_start")
    files = [p for p in run.path.rglob("*") if p.is_file()]
    if start is None or not files:
        return
    last = max(p.stat().st_mtime for p in files)
    run.set_phase(phase, "killed", seconds=entry.get("seconds", 0.0) + max(0.0, last - start))


def _remaining(deadline: Deadline) -> str:
    left = deadline.remaining()
    return "no time limit" if left == float("inf") else f"{left:.0f} s available"
