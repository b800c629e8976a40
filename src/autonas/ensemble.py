"""The ensemble phase: after retraining, more networks for the final model, their
probabilities averaged (``RunConfig.ensemble``; the module is ``spaces.ensemble``).

Members are the retrained architecture again with other seeds (other initialisation and
data order), or, with ``ensemble_from: runners_up``, the search's next best distinct
architectures (``runners_up`` in ``search/result.json``, then seeds). Seeds are the
default by measurement: on BreastMNIST, five-network ensembles of runners-up scored below
one network, and seed ensembles above it (README, "ImageClassifier with seed 000's
AutoKeras calls"). Each is trained
as the retraining was (same recipe, epochs and normalisation) under its own prefix
``ensemble/member{i}/``, so a killed run resumes inside the member it was training.
Finished members are listed in ``ensemble/members.json``; only when all are trained does
``model.pt`` become the ensemble's weights and ``model.json`` list its members, with the
retrained network kept as ``ensemble/member0.pt``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from .config import ENSEMBLE_AUTO_MAX, RunConfig
from .data import ImageData, Normalizer
from .recorder import Recorder
from .run import RunDir, get_logger
from .spaces.base import BuildSpec, SearchSpace, build_network
from .spaces.ensemble import Ensemble, with_tta
from .training.budget import Deadline
from .training.device import seed_everything, to_channels_last
from .training.loop import predict_proba
from .training.metrics import classification_metrics
from .training.profile import count_flops
from .training.reserve import finish_seconds
from .training.trainer import fit

MEMBERS_FILE = "ensemble/members.json"
SAFETY = 1.2
"""``auto`` adds a member only when this many times its estimated training time is left."""


def candidates(run: RunDir, arch: dict[str, Any], seed: int, n: int,
               source: str = "seeds") -> list[dict[str, Any]]:
    """``n`` members after the first: the first architecture with other seeds, or, with
    ``source='runners_up'``, the search's runners-up first."""
    found = []
    if source == "runners_up" and run.exists("search/result.json"):
        for row in run.read_json("search/result.json").get("runners_up") or []:
            found.append({"arch": row["arch"], "trial": row.get("number")})
    while len(found) < n:
        found.append({"arch": arch, "trial": None})
    return [{**c, "seed": seed + i + 1} for i, c in enumerate(found[:n])]


def relative_cost(first: torch.nn.Module, other: torch.nn.Module, same: bool,
                  shape: tuple[int, ...]) -> float:
    """How many times the first network's training time another one's takes (by FLOPs;
    1 for the same architecture)."""
    if same:
        return 1.0
    return count_flops(other, shape) / max(1, count_flops(first, shape))


def ensemble_phase(cfg: RunConfig, run: RunDir, data: ImageData, space: SearchSpace,
                   spec: BuildSpec, deadline: Deadline, device: torch.device, resume: bool,
                   recorder: Recorder | None = None, evaluating: bool = True,
                   agree: Callable[[Callable[[], Any]], Any] = lambda f: f()
                   ) -> dict[str, Any]:
    """Train the ensemble's members after the first and make them the final model.

    ``evaluating``: keep each member's share of the evaluation's time before the
    deadline. ``agree(f)``: ``f()`` decided once for every process of a data-parallel run
    (rank 0's answer). Returns ``model.json``.
    """
    log = get_logger()
    recorder = recorder or Recorder(run)
    meta = agree(lambda: run.read_json("model.json"))
    if meta.get("ensemble"):
        return meta  # made before a kill that came before the phase was marked done
    wanted = ENSEMBLE_AUTO_MAX if cfg.ensemble == "auto" else int(cfg.ensemble)
    if wanted <= 1:
        return meta
    if cfg.ensemble == "auto" and deadline.at is None:
        log.info("ensemble: no time limit, so no time left over: one network "
                 "(ensemble: N trains N)")
        return meta
    # auto, and a given number without a budget: as many epochs as the first network got;
    # a given number under a budget: planned to fill each member's share of the time
    shares = cfg.ensemble != "auto" and cfg.train.epochs is None and deadline.at is not None
    epochs = None if shares else cfg.train.epochs or int(meta["epochs"])
    per_epoch = agree(run.epoch_seconds)
    if cfg.ensemble == "auto" and agree(lambda: per_epoch is None or not deadline.fits(
            SAFETY * per_epoch * epochs)):
        # the usual end of a budgeted run, decided before any probe spends its time
        log.info("ensemble: %s; the final model is the retrained network",
                 "no time left for another" if per_epoch is not None else
                 "the retraining's epochs were not timed")
        return meta
    done: list[dict[str, Any]] = agree(
        lambda: run.read_json(MEMBERS_FILE) if resume and run.exists(MEMBERS_FILE) else [])
    todo = candidates(run, meta["arch"], cfg.seed, wanted - 1, cfg.ensemble_from)[len(done):]
    first_model = build_network(space, meta["arch"], spec).to(device)
    shape = (data.channels, *data.image_size)
    keep = finish_seconds(with_tta(first_model, meta), data, device) if evaluating else 0.0
    normalizer = Normalizer.from_dict(meta["normalizer"])
    stop_reason = None
    total = len(done) + len(todo)
    for index, member in enumerate(todo, start=len(done) + 1):
        seed_everything(member["seed"])
        model = to_channels_last(build_network(space, member["arch"], spec).to(device))
        keep += finish_seconds(with_tta(model, meta), data, device) if evaluating else 0.0
        end = Deadline(None if deadline.at is None else deadline.at - keep)
        if cfg.ensemble == "auto":
            cost = per_epoch * epochs * relative_cost(first_model, model, member["arch"] ==
                                                       meta["arch"], shape)
            if agree(lambda cost=cost, end=end: not end.fits(SAFETY * cost)):
                stop_reason = "no time left for another"
                break
        elif shares:
            end = Deadline.after(end.remaining() / (total - index + 1))  # an equal share
        train_cfg = replace(cfg.train, **space.train_overrides(member["arch"]), epochs=epochs)
        prefix = f"ensemble/member{index}"
        log.info("ensemble: member %d of %d: %s (%s, seed %d)", index + 1, wanted,
                 space.describe(member["arch"]),
                 "the first architecture" if member["trial"] is None else
                 f"trial {member['trial']}", member["seed"])
        result = fit(model, data, train_cfg, deadline=end, device=device, seed=member["seed"],
                     run=run, prefix=prefix, normalizer=normalizer, resume=resume,
                     recorder=recorder)
        # A member planned to fill its share is kept as the retraining is, however its plan
        # ended; one given the first network's epochs is kept only with all of them.
        if result.state_dict is None or (epochs is not None and result.epochs < epochs):
            stop_reason = f"the time limit cut member {index + 1} after {result.epochs} of " \
                          f"{epochs or result.planned_epochs} epochs"
            break
        recorder.checkpoint(f"{prefix}.pt", result.state_dict)
        done.append({**member, "weights": f"{prefix}.pt", "epochs": result.epochs,
                     "best_epoch": result.best_epoch, "val": result.best_metrics,
                     "params": sum(p.numel() for p in model.parameters())})
        recorder.write_json(MEMBERS_FILE, done)
    if stop_reason is not None:
        log.info("ensemble: %s; the final model %s", stop_reason,
                 f"averages {len(done) + 1} networks" if done else "is the retrained network")
    if not done or not recorder.is_writer:
        return meta
    return commit(run, meta, done, space, spec, data, device, recorder)


def commit(run: RunDir, meta: dict[str, Any], members: list[dict[str, Any]],
           space: SearchSpace, spec: BuildSpec, data: ImageData, device: torch.device,
           recorder: Recorder) -> dict[str, Any]:
    """Make ``model.pt``/``model.json`` the ensemble of the retrained network and
    ``members``; its validation metrics (with the test-time flips) go to ``model.json``
    (``ensemble_val``)."""
    if not run.exists("ensemble/member0.pt"):
        shutil.copyfile(run.file("model.pt"), run.file("ensemble/member0.pt"))
    first = {"arch": meta["arch"], "trial": None, "seed": None, "weights": "ensemble/member0.pt",
             "epochs": meta["epochs"], "best_epoch": meta["best_epoch"],
             "val": run.epoch_val(int(meta["best_epoch"])), "params": meta["params"]}
    everyone = [first, *members]
    networks = []
    for member in everyone:
        network = build_network(space, member["arch"], spec)
        network.load_state_dict(torch.load(run.file(member["weights"]), map_location="cpu",
                                           weights_only=True))
        networks.append(network)
    ensemble = to_channels_last(Ensemble(networks, head=spec.head).to(device)).eval()
    probs = predict_proba(with_tta(ensemble, meta), data.val_x, normalizer=Normalizer.from_dict(
        meta["normalizer"]), device=device, head=spec.head)
    val = classification_metrics(data.val_y.numpy(), probs, data.class_names,
                                 ordinal=spec.head == "coral") if len(data.val_y) else {}
    state = {k: v.detach().cpu() for k, v in ensemble.state_dict().items()}
    recorder.checkpoint("model.pt", state)
    meta = {**meta, "ensemble": everyone, "ensemble_val": _summary(val),
            "params": sum(int(m["params"] or 0) for m in everyone)}
    recorder.write_json("model.json", meta)
    best = max(everyone, key=lambda m: (m["val"] or {}).get("auc") or 0.0)
    get_logger().info("ensemble: %d networks, val auc %s acc %s (its best member alone: "
                      "auc %s acc %s)", len(everyone), _fmt(val.get("auc")),
                      _fmt(val.get("accuracy")), _fmt((best["val"] or {}).get("auc")),
                      _fmt((best["val"] or {}).get("accuracy")))
    return meta


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: metrics[k] for k in ("loss", "accuracy", "auc") if k in metrics}


def _fmt(value: Any) -> str:
    return "n/a" if value is None or (isinstance(value, float) and np.isnan(value)) \
        else f"{value:.3f}"
