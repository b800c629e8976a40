"""Training a fixed network: retraining the searched architecture, or one trial of a
multi-trial search. Model selection by a validation metric, checkpoint/resume, budget.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from torch import nn

from ..data import Augment, BatchLoader, ImageData, Normalizer
from ..errors import ConfigError
from ..recorder import Recorder, as_recorder
from ..run import RunDir, get_logger
from . import distributed
from .budget import Deadline, StepTimer
from .loop import BACKWARD_FACTOR, predict_proba, probe_forward_seconds, train_epoch
from .losses import Mixup, make_loss, resolve_class_weights, resolve_label_weights
from .metrics import OBJECTIVES, classification_metrics, epoch_score, selection_objective
from .plan import MACHINE_SLOWER, PLANNING_EPOCHS, EpochPlan
from .rng import restore_rng_state, rng_state
from .tasks import head_for


@dataclass
class TrainConfig:
    """How a fixed network is trained (YAML section ``train``)."""

    epochs: int | None = None
    """None: as many as the budget allows, planned after the first epoch is timed."""
    max_epochs: int = 300
    batch_size: int = 64
    lr: float = 0.05
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 1e-3
    grad_clip: float = 5.0
    drop_path: float = 0.1
    aux_weight: float = 0.4
    label_smoothing: float = 0.1
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weights: str | list[float] | None = None
    augment: bool = True
    augment_pad: int | None = None
    """Random-crop padding in pixels (0 = no crop); None = the data's default (1/8 side)."""
    augment_flips: bool = True
    """Random flips where the data allows them (``ImageData.hflip`` / ``vflip``)."""
    objective: str = "auc"
    ema_decay: float = 0.0
    """Exponential moving average of the weights (0 = off); the average is what is evaluated."""
    mixup: float = 0.0
    """mixup's Beta(alpha, alpha) parameter (0 = off), e.g. 0.2."""
    augment_scale: float = 1.0
    """Scales the random-crop padding (the data's default or ``augment_pad``): 0 = no crop,
    2 = twice the shift; searched jointly with the architecture by the ``macro`` space."""
    ordinal: bool = False
    """Ordinal grades (e.g. RetinaMNIST): a CORAL head (K-1 cumulative logits with shared
    weights and ordered biases) and its loss instead of a softmax; also ``loss: coral``."""

    @property
    def is_ordinal(self) -> bool:
        return self.ordinal or self.loss == "coral"

    def __post_init__(self) -> None:
        if self.objective not in OBJECTIVES:
            raise ConfigError(
                f"objective must be one of {sorted(OBJECTIVES)}, got {self.objective!r}")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.augment_pad is not None and self.augment_pad < 0:
            raise ConfigError(f"augment_pad must be >= 0 pixels, got {self.augment_pad}")
        from .losses import LOSSES

        if self.loss not in LOSSES:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.mixup < 0:
            raise ConfigError(f"mixup must be >= 0 (0 = off), got {self.mixup}")
        if self.augment_scale < 0:
            raise ConfigError(f"augment_scale must be >= 0, got {self.augment_scale}")

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> TrainConfig:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown train option(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class FitResult:
    best_metrics: dict[str, Any]
    best_epoch: int
    epochs: int
    planned_epochs: int
    stopped: str
    history: list[dict[str, Any]] = field(default_factory=list)
    state_dict: dict[str, torch.Tensor] | None = None
    first_plan: int | None = None
    """Epochs planned once the first epochs were timed (None: a fixed number of epochs)."""
    slowdown: float | None = None
    """Seconds per epoch at the end over those at the start (2.0 = ran twice as slow)."""
    replans: list[dict[str, Any]] = field(default_factory=list)
    """Each later re-plan: ``{epoch, from, to, slowdown, reason}``."""
    start_slowdown: float | None = None
    """How many times slower the machine ran than at the run's start when the epochs were
    planned (None: not measured)."""


def cosine_lr(base: float, minimum: float, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return minimum + 0.5 * (base - minimum) * (1 + math.cos(math.pi * progress))


class _Ema:
    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for e, m in zip(self.model.state_dict().values(), model.state_dict().values()):
            if e.dtype.is_floating_point:
                e.lerp_(m, 1 - self.decay)
            else:
                e.copy_(m)


def train_augment(cfg: TrainConfig, data: ImageData) -> Augment:
    """The data's default augmentation, with the strength ``cfg`` asks for (tuning varies it)."""
    default = Augment.default_for(data)
    pad = default.pad if cfg.augment_pad is None else cfg.augment_pad
    pad = round(pad * cfg.augment_scale)
    flips = cfg.augment_flips
    return Augment(pad=pad, hflip=default.hflip and flips, vflip=default.vflip and flips,
                   mode=default.mode)


def fit(model: nn.Module, data: ImageData, cfg: TrainConfig, *, deadline: Deadline,
        device: torch.device, seed: int = 0, run: RunDir | None = None, prefix: str = "retrain",
        normalizer: Normalizer | None = None, resume: bool = False,
        report: Any = None, progress: bool = True,
        machine: Callable[[], float] | None = None,
        recorder: Recorder | None = None, on_epoch: Any = None) -> FitResult:
    """Train ``model`` on ``data.train``, select the epoch with the best validation
    objective (``epoch_score``), stop before ``deadline``.

    With ``run``, the state after every epoch goes to ``{prefix}/state.pt`` and the history
    to ``{prefix}/history.jsonl``; ``resume`` continues from there, with the epoch plan the
    cosine schedule was made for. ``report(epoch, metrics)`` is called after each validation
    (pruners raise from it to stop a trial). ``machine()`` says how many times slower the
    machine runs than at the run's start; it is asked once, when the epochs are planned.
    ``recorder`` (instead of ``run``) is where rows and checkpoints go; in a data-parallel
    run only rank 0's writes, while every rank trains its shard (``training/distributed.py``).
    ``on_epoch(epoch, record)`` is called after each epoch is recorded, with its history
    record (an exception from it ends the fit; the checkpoint already holds the best epoch).
    """
    recorder = recorder or as_recorder(run)
    model = distributed.prepare_model(model)
    log = get_logger()
    progress_log = get_logger("progress")
    normalizer = normalizer or Normalizer.fit(data.train_x)
    objective = selection_objective(cfg.objective, data.val_y)
    if objective != cfg.objective:
        log.warning("%s: the validation split holds a single class, so its %s is undefined; "
                    "epochs are selected by validation %s", prefix, cfg.objective, objective)
    gen = torch.Generator().manual_seed(seed + 101)
    augment = train_augment(cfg, data) if cfg.augment else None
    bs = min(cfg.batch_size, len(data.train_y))
    loader = BatchLoader(data.train_x, data.train_y, bs, shuffle=True,
                         drop_last=len(data.train_y) >= 2 * bs, augment=augment,
                         normalizer=normalizer, device=device, generator=gen,
                         channels_last=True)
    head = head_for(data.task, cfg.is_ordinal)
    if distributed.is_distributed():
        loader = distributed.ShardedBatches(loader)
    counts = data.class_counts("train")
    if head == "sigmoid":
        weights = resolve_label_weights(cfg.class_weights, counts, len(data.train_y))
    else:
        weights = resolve_class_weights(cfg.class_weights, counts)
    loss_fn = make_loss(cfg.loss, None if weights is None else weights.to(device),
                        cfg.focal_gamma, cfg.label_smoothing, head=head)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay, nesterov=cfg.momentum > 0)
    ema = _Ema(model, cfg.ema_decay) if cfg.ema_decay > 0 else None
    steps_per_epoch = len(loader)
    plan = EpochPlan(cfg.epochs or cfg.max_epochs, fixed=cfg.epochs is not None,
                     max_epochs=cfg.max_epochs)
    history: list[dict[str, Any]] = []
    best: tuple[float, ...] = (-math.inf, -math.inf, -math.inf)
    best_metrics: dict[str, Any] = {}
    best_epoch = -1
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch = 0
    if resume and recorder is not None and (
            state := recorder.load_checkpoint(f"{prefix}/state.pt")) is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and "ema" in state:
            ema.model.load_state_dict(state["ema"])
        gen.set_state(state["generator"])
        restore_rng_state(state)
        start_epoch = int(state["epoch"]) + 1
        plan.restore(state)
        best = tuple(state["best"])  # type: ignore[assignment]
        best_epoch = int(state["best_epoch"])
        best_state = state.get("best_state")
        history = recorder.keep_rows(f"{prefix}/history", start_epoch)
        best_metrics = history[best_epoch]["val"] if 0 <= best_epoch < len(history) else {}
        log.info("%s: resuming after epoch %d of %d", prefix, start_epoch, plan.planned)
        if (note := plan.fit_left(start_epoch, deadline.remaining())) is not None:
            log.warning("%s: %s", prefix, note)

    has_aux = getattr(model, "aux_head", None) is not None
    drop_path = cfg.drop_path if hasattr(model, "set_drop_path") else 0.0
    step_timer = StepTimer()
    eval_timer = StepTimer()
    stopped = "completed"
    epoch = start_epoch
    start_slowdown: float | None = None
    eval_model = ema.model if ema is not None else model
    if deadline.at is not None:
        # The first step and the first evaluation are estimated before they are taken.
        per_image = probe_forward_seconds(model, data.train_x[:bs], normalizer=normalizer,
                                          device=device)
        step_timer.guess(BACKWARD_FACTOR * per_image * bs)
        eval_timer.guess(per_image * len(data.val_y))

    with Recorder.progress_for(recorder, prefix, plan.planned * steps_per_epoch,
                               progress) as bar:
        bar.update(completed=start_epoch * steps_per_epoch)
        while epoch < plan.planned:
            train_deadline = Deadline(None if deadline.at is None
                                      else deadline.at - eval_timer.estimate)
            if distributed.agree(not train_deadline.fits(step_timer.estimate)):
                stopped = "budget"
                break
            if drop_path:
                model.set_drop_path(drop_path * epoch / max(1, plan.planned))

            def set_lr(i: int, epoch: int = epoch, planned: int = plan.planned) -> None:
                t = (epoch * steps_per_epoch + i) / max(1, planned * steps_per_epoch)
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(cfg.lr, cfg.lr_min, t)
                bar.advance(info=f"epoch {epoch + 1}/{planned}")

            epoch_started = time.monotonic()
            result = train_epoch(
                model, loader, optimizer, loss_fn, deadline=train_deadline, timer=step_timer,
                grad_clip=cfg.grad_clip, aux_weight=cfg.aux_weight if has_aux else 0.0,
                before_step=set_lr,
                after_step=(lambda: ema.update(model)) if ema is not None else None,
                mixup=Mixup(cfg.mixup, (seed, epoch)) if cfg.mixup > 0 else None,
                head=head,
            )
            if result.steps == 0:
                stopped = "budget"
                break
            with eval_timer:
                probs = distributed.gather_rows(  # each rank predicts a part of the rows
                    lambda x: torch.from_numpy(predict_proba(
                        eval_model, x, normalizer=normalizer, device=device, head=head)),
                    data.val_x).numpy()
                val = classification_metrics(data.val_y.numpy(), probs, data.class_names,
                                             ordinal=head == "coral")
            if not result.stopped_early:
                note = plan.observe(epoch, time.monotonic() - epoch_started,
                                    deadline.remaining(), resumed=start_epoch > 0)
                plan.restore(distributed.broadcast_value(plan.state()))  # rank 0's plan
                if note is not None:
                    log.warning("%s: %s", prefix, note)
                bar.update(total=plan.planned * steps_per_epoch)
                if (machine is not None and start_slowdown is None
                        and plan.first_plan is not None
                        and epoch + 1 >= min(PLANNING_EPOCHS, plan.planned)):
                    start_slowdown = machine()
                    if start_slowdown >= MACHINE_SLOWER:
                        log.warning("%s: planned %d epochs while the machine runs %.1fx slower "
                                    "than at the start of the run (other processes on its "
                                    "cores?)", prefix, plan.planned, start_slowdown)
            score = epoch_score(val, objective)
            improved = score > best
            if improved:
                best, best_metrics, best_epoch = score, val, epoch
                best_state = {k: v.detach().clone() for k, v in eval_model.state_dict().items()}
            record = {"epoch": epoch, "train_loss": result.loss, "train_accuracy": result.accuracy,
                      "val": val, "lr": optimizer.param_groups[0]["lr"],
                      "seconds": step_timer.mean * result.steps + eval_timer.last,
                      "best": improved, "complete": not result.stopped_early}
            history.append(record)
            progress_log.info(
                "%s epoch %d/%d: train loss %.3f acc %.3f | val loss %.3f acc %.3f auc %s%s",
                prefix, epoch + 1, plan.planned, result.loss, result.accuracy, val["loss"],
                     val["accuracy"], _fmt(val["auc"]), " *" if improved else "")
            if recorder is not None:
                recorder.record(f"{prefix}/history", record)
                recorder.checkpoint(f"{prefix}/state.pt", {
                    "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    **({"ema": ema.model.state_dict()} if ema is not None else {}),
                    "generator": gen.get_state(), **rng_state(),
                    "epoch": epoch, **plan.state(), "best": list(best),
                    "best_epoch": best_epoch, "best_state": best_state,
                })
            if report is not None:
                report(epoch, val)
            if on_epoch is not None:
                on_epoch(epoch, record)
            epoch += 1
            if result.stopped_early:
                stopped = "budget"
                break
    return FitResult(best_metrics=best_metrics, best_epoch=best_epoch, epochs=len(history),
                     planned_epochs=plan.planned, stopped=stopped, history=history,
                     state_dict=best_state, first_plan=plan.first_plan,
                     slowdown=plan.slowdown(), replans=list(plan.replans),
                     start_slowdown=start_slowdown)


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"
