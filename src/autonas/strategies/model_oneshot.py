"""One-shot search on user model spaces: one supernet, a pluggable mixing rule.

Every strategy here trains one :class:`~autonas.strategies.darts_model.ModelSupernet` (the
space with each decision relaxed, weights shared by all architectures) with the bi-level
loop of ``oneshot.py``. They differ only in how a step mixes a decision's values:

- softmax-weighted, every value at once (``darts``: ``darts_model.py``; the relaxations
  are in ``model_supernet.py``);
- a Gumbel-softmax hard sample, straight-through gradients (``gdas``: ``gdas_model.py``);
- a uniform single path, best of K sampled architectures at the end (``spos`` /
  ``random-oneshot``: ``spos_model.py``);
- a path sampled by an LSTM controller trained with REINFORCE (``enas``: ``enas_model.py``);
- two sampled values per decision, binary gates (``proxyless``: ``proxyless.py``).

A *path* names, per decision, the indices of the values a step computes (one, or
``n_chosen`` of an InputChoice); only those candidates run, forward and backward.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from ..run import get_logger
from ..spaces.model_space import Decision, ModelSpace, dry_run
from ..spaces.mutables import _same_value
from ..training.device import to_channels_last
from ..training.loop import predict_logits
from ..training.losses import make_loss
from .base import SearchContext, SearchResult
from .model_supernet import ModelArchParams, ModelSupernet, Weights, derive_arch
from .oneshot import OneShotStrategy, normalized_entropy
from .single_path import Forward, path_score

Path = dict[str, list[int]]
"""Per relaxed label, the indices of the values a step computes."""


def path_forward(decisions: list[Decision], path: Path, device: torch.device) -> Forward:
    """One-hot (multi-hot for InputChoice) weights and the active indices of ``path``."""
    weights: Weights = {}
    for d in decisions:
        w = torch.zeros(len(d.values), device=device)
        w[path[d.label]] = 1.0
        weights[d.label] = w
    return weights, {k: sorted(v) for k, v in path.items()}


def arch_path(decisions: list[Decision], arch: dict[str, Any]) -> Path:
    """The path an architecture (validated: canonical values) selects."""
    path: Path = {}
    for d in decisions:
        value = arch[d.label]
        if d.kind == "input":
            path[d.label] = sorted(int(i) for i in value)
        else:
            path[d.label] = [next(i for i, v in enumerate(d.values) if _same_value(v, value))]
    return path


def path_arch(decisions: list[Decision], path: Path) -> dict[str, Any]:
    """The architecture of a path; labels the supernet does not read keep their default."""
    arch: dict[str, Any] = {}
    for d in decisions:
        if d.label not in path:
            arch[d.label] = d.default
        elif d.kind == "input":
            arch[d.label] = sorted(path[d.label])
        else:
            arch[d.label] = d.values[path[d.label][0]]
    return arch


def uniform_path(decisions: list[Decision], gen: torch.Generator | None = None) -> Path:
    """Every decision's value(s) drawn uniformly (torch RNG: resumable with its state)."""
    return {d.label: sorted(torch.randperm(len(d.values), generator=gen)[: d.n_chosen].tolist())
            for d in decisions}


def argmax_path(decisions: list[Decision], weights: Weights) -> Path:
    """The most likely value(s) of every decision."""
    return {d.label: sorted(torch.topk(weights[d.label].detach(), d.n_chosen).indices.tolist())
            for d in decisions}


@dataclass
class ModelSpaceOneShot(OneShotStrategy):
    """Shared set-up, records and selection of the model-space one-shot strategies
    (``channels`` and ``layers`` do not apply: the space fixes the network's size)."""

    spaces = (ModelSpace,)
    soft: ClassVar[bool] = True
    """True: every step mixes all values (DARTS); False: steps run single paths."""

    # -- set-up ----------------------------------------------------------------------------
    def build_model_arch(self, decisions: list[Decision]) -> nn.Module:
        """The architecture parameters (alphas per label by default, or a controller)."""
        return ModelArchParams(decisions)

    def setup_model(self, space: ModelSpace, in_channels: int, n_classes: int,
                    image_size: int, device: torch.device,
                    class_weights: torch.Tensor | None = None) -> None:
        self.check_space(space)
        if getattr(self, "max_skips", None) is not None:
            raise ConfigError("max_skips counts skip connections of DARTS cells; a model space "
                              "has none: leave it unset (stable_epochs works)")
        if getattr(self, "flexible_stacking", False):
            raise ConfigError("flexible_stacking stacks DARTS cells; a model space fixes its "
                              "own structure: leave it off")
        self.device = device
        self.space = space.adapted(in_channels, n_classes, image_size)
        self.loss_fn = make_loss(self.loss, None if class_weights is None
                                 else class_weights.to(device))
        self.net = to_channels_last(ModelSupernet(self.space, soft=self.soft).to(device))
        unread = [d.label for d in self.net.decisions if d not in self.net.relaxed]
        if unread:
            get_logger().warning("%s: no relaxed module reads %s; they keep their first value",
                                 self.name, unread)
        if not self.net.relaxed:
            raise ConfigError(f"{type(space).__name__} has no decision {self.name} can relax; "
                              "pick a multi-trial strategy")
        self.arch = self.build_model_arch(self.net.relaxed).to(device)
        what = f"the {self.name} supernet of {type(space).__name__}"
        if self.soft:
            uniform = {d.label: torch.full((len(d.values),), 1 / len(d.values), device=device)
                       for d in self.net.relaxed}
            dry_run(self.net, in_channels, image_size, what, call=lambda x: self.net(x, uniform))
        else:
            default = {d.label: list(range(d.n_chosen)) for d in self.net.relaxed}
            weights, active = path_forward(self.net.relaxed, default, device)
            dry_run(self.net, in_channels, image_size, what,
                    call=lambda x: self.net(x, weights, active))
        self.make_optimizers()

    # -- weights and the derived architecture ----------------------------------------------
    def arch_weights(self, arch: nn.Module, training: bool) -> Weights:
        return arch.softmax()

    def derive_weights(self, arch: nn.Module) -> Weights:
        return arch.softmax()

    def derive_arch(self) -> dict[str, Any]:
        return self.space.validate(derive_arch(self.net.decisions,
                                               self.derive_weights(self.arch)))

    # -- single paths ------------------------------------------------------------------------
    def path_forward(self, path: Path) -> Forward:
        return path_forward(self.net.relaxed, path, self.device)

    def arch_of(self, path: Path) -> dict[str, Any]:
        return self.space.validate(path_arch(self.net.decisions, path))

    def score_path(self, path: Path, objective: str) -> float:
        """The objective of a path on held-out data with the shared weights (the supernet's
        BatchNorms use each batch's statistics: no recalibration needed)."""
        x, y = self.score_data
        forward = self.path_forward(path)
        logits = predict_logits(self.net, x, normalizer=self.normalizer, device=self.device,
                                batch_size=256,
                                forward=lambda xb: self.net(xb, *forward))
        return path_score(logits, y, objective)

    def best_of(self, paths: list[Path], objective: str) -> dict[str, Any]:
        """The best of ``paths`` (duplicates scored once) on held-out data, as long as the
        search's real deadline allows; writes ``search/paths.json`` best first."""
        rows: list[dict[str, Any]] = []
        seen: set[str] = set()
        slowest = 0.0
        for path in paths:
            arch = self.arch_of(path)
            key = repr(sorted(arch.items()))
            if key in seen:
                continue
            if rows and not self.selection_time_left(slowest):
                break
            seen.add(key)
            start = time.monotonic()
            score = self.score_path(arch_path(self.net.relaxed, arch), objective)
            slowest = max(slowest, time.monotonic() - start)
            rows.append({"arch": arch, objective: score})
        rows.sort(key=lambda r: -r[objective])
        self.write_paths(rows)
        get_logger().info("%s: best of %d sampled architectures has validation %s %.4f",
                          self.name, len(rows), objective, rows[0][objective])
        return rows[0]["arch"]

    # -- records -----------------------------------------------------------------------------
    def epoch_record(self, epoch: int) -> dict[str, Any]:
        weights = {k: w.detach().cpu() for k, w in self.derive_weights(self.arch).items()}
        entropy = {k: normalized_entropy(w) for k, w in weights.items()}
        return {
            "epoch": epoch,
            "arch": self.space.validate(derive_arch(self.net.decisions, weights)),
            "weights": {k: w.tolist() for k, w in weights.items()},
            "entropy": entropy,
            "mean_entropy": sum(entropy.values()) / max(1, len(entropy)),
        }

    def extra_stop(self, history: list[dict]) -> str | None:
        """``stable_epochs``: stop once the derived architecture has not changed for that
        many searched epochs (``max_skips`` counts cell skips: no meaning here)."""
        n = getattr(self, "stable_epochs", None)
        searched = [r["arch"] for r in history if not r.get("alphas_frozen")]
        if n and len(searched) >= n and all(a == searched[-1] for a in searched[-n:]):
            return f"stable_epochs: the architecture has not changed for {n} epochs"
        return None

    def progress_text(self, record: dict[str, Any]) -> str:
        return f"mean alpha entropy {record['mean_entropy']:.3f}, arch {record['arch']}"

    def search(self, ctx: SearchContext) -> SearchResult:
        result = super().search(ctx)
        result.extra = {"supernet": {
            "space": type(self.space).__name__,
            "relaxed": [d.label for d in self.net.relaxed],
            "params": sum(p.numel() for p in self.net.parameters()),
        }}
        return result


def gumbel_hard(alpha: torch.Tensor, n_chosen: int, tau: float) -> tuple[torch.Tensor, list[int]]:
    """A hard Gumbel-softmax draw of ``n_chosen`` values (top-k of the perturbed logits)
    with straight-through gradients to ``alpha``."""
    gumbel = -torch.empty_like(alpha).exponential_().log()
    soft = F.softmax((alpha + gumbel) / tau, dim=-1)
    picked = torch.topk(soft.detach(), n_chosen).indices
    hard = torch.zeros_like(soft).scatter_(-1, picked, 1.0)
    return hard - soft.detach() + soft, sorted(picked.tolist())


__all__ = [
    "ModelSpaceOneShot",
    "Path",
    "arch_path",
    "argmax_path",
    "gumbel_hard",
    "path_arch",
    "path_forward",
    "uniform_path",
]
