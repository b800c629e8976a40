"""Machinery shared by the one-shot (weight-sharing) strategies of the DARTS family.

The training split is cut in two stratified halves: supernet weights learn on one, the
architecture on the other (the bi-level split of the DARTS paper). The epoch loop, the
budget checks, the per-epoch record (alphas, entropy, genotype) and checkpoint/resume live
here; a strategy supplies how architecture weights are formed and updated.

Data-parallel (torch.distributed): every rank draws the same global batches and trains on
its shard of each; the loss is scaled by the shard's share and the gradients of the
supernet weights and of the architecture are summed across ranks before each optimizer
step, and BatchNorm uses the global batch's statistics (``training/distributed.py``).
Rows and checkpoints go through the pipeline's recorder, which writes on rank 0 only.
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..data import Augment, BatchLoader, Normalizer, split_indices, subset
from ..run import get_logger
from ..spaces.darts import CELL_TYPES, DartsSpace, Supernet
from ..spaces.genotype import CellGenotype, Genotype
from ..spaces.ops import SKIP_OPS
from ..training import distributed
from ..training.budget import StepTimer
from ..training.device import to_channels_last
from ..training.loop import BACKWARD_FACTOR, NonFiniteLossError, predict_logits
from ..training.losses import make_loss, resolve_class_weights, resolve_label_weights
from ..training.rng import restore_rng_state, rng_state
from ..training.tasks import eval_loss_accuracy, head_for
from .base import SearchContext, SearchResult, Strategy
from .collapse import check_stopping_options, collapse_stop
from .stacking import sample_cell, stack_cells

STATE = "search/state.pt"
HISTORY = "search/history"  # search/history.jsonl
ALPHAS = "search/alphas"  # search/alphas.jsonl


class ShardLoss(nn.Module):
    """The strategy's loss scaled by this rank's share of the global batch (1 in a single
    process, where the loss is returned untouched), so summed gradients are those of the
    global batch's mean loss."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        self.loss = loss
        self.share = 1.0

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return distributed.scaled(self.loss(logits, target), self.share)


class ArchParams(nn.Module):
    """Architecture logits alpha, one (n_edges, n_ops) matrix per cell type."""

    def __init__(self, n_edges: int, n_ops: int, init_scale: float = 1e-3) -> None:
        super().__init__()
        self.alphas = nn.ParameterDict(
            {t: nn.Parameter(init_scale * torch.randn(n_edges, n_ops)) for t in CELL_TYPES}
        )

    def softmax(self) -> dict[str, torch.Tensor]:
        return {t: F.softmax(a, dim=-1) for t, a in self.alphas.items()}


def normalized_entropy(weights: torch.Tensor) -> float:
    """Mean entropy of per-edge op distributions divided by its maximum: 1.0 = uniform."""
    p = weights.detach().float().clamp_min(1e-12)
    ent = -(p * p.log()).sum(-1).mean()
    return float(ent / math.log(p.shape[-1])) if p.shape[-1] > 1 else 0.0


@dataclass
class OneShotStrategy(Strategy):
    """Options common to the DARTS family (defaults sized for a CPU and MedMNIST)."""

    epochs: int = 20
    """Sized so the default search (about 9.5 s an epoch on 2 CPU cores for BreastMNIST)
    finishes inside its 40% share of a 10-minute budget with room to spare; a fixed count
    keeps the result the same for the same seed."""
    batch_size: int = 32
    channels: int = 8
    layers: int = 5
    w_lr: float = 0.05
    w_lr_min: float = 0.001
    w_momentum: float = 0.9
    w_weight_decay: float = 3e-4
    grad_clip: float = 5.0
    alpha_lr: float = 0.03
    """Adam step for the architecture. The DARTS paper used 3e-4 over ~10^4 steps; a CPU
    search on a small medical set takes a few hundred, and 3e-4 leaves the weights near
    uniform (the search would not really choose): measured, 6e-3 moved the normalised
    alpha entropy only to 0.998 in 56 steps, 0.03 to 0.77 in 144."""
    alpha_beta1: float = 0.5
    alpha_beta2: float = 0.999
    alpha_weight_decay: float = 1e-3
    warmup_epochs: int = 2
    data_fraction: float = 1.0
    search_images: int | None = 1200
    """On CPU, at most this many training images (both halves together) per search epoch,
    a proxy task for large sets: the default 20 epochs then take minutes for any dataset
    (BreastMNIST's 546 images are all used). None: no cap; a GPU uses all images."""
    augment: bool = True
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weights: str | None = None
    max_skips: int | None = None
    """Early stop once the derived normal cell holds more skip connections (collapse.py)."""
    stable_epochs: int | None = None
    """Early stop once the derived normal cell has not changed for this many epochs."""
    flexible_stacking: bool = False
    """Draw one cell per network position from the learned distribution (stacking.py)."""
    stacking_layers: int | None = None
    """Positions to draw with flexible stacking (default: the retrained network's layers)."""

    spaces = (DartsSpace,)
    data_parallel: ClassVar[bool] = True
    """Runs data-parallel: every random draw of a step is the same on all ranks."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A subclass for other kinds of space (own supernet, own set-up) is not covered by
        the data-parallel hooks of this loop unless it says so itself."""
        super().__init_subclass__(**kwargs)
        if "data_parallel" not in cls.__dict__ and not all(
                issubclass(s, DartsSpace) for s in cls.spaces):
            cls.data_parallel = False

    # -- hooks a strategy implements ---------------------------------------------------
    def build_arch(self, space: DartsSpace, n_ops: int) -> nn.Module:
        return ArchParams(space.n_edges, n_ops)

    def arch_weights(self, arch: nn.Module, training: bool) -> dict[str, torch.Tensor]:
        """Per-cell-type (n_edges, n_ops) weights the supernet mixes its ops with."""
        return arch.softmax()

    def derive_weights(self, arch: nn.Module) -> dict[str, torch.Tensor]:
        """The weights the genotype is read from (may differ from the mixing weights)."""
        return arch.softmax()

    def derive_arch(self) -> dict[str, Any]:
        """The discrete architecture (the space's JSON form) the current weights select."""
        arch = self.derive_genotype().to_dict()
        if self.flexible_stacking:
            seed = self.gen_a.initial_seed() if hasattr(self, "gen_a") else 0
            gen = torch.Generator().manual_seed(seed)
            layers = self.stacking_layers or getattr(self, "target_layers", None) or 8
            arch["cells"] = stack_cells(lambda kind: self.sample_cell(kind, gen), layers)
        return arch

    def derive_genotype(self) -> Genotype:
        """The final normal and reduction cells (argmax of the derive weights)."""
        return self.space.derive(self.derive_weights(self.arch))

    def sample_cell(self, kind: str, gen: torch.Generator) -> CellGenotype:
        """A cell of type ``kind`` drawn from the learned distribution (flexible stacking)."""
        return sample_cell(self.derive_weights(self.arch)[kind], self.space.ops,
                           self.space.nodes, gen)

    def begin_epoch(self, epoch: int) -> None:
        """Called before each epoch's first step (schedules, stage changes)."""

    @abstractmethod
    def arch_step(self, xt: torch.Tensor, yt: torch.Tensor, xv: torch.Tensor,
                  yv: torch.Tensor) -> None:
        """Update the architecture from a train batch and a validation batch."""

    # -- shared state, set up by ``search`` ----------------------------------------------
    def _setup(self, ctx: SearchContext) -> None:
        data = ctx.data
        self.target_layers = ctx.target.layers if ctx.target is not None else None
        torch.manual_seed(ctx.seed)
        idx_w, idx_a = split_indices(data.train_y, 0.5, seed=ctx.seed)
        fraction = self.data_fraction
        if self.search_images is not None and ctx.device.type == "cpu":
            fraction = min(fraction, self.search_images / max(1, len(data.train_y)))
        if fraction < 1.0:
            g = torch.Generator().manual_seed(ctx.seed + 1)
            idx_w = idx_w[torch.randperm(len(idx_w), generator=g)][
                : max(2 * self.batch_size, int(len(idx_w) * fraction))]
            idx_a = idx_a[torch.randperm(len(idx_a), generator=g)][
                : max(2 * self.batch_size, int(len(idx_a) * fraction))]
        self.normalizer = Normalizer.fit(data.train_x)
        augment = Augment.default_for(data) if self.augment else None
        xw, yw = subset(data.train_x, data.train_y, idx_w)
        xa, ya = subset(data.train_x, data.train_y, idx_a)
        self.gen_w = torch.Generator().manual_seed(ctx.seed + 11)
        self.gen_a = torch.Generator().manual_seed(ctx.seed + 12)
        bs = min(self.batch_size, len(yw), len(ya))
        common = dict(normalizer=self.normalizer, device=ctx.device, channels_last=True)
        self.weight_loader = distributed.ShardedBatches(BatchLoader(
            xw, yw, bs, shuffle=True, drop_last=True, augment=augment, generator=self.gen_w,
            **common))
        self.arch_loader = distributed.ShardedBatches(BatchLoader(
            xa, ya, bs, shuffle=True, drop_last=True, augment=augment, generator=self.gen_a,
            **common))
        self.arch_eval = (xa, ya)
        self.head = head_for(data.task)
        counts = (yw.sum(0) if yw.ndim == 2
                  else torch.bincount(yw, minlength=data.n_classes)).tolist()
        if self.head == "sigmoid":
            class_weights = resolve_label_weights(self.class_weights, counts, len(yw))
        else:
            class_weights = resolve_class_weights(self.class_weights, counts)
        self.setup_model(ctx.space, data.channels, data.n_classes, data.image_size[0],
                         ctx.device, class_weights)

    def setup_model(self, space: DartsSpace, in_channels: int, n_classes: int, image_size: int,
                    device: torch.device, class_weights: torch.Tensor | None = None) -> None:
        """Supernet, architecture parameters, optimizers and loss (no data needed: the step
        benchmark uses this directly)."""
        self.check_space(space)
        check_stopping_options(self.max_skips, self.stable_epochs)
        self.device = device
        self.space = space
        self.loss_fn = ShardLoss(make_loss(self.loss, None if class_weights is None
                                           else class_weights.to(device), self.focal_gamma,
                                           head=getattr(self, "head", "softmax")))
        self.net = distributed.prepare_model(
            self.build_supernet(in_channels, n_classes, image_size))
        self.arch = distributed.prepare_model(self.build_arch(self.space, self.net.n_ops)
                                              .to(device))
        self.make_optimizers()

    def make_optimizers(self) -> None:
        """SGD + cosine for the supernet weights, Adam for the architecture (DARTS paper).

        Distributed, the architecture gradients are summed across ranks just before each
        Adam step (a hook), so every strategy's ``arch_step`` stays as in one process."""
        self.w_optim = torch.optim.SGD(self.net.parameters(), lr=self.w_lr,
                                       momentum=self.w_momentum,
                                       weight_decay=self.w_weight_decay)
        self.a_optim = torch.optim.Adam(self.arch.parameters(), lr=self.alpha_lr,
                                        betas=(self.alpha_beta1, self.alpha_beta2),
                                        weight_decay=self.alpha_weight_decay)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            self.w_optim, T_max=max(1, self.epochs), eta_min=self.w_lr_min)
        if distributed.is_distributed():
            self.a_optim.register_step_pre_hook(
                lambda *_: distributed.reduce_gradients(self.arch.parameters()))

    def build_supernet(self, in_channels: int, n_classes: int, image_size: int) -> Supernet:
        net = Supernet(self.space, in_channels, n_classes, image_size,
                       channels=self.channels, layers=self.layers)
        return to_channels_last(net.to(self.device))

    def weight_step(self, xt: torch.Tensor, yt: torch.Tensor) -> float:
        self.w_optim.zero_grad(set_to_none=True)
        with torch.no_grad():  # the weight step needs no gradient for the architecture
            weights = self.arch_weights(self.arch, training=True)
        return self.descend(self.loss_fn(self.net(xt, weights), yt))

    def descend(self, loss: torch.Tensor) -> float:
        """One clipped SGD step of the supernet weights on ``loss``."""
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"supernet loss became {loss.item()}")
        loss.backward()
        distributed.reduce_gradients(self.net.parameters())
        nn.utils.clip_grad_norm_(self.net.parameters(), self.grad_clip)
        self.w_optim.step()
        return float(loss.detach())

    def alphas_frozen(self, epoch: int) -> bool:
        return epoch < self.warmup_epochs

    # -- checkpointing ---------------------------------------------------------------------
    def state_dict(self, epoch: int, history: list[dict]) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "net": self.net.state_dict(),
            "arch": self.arch.state_dict(),
            "w_optim": self.w_optim.state_dict(),
            "a_optim": self.a_optim.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "gen_w": self.gen_w.get_state(),
            "gen_a": self.gen_a.get_state(),
            **rng_state(),  # CPU, and CUDA where present
            "n_history": len(history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> int:
        self.net.load_state_dict(state["net"])
        self.arch.load_state_dict(state["arch"])
        self.w_optim.load_state_dict(state["w_optim"])
        self.a_optim.load_state_dict(state["a_optim"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.gen_w.set_state(state["gen_w"])
        self.gen_a.set_state(state["gen_a"])
        restore_rng_state(state)
        return int(state["epoch"]) + 1

    # -- the loop ---------------------------------------------------------------------------
    def guess_first_costs(self, step_timer: StepTimer, eval_timer: StepTimer) -> None:
        """Estimate the first search step and the first evaluation before taking them, from
        one timed evaluation of a batch of validation images (eval mode; the random state is
        restored, so a probe never changes what the search draws)."""
        full = self.arch_eval
        n = min(len(full[1]), self.weight_loader.batch_size)
        if n == 0:
            return
        saved = rng_state()
        try:
            self.arch_eval = (full[0][:2], full[1][:2])
            self.evaluate_supernet()  # untimed: first calls pay one-off costs
            self.arch_eval = (full[0][:n], full[1][:n])
            start = time.perf_counter()
            self.evaluate_supernet()
            per_image = (time.perf_counter() - start) / n
        finally:
            self.arch_eval = full
            restore_rng_state(saved)
        step_timer.guess(2 * BACKWARD_FACTOR * per_image * n)  # an arch and a weight step
        eval_timer.guess(per_image * len(full[1]))

    def evaluate_supernet(self) -> tuple[float, float]:
        x, y = self.arch_eval
        weights = {t: w.detach() for t, w in self.arch_weights(self.arch, training=False).items()}
        logits = predict_logits(self.net, x, normalizer=self.normalizer, device=self.device,
                                batch_size=128, forward=lambda xb: self.net(xb, weights))
        return eval_loss_accuracy(logits, y)

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        derive = self.derive_weights(self.arch)
        genotype = self.space.derive(derive)
        return {
            "epoch": epoch,
            "genotype": genotype.to_dict(),
            "skip_normal": genotype.normal.count(SKIP_OPS),
            "entropy": {t: normalized_entropy(derive[t]) for t in CELL_TYPES},
        }

    def progress_text(self, record: dict[str, Any]) -> str:
        """The architecture part of the per-epoch progress line."""
        return (f"alpha entropy {record['entropy']['normal']:.3f}/"
                f"{record['entropy']['reduce']:.3f}, skips in normal cell "
                f"{record['skip_normal']}")

    def extra_stop(self, history: list[dict]) -> str | None:
        """A reason to end the search early: the collapse rules (collapse.py) by default."""
        return collapse_stop(history, self.max_skips, self.stable_epochs)

    def search(self, ctx: SearchContext) -> SearchResult:
        log = get_logger()
        self._setup(ctx)
        recorder = ctx.recorder
        history: list[dict] = []
        start_epoch = 0
        if ctx.resume and (state := recorder.load_checkpoint(STATE)) is not None:
            start_epoch = self.load_state_dict(state)  # every rank restores the same state
            history = recorder.keep_rows(HISTORY, state["n_history"])
            recorder.keep_rows(ALPHAS, len(history))
            log.info("search: resuming after epoch %d", start_epoch)
        steps = min(len(self.weight_loader), len(self.arch_loader))
        step_timer = StepTimer()
        eval_timer = StepTimer()
        if ctx.deadline.at is not None:
            self.guess_first_costs(step_timer, eval_timer)
        stopped = "completed"
        self.batch_share = 1.0

        def out_of_time() -> bool:  # decided by all ranks together
            return distributed.agree(
                not ctx.deadline.fits(step_timer.estimate + eval_timer.estimate))

        with recorder.progress("search", total=self.epochs * steps) as bar:
            bar.update(completed=start_epoch * steps)
            for epoch in range(start_epoch, self.epochs):
                if out_of_time():
                    stopped = "budget"
                    break
                self.begin_epoch(epoch)
                self.net.train()
                frozen = self.alphas_frozen(epoch)
                losses = []
                for xt, yt, xv, yv in self._batches():
                    if out_of_time():
                        stopped = "budget"
                        break
                    with step_timer, distributed.global_batch_statistics():
                        if not frozen:
                            self.arch_step(xt, yt, xv, yv)
                        losses.append(self.weight_step(xt, yt))
                    shown = losses[-1] / self.batch_share
                    bar.advance(info=f"epoch {epoch + 1}/{self.epochs} loss {shown:.3f}")
                if stopped == "budget" and not losses:
                    break
                with eval_timer:
                    val_loss, val_acc = self.evaluate_supernet()
                self.scheduler.step()
                # each rank's losses are its shard's share: their sum is the global mean
                train_loss = distributed.sum_scalar(sum(losses)) / max(1, len(losses))
                record = {
                    **self.epoch_record(epoch),
                    "train_loss": train_loss,
                    "val_loss": val_loss,
                    "val_accuracy": val_acc,
                    "alphas_frozen": frozen,
                    "steps": len(losses),
                    "seconds": step_timer.mean * len(losses) + eval_timer.last,
                    "complete": stopped != "budget",
                }
                history.append(record)
                recorder.record(HISTORY, record)
                recorder.record(ALPHAS, {
                    "epoch": epoch,
                    **{t: w.detach().cpu() for t, w in self.derive_weights(self.arch).items()},
                })
                recorder.checkpoint(STATE, self.state_dict(epoch, history))
                get_logger("progress").info(
                    "search epoch %d/%d: train loss %.3f, val loss %.3f acc %.3f, %s%s",
                    epoch + 1, self.epochs, record["train_loss"], val_loss, val_acc,
                    self.progress_text(record), " (alphas frozen: warm-up)" if frozen else "",
                )
                if stopped == "budget":
                    break
                reason = self.extra_stop(history)
                if reason:
                    stopped = f"early-stop: {reason}"
                    log.info("search stopped early: %s", reason)
                    break
        return SearchResult(
            architecture=self.derive_arch(),
            stopped=stopped,
            epochs=len(history),
            history=history,
            extra={"supernet": {"channels": self.channels, "layers": self.layers}},
            arch_steps=sum(r["steps"] for r in history if not r["alphas_frozen"]),
        )

    def _batches(self):
        """Pairs of (weight batch, architecture batch): this rank's shards of them."""
        for (xt, yt), (xv, yv) in zip(self.weight_loader, self.arch_loader):
            self.batch_share = getattr(self.weight_loader, "share", 1.0)  # same for both
            if isinstance(self.loss_fn, ShardLoss):
                self.loss_fn.share = self.batch_share
            yield xt, yt, xv, yv
