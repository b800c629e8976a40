"""search -> retrain -> ensemble -> evaluate, through one run folder and one budget.

Each phase records its state in ``status.json``; a resumed run skips finished phases and
continues the unfinished one from its last checkpoint. The CLI and the Python API both
call :func:`execute`.

In a data-parallel run (torchrun, or ``--ddp N``: one process per rank, the process group
joined before :func:`execute`), every rank runs the search and the retraining on its
shard of each batch; only rank 0 writes the run folder (through its :class:`Recorder`),
evaluates and writes the report.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import RunConfig
from .data import ImageData, Normalizer, load_dataset
from .ensemble import ensemble_phase
from .errors import ConfigError
from .fallback import plural, search_honesty
from .recorder import Recorder
from .result_checks import result_warnings
from .run import LOGGER_NAME, RunDir, detach_log, get_logger
from .spaces import BuildSpec, SearchSpace, make_space
from .spaces.base import build_network
from .spaces.darts import DartsSpace
from .spaces.ensemble import FLIPS, Ensemble, FlipAverage, build_final, unwrap, with_tta
from .spaces.user_source import keep_source, source_fields, space_of_run
from .strategies import SearchContext, available_strategies, make_strategy
from .training import distributed
from .training.budget import Budget, Deadline
from .training.device import configure_threads, resolve_device, seed_everything, to_channels_last
from .training.loop import predict_proba
from .training.metrics import choose_thresholds, classification_metrics
from .training.profile import profile_model
from .training.reserve import REPORT_SECONDS, finish_seconds
from .training.speed import MachineSpeed
from .training.tasks import head_for
from .training.trainer import TrainConfig, fit, train_augment

PHASES = ("search", "retrain", "ensemble", "evaluate")


class RunInterrupted(Exception):
    """Ctrl-C: the run folder holds everything up to the last finished epoch."""

    def __init__(self, run: RunDir, phase: str) -> None:
        super().__init__(f"{phase} interrupted")
        self.run = run
        self.phase = phase


def load_data(cfg: RunConfig) -> ImageData:
    if cfg.source:
        from .data.folder import load_source

        source = dict(cfg.source)
        if cfg.val_fraction is not None:
            source["val_fraction"] = cfg.val_fraction
        return load_source(source, seed=cfg.seed)
    return load_dataset(cfg.dataset, size=cfg.size, val_fraction=cfg.val_fraction)


def build_spec(cfg: RunConfig, data: ImageData) -> BuildSpec:
    return BuildSpec(in_channels=data.channels, num_classes=data.n_classes,
                     image_size=data.image_size[0], channels=cfg.network.channels,
                     layers=cfg.network.layers, auxiliary=cfg.network.auxiliary,
                     dropout=cfg.network.dropout,
                     head=head_for(data.task, cfg.train.is_ordinal))


def load_model(run: RunDir, device: torch.device | str = "cpu"
               ) -> tuple[torch.nn.Module, Normalizer, dict[str, Any]]:
    """Rebuild the final model of a run: the retrained network or the ensemble of them,
    averaged over its test-time flips (weights loaded with ``weights_only=True``)."""
    meta = run.read_json("model.json")
    space = space_of_run(run, meta)  # a user space comes from the run's copy of its source
    model = build_final(space, meta)
    state = torch.load(run.file("model.pt"), map_location="cpu", weights_only=True)
    unwrap(model).load_state_dict(state)
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


AUTO_SEARCH_SIDE = 64
"""``search_size: auto`` on CPU: larger images are searched at this side."""


def search_side(cfg: RunConfig, data: ImageData, device: torch.device) -> int:
    """The image side the search works at (see ``RunConfig.search_size``)."""
    side = data.image_size[0]
    if data.image_size[0] != data.image_size[1]:
        return side  # non-square images are searched as they are
    if cfg.search_size == "auto":
        return min(side, AUTO_SEARCH_SIDE) if device.type == "cpu" else side
    if not cfg.search_size:
        return side
    return min(side, int(cfg.search_size))


def search_phase(cfg: RunConfig, run: RunDir, data: ImageData, space: SearchSpace,
                 deadline: Deadline, device: torch.device, resume: bool,
                 recorder: Recorder | None = None) -> dict[str, Any]:
    log = get_logger()
    recorder = recorder or Recorder(run)
    side = search_side(cfg, data, device)
    if side != data.image_size[0]:
        log.info("search: at %d px (the data is %d px; retraining uses the full size)",
                 side, data.image_size[0])
        data = data.resized(side)
    strategy = make_strategy(cfg.strategy, space, **cfg.search)
    log.info("search: %s on %s (%d train images), %s", cfg.strategy, data.name,
             len(data.train_y), _remaining(deadline))
    result = strategy.search(SearchContext(data=data, space=space, run=run, deadline=deadline,
                                           device=device, seed=cfg.seed, resume=resume,
                                           target=build_spec(cfg, data),
                                           config=_resolved(cfg, space), recorder=recorder))
    arch = space.validate(result.architecture)
    honesty = search_honesty(strategy, space, result)
    if "fallback" in honesty:
        arch = space.validate(honesty.pop("default_arch"))
    # rank 0's architecture is the run's (a time-bound selection may differ across ranks)
    arch = distributed.broadcast_value(arch)
    if not recorder.is_writer:
        return arch
    run.write_json("search/result.json", {
        "strategy": cfg.strategy, "stopped": result.stopped, "epochs": result.epochs,
        "architecture": arch, "image_size": side, **result.extra, **honesty,
    })
    write_architecture(run, cfg, space, arch, strategy=cfg.strategy, seed=cfg.seed,
                       dataset=data.name,
                       **({"fallback": honesty["fallback"]} if "fallback" in honesty else {}))
    for key in ("fallback", "limited"):
        if key in honesty:
            run.set_phase("search", "running", **{key: honesty[key]})
            log.warning("search: %s", honesty[key])
    steps = plural(result.epochs, strategy.step)
    if "fallback" in honesty:
        log.info("search stopped (%s after %s) without choosing; training the default "
                 "architecture: %s", result.stopped, steps, space.describe(arch))
    else:
        log.info("search finished (%s after %s): %s", result.stopped, steps,
                 space.describe(arch))
    return arch


def tta_flips(cfg: RunConfig, train_cfg: TrainConfig, data: ImageData) -> list[str]:
    """The flips the final model averages over (``RunConfig.tta``): those the retraining's
    augmentation uses, which the data's flip policy allows."""
    if not (cfg.tta and train_cfg.augment):
        return []
    augment = train_augment(train_cfg, data)
    return [flip for flip in FLIPS if getattr(augment, flip)]


def retrain_phase(cfg: RunConfig, run: RunDir, data: ImageData, space: SearchSpace,
                  arch: dict[str, Any], deadline: Deadline | Callable[[nn.Module], Deadline],
                  device: torch.device, resume: bool,
                  speed: MachineSpeed | None = None,
                  recorder: Recorder | None = None, on_epoch: Any = None) -> dict[str, Any]:
    """``deadline`` may be a function of the built network (to keep the time its
    evaluation will take); ``speed`` holds the machine's speed at the run's start;
    ``recorder`` writes the rows and checkpoints (rank 0's only, in a data-parallel run);
    ``on_epoch(epoch, record)`` is called after every epoch (see ``fit``)."""
    log = get_logger()
    recorder = recorder or Recorder(run)
    seed_everything(cfg.seed)
    spec = build_spec(cfg, data)
    model = to_channels_last(build_network(space, arch, spec).to(device))
    overrides = space.train_overrides(arch)
    train_cfg = replace(cfg.train, **overrides)
    flips = tta_flips(cfg, train_cfg, data)
    if callable(deadline):  # probed as it will be evaluated: over its test-time flips
        deadline = deadline(FlipAverage(model, flips, spec.head) if flips else model)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("retrain: %d parameters, %s", n_params, _remaining(deadline))
    normalizer = Normalizer.fit(data.train_x)
    if overrides:
        log.info("retrain: the architecture's training options %s", overrides)
    result = fit(model, data, train_cfg, deadline=deadline, device=device, seed=cfg.seed, run=run,
                 prefix="retrain", normalizer=normalizer, resume=resume,
                 machine=speed.slowdown if speed is not None else None, recorder=recorder,
                 on_epoch=on_epoch)
    if result.state_dict is None:
        raise ConfigError("the budget ended before the first training epoch finished; "
                          "give the run a larger --budget")
    recorder.checkpoint("model.pt", result.state_dict)
    info = {
        "space": cfg.space, "space_options": space.options(), "arch": arch,
        **source_fields(run, cfg.space),
        "build": asdict(spec), "normalizer": normalizer.to_dict(),
        "class_names": data.class_names, "task": data.task, "dataset": data.name,
        "params": n_params, "train_overrides": overrides, "tta": flips,
        "best_epoch": result.best_epoch,
        "epochs": result.epochs,
        "planned_epochs": result.planned_epochs, "stopped": result.stopped,
        "first_plan": result.first_plan, "slowdown": result.slowdown,
        "replans": result.replans, "start_slowdown": result.start_slowdown,
    }
    recorder.write_json("model.json", info)
    log.info("retrain finished (%s): best epoch %d of %d, val auc %s acc %.3f", result.stopped,
             result.best_epoch + 1, result.epochs, result.best_metrics.get("auc"),
             result.best_metrics.get("accuracy", float("nan")))
    return info


def ensemble_share(cfg: RunConfig, todo: Sequence[str]) -> int:
    """Networks the retraining's time is shared among: a given ``ensemble`` number when the
    ensemble phase follows and the epochs are left to the budget (else 1)."""
    if "ensemble" not in todo or cfg.ensemble == "auto" or cfg.train.epochs is not None:
        return 1
    return int(cfg.ensemble)


def evaluate_phase(run: RunDir, data: ImageData, device: torch.device) -> dict[str, Any]:
    """Validation and test metrics, the predictions behind them (``predictions.npz``, for
    reports and bootstrap intervals), and the model's cost (params, FLOPs, latency)."""
    model, normalizer, meta = load_model(run, device)
    head = meta["build"].get("head", "softmax")
    metrics: dict[str, Any] = {"params": meta["params"], "best_epoch": meta["best_epoch"]}
    predictions: dict[str, np.ndarray] = {}
    thresholds = None
    for split in ("val", "test"):
        x, y = data.split(split)
        start = time.perf_counter()
        probs = predict_proba(model, x, normalizer=normalizer, device=device, head=head)
        if head == "sigmoid" and split == "val":
            # Chosen on validation, applied unchanged to test and to every later prediction.
            thresholds = choose_thresholds(y.numpy(), probs)
            run.write_json("model.json", {**meta, "thresholds": thresholds})
        metrics[split] = classification_metrics(y.numpy(), probs, data.class_names,
                                                thresholds=thresholds, ordinal=head == "coral")
        metrics[split]["seconds"] = time.perf_counter() - start
        predictions[f"{split}_probs"] = probs.astype(np.float32)
        predictions[f"{split}_labels"] = y.numpy().astype(np.int64)
    if isinstance(unwrap(model), Ensemble):
        metrics["members"] = member_metrics(unwrap(model), {**meta, "thresholds": thresholds},
                                            data, normalizer, device, head)
    input_shape = (data.channels, *data.image_size)
    metrics["model"] = profile_model(model, input_shape)
    metrics["model"]["device"] = str(device)
    np.savez_compressed(run.file("predictions.npz"), **predictions)
    run.file("model_summary.txt").write_text(f"{model}\n")
    metrics["warnings"] = result_warnings(meta, predictions)
    run.write_json("metrics.json", metrics)
    for warning in metrics["warnings"]:
        get_logger().warning("warning (%s): %s", warning["code"], warning["message"])
    get_logger().info("test: accuracy %.4f, AUC %s, loss %.4f", metrics["test"]["accuracy"],
                      metrics["test"]["auc"], metrics["test"]["loss"])
    return metrics


def member_metrics(model: Ensemble, meta: dict[str, Any], data: ImageData,
                   normalizer: Normalizer, device: torch.device, head: str
                   ) -> list[dict[str, Any]]:
    """Each ensemble member's own validation and test accuracy and AUC, with the final
    model's test-time flips (what averaging them gained is read against these)."""
    out = []
    for network, info in zip(model.members, meta["ensemble"], strict=True):
        member = with_tta(network, meta)
        row: dict[str, Any] = {"trial": info.get("trial"), "seed": info.get("seed"),
                               "params": info.get("params")}
        for split in ("val", "test"):
            x, y = data.split(split)
            probs = predict_proba(member, x, normalizer=normalizer, device=device, head=head)
            found = classification_metrics(y.numpy(), probs, data.class_names,
                                           thresholds=meta.get("thresholds"),
                                           ordinal=head == "coral")
            row[split] = {k: found.get(k) for k in ("accuracy", "auc")}
        out.append(row)
    return out


QUICK_RESAMPLES = 200
"""Bootstrap resamples of a report written when the budget is nearly spent."""


# ----------------------------------------------------------------------------- driver


def execute(cfg: RunConfig, run: RunDir, phases: Sequence[str] = PHASES, *,
            resume: bool = False, arch: dict[str, Any] | None = None,
            budget_seconds: float | None = None, data: ImageData | None = None,
            space: SearchSpace | None = None, clock_start: float | None = None,
            on_epoch: Any = None) -> dict[str, Any]:
    """Run ``phases`` in order inside the budget; returns a summary of what was done.

    The budget runs from ``clock_start`` (a ``time.monotonic()`` value; the CLI passes the
    process's start) to the written report; by default from this call.
    ``on_epoch(epoch, record)`` is called after every retraining epoch (see ``fit``).

    ``budget_seconds`` overrides the time this invocation may use (a resumed run by
    default gets what its original budget has left). ``data`` gives the dataset in memory
    instead of loading the one ``cfg`` names (the caller then owns reproducing it);
    ``space`` likewise gives the search space as an object instead of by name.
    """
    log = get_logger()
    clock = time.monotonic() if clock_start is None else clock_start
    writer = distributed.is_writer()
    recorder = Recorder(run, is_writer=writer)
    handler = run.attach_log() if writer else None
    mirror = None
    try:
        if distributed.is_distributed():
            check_data_parallel(cfg, phases, space, distributed.world_size())
        # Rank 0 reads and updates the run's state; every rank follows its plan.
        todo, states, seconds = rank0_value(lambda: _plan(cfg, run, phases, resume,
                                                          budget_seconds))
        budget = Budget(seconds, start=clock)
        if cfg.tensorboard and writer:
            from .report.tensorboard import start_mirror

            mirror = start_mirror(run.path)
        device = resolve_device(cfg.device)
        if distributed.is_distributed() and device.type == "cuda":
            device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU
        configure_threads(cfg.threads)
        speed = MachineSpeed() if budget.seconds is not None else None
        seed_everything(cfg.seed)
        if space is None:
            saved = {"space": cfg.space, "space_options": cfg.space_options,
                     **source_fields(run, cfg.space)}
            space = space_of_run(run, saved) if resume else make_space(cfg.space,
                                                                       **cfg.space_options)
        data = data if data is not None else load_data(cfg)
        if writer:
            _record_session(cfg, run, space, device, data, resume)
        evaluating = "evaluate" in todo
        loaded = data

        shared = ensemble_share(cfg, todo)

        def retrain_deadline(model: nn.Module) -> Deadline:
            if not evaluating or budget.seconds is None:
                end = budget.deadline
            else:
                keep = finish_seconds(model, loaded, device)
                log.info("retrain: keeping %.1f s for evaluation and the report", keep)
                end = budget.minus(keep)
            if shared > 1 and end.at is not None:
                log.info("retrain: the first of %d networks, with 1/%d of the time left",
                         shared, shared)
                end = Deadline.after(end.remaining() / shared)
            return end

        summary: dict[str, Any] = {"run": str(run.path), "phases": {},
                                   "rank": distributed.rank()}
        for phase in todo:
            deadline: Deadline | Callable[[nn.Module], Deadline]
            if phase == "search":
                fraction = cfg.search_fraction if "retrain" in todo else 1.0
                keep = REPORT_SECONDS if evaluating else 0.0
                deadline = budget.until_fraction(fraction).earlier(budget.minus(keep))
            elif phase == "retrain":
                deadline = retrain_deadline
            else:
                deadline = budget.deadline
            if phase == "evaluate" and not writer:
                break  # evaluation and the report are rank 0's
            resuming = resume and states[phase] is not None
            started = time.monotonic()
            if writer:
                run.set_phase(phase, "running", session_start=time.time())
            try:
                if phase == "search":
                    arch = search_phase(cfg, run, data, space, deadline, device, resuming,
                                        recorder)
                elif phase == "ensemble":
                    summary["model"] = ensemble_phase(
                        cfg, run, data, space, build_spec(cfg, data), deadline, device,
                        resuming, recorder, evaluating=evaluating, agree=rank0_value)
                elif phase == "retrain":
                    if arch is None:
                        arch = rank0_value(lambda: read_architecture(run))
                    arch = space.validate(arch)
                    summary["model"] = retrain_phase(cfg, run, data, space, arch, deadline,
                                                     device, resuming, speed, recorder,
                                                     on_epoch=on_epoch)
                else:
                    summary["metrics"] = evaluate_phase(run, data, device)
            except KeyboardInterrupt:
                if writer:
                    _add_seconds(run, phase, "interrupted", started)
                raise RunInterrupted(run, phase) from None
            except BaseException:
                if writer:
                    _add_seconds(run, phase, "failed", started)
                raise
            if not writer:
                continue
            _add_seconds(run, phase, "done", started)
            summary["phases"][phase] = run.status()[phase]
        if not writer:
            return summary
        if "evaluate" in todo:
            _write_report(run, quick=budget.remaining() < REPORT_SECONDS)
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
        if handler is not None:
            detach_log(handler)


# ----------------------------------------------------------------------------- data-parallel


def execute_data_parallel(cfg: RunConfig, run: RunDir, phases: Sequence[str], nprocs: int,
                          **options: Any) -> dict[str, Any]:
    """:func:`execute` on ``nprocs`` local processes joined in one process group (gloo on
    CPU, NCCL on GPUs); returns rank 0's summary. ``options`` are :func:`execute`'s."""
    import multiprocessing

    distributed.check_world_size(nprocs)
    if nprocs == 1:
        return execute(cfg, run, phases, **options)
    check_data_parallel(cfg, phases, processes=nprocs)
    threads = cfg.threads or int(os.environ.get("AUTONAS_THREADS", 0)) or max(
        1, (os.cpu_count() or 1) // nprocs)
    results = multiprocessing.get_context("spawn").SimpleQueue()
    try:
        distributed.launch_local(_rank_main, nprocs, (cfg, str(run.path), tuple(phases),
                                                      options, results), threads=threads)
    except KeyboardInterrupt:
        raise RunInterrupted(run, _mark_interrupted(run)) from None
    except Exception:
        outcome = results.get() if not results.empty() else None
        if outcome is not None and outcome[0] == "error":
            raise ConfigError(outcome[1]) from None
        if outcome is not None and outcome[0] == "interrupted":
            raise RunInterrupted(run, outcome[1]) from None
        raise
    outcome = results.get() if not results.empty() else ("error", "rank 0 returned nothing")
    if outcome[0] != "ok":
        raise ConfigError(outcome[1])
    return outcome[1]


def _mark_interrupted(run: RunDir) -> str:
    """The phase a Ctrl-C stopped (marked ``interrupted``, its time charged up to its last
    checkpoint as for a killed session)."""
    for phase, entry in run.status().items():
        if entry.get("state") in ("running", "interrupted", "failed"):
            if entry.get("state") == "running":
                _count_killed_session(run, phase)
            run.set_phase(phase, "interrupted")
            return phase
    return "run"


def _rank_main(rank: int, cfg: RunConfig, path: str, phases: tuple[str, ...],
               options: dict[str, Any], results: Any) -> None:
    """One rank of :func:`execute_data_parallel` (a spawned process)."""
    from .errors import AutonasError
    from .ui import setup_console_logging

    if rank == 0:
        setup_console_logging()
    with joined_group(cfg):
        try:
            summary = execute(cfg, RunDir(path), phases, **options)
        except RunInterrupted as stop:
            if rank == 0:
                results.put(("interrupted", stop.phase))
            raise SystemExit(130) from None
        except AutonasError as exc:
            results.put(("error", str(exc)))
            raise SystemExit(2) from None
        if rank == 0:
            results.put(("ok", summary))


@contextmanager
def joined_group(cfg: RunConfig) -> Iterator[None]:
    """Join the process group the environment describes (torchrun, ``--ddp``) for the
    block, if there is one; ranks other than 0 log warnings only."""
    if distributed.env_world_size() <= 1 or distributed.is_distributed():
        yield
        return
    distributed.init_from_env(resolve_device(cfg.device))
    if not distributed.is_writer():
        logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    try:
        yield
    finally:
        distributed.teardown()


def _plan(cfg: RunConfig, run: RunDir, phases: Sequence[str], resume: bool,
          budget_seconds: float | None) -> tuple[list[str], dict[str, str | None], float | None]:
    """The phases to run, their states before this session, and the seconds it may use
    (a killed session's time is charged first, before anything in the folder changes)."""
    states = {p: run.phase_state(p) for p in PHASES}
    todo = [p for p in phases if not (resume and states[p] == "done")]
    for phase in todo:
        if resume and states[phase] == "running":
            _count_killed_session(run, phase)
    if budget_seconds is not None:
        seconds = budget_seconds
    elif set(todo) <= {"evaluate"}:
        seconds = None  # evaluation alone is quick and must not be refused for lack of time
    else:
        seconds = _budget_left(cfg, run, resume)
    return todo, states, seconds


def _record_session(cfg: RunConfig, run: RunDir, space: SearchSpace, device: torch.device,
                    data: ImageData, resume: bool) -> None:
    """The session's config, environment, data summary and samples in the run folder."""
    keep_source(run, cfg.space)
    if not resume:
        run.write_yaml("config.yaml", _resolved(cfg, space))
    run.write_environment(cfg.seed, device)
    if not resume or not run.exists("data.json"):
        run.write_json("data.json", data.summary())
    if not run.exists("samples.npz"):
        from .report.samples import write_samples

        write_samples(run.file("samples.npz"), data, seed=cfg.seed)


def rank0_value(compute: Any) -> Any:
    """``compute()`` on rank 0, its result (or its error) on every rank."""
    if not distributed.is_distributed():
        return compute()
    outcome: tuple[str, Any] = ("ok", None)
    if distributed.is_writer():
        try:
            outcome = ("ok", compute())
        except ConfigError as exc:
            outcome = ("error", str(exc))
    kind, value = distributed.broadcast_value(outcome)
    if kind == "error":
        raise ConfigError(value)
    return value


def check_data_parallel(cfg: RunConfig, phases: Sequence[str],
                        space: SearchSpace | None = None, processes: int = 2) -> None:
    """Refuse, before anything runs, a search that cannot run on several processes, and
    batches too small to give every process a share."""
    if "retrain" in phases and cfg.train.batch_size < processes:
        raise ConfigError(f"train.batch_size {cfg.train.batch_size} cannot be split across "
                          f"{processes} processes; use at least {processes}")
    if "search" not in phases:
        return
    space = space if space is not None else make_space(cfg.space, **cfg.space_options)
    strategy = make_strategy(cfg.strategy, space, **cfg.search)
    if getattr(strategy, "data_parallel", False):
        batch = getattr(strategy, "batch_size", processes)
        if batch < processes:
            raise ConfigError(f"search.batch_size {batch} cannot be split across {processes} "
                              f"processes; use at least {processes}")
        return
    able = []
    for name in available_strategies():
        try:
            if make_strategy(name, space).data_parallel:
                able.append(name)
        except ConfigError:
            continue
    raise ConfigError(
        f"strategy {cfg.strategy!r} on the {cfg.space!r} space cannot run data-parallel "
        f"(--ddp / torchrun); strategies that can: {', '.join(able) or 'none for this space'}"
        "; or run it in one process")


def _write_report(run: RunDir, quick: bool = False) -> None:
    """report.html in the run folder; a report that cannot be written never fails the run.
    ``quick`` (the budget is nearly spent): fewer bootstrap resamples."""
    try:
        from .report import write_report

        n_resamples = QUICK_RESAMPLES if quick else 1000
        get_logger().info("report: %s", write_report(run.path, n_resamples=n_resamples))
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
    """A phase left 'running' was killed: bill the time it surely ran, from its session's
    start to its last heartbeat (written at every checkpoint; see ``RunDir.heartbeat``)."""
    entry = run.status().get(phase, {})
    start = entry.get("session_start")
    if start is None:
        return
    last = entry.get("heartbeat", start)
    ran = max(0.0, float(last) - float(start))
    get_logger().info("%s was killed after %.0f s of work (to its last checkpoint); billing "
                      "that to the budget", phase, ran)
    run.set_phase(phase, "killed", seconds=entry.get("seconds", 0.0) + ran)


def _remaining(deadline: Deadline) -> str:
    left = deadline.remaining()
    return "no time limit" if left == float("inf") else f"{left:.0f} s available"
