"""What a fit keeps when something goes wrong: the architecture a failed search had reached,
and the best network of an interrupted or stopped retraining."""

from __future__ import annotations

import random
import warnings
from dataclasses import asdict, replace
from typing import Any

from ..config import RunConfig
from ..data import ImageData, Normalizer
from ..pipeline import build_spec, read_architecture, tta_flips, write_architecture
from ..run import RunDir, get_logger
from ..spaces import make_space


def fallback_architecture(cfg: RunConfig, run: RunDir, exc: Exception
                          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(architecture, failure record): the architecture a failed search had reached (a
    multi-trial search's best finished trial, a one-shot search's last recorded epoch), or
    a random one when it failed before recording any. The failure goes to
    ``failures.jsonl`` and the architecture to the run folder."""
    from ..trials.search import TRIALS_FILE, best_finished

    space = make_space(cfg.space, **cfg.space_options)
    arch, source = None, "random (the search failed before its first epoch)"
    best = best_finished(run.read_jsonl(TRIALS_FILE), cfg.search)
    if best is not None:  # a multi-trial search: its best finished trial
        arch, source = best["arch"], f"search trial {best['number']} (best finished)"
    for row in reversed([] if arch is not None else run.read_jsonl("search/history.jsonl")):
        candidate = row.get("architecture") or row.get("genotype") or row.get("arch")
        if candidate is not None:
            arch, source = candidate, f"search epoch {row.get('epoch', '?')}"
            break
    if arch is None:
        arch = space.sample(random.Random(cfg.seed))
    arch = space.validate(arch)
    failure = {"phase": "search", "error": f"{type(exc).__name__}: {exc}", "fallback": source}
    run.append_jsonl("failures.jsonl", failure)
    message = f"the search failed ({failure['error']}); retraining the architecture of {source}"
    warnings.warn(message, RuntimeWarning, stacklevel=5)
    get_logger().warning(message)
    write_architecture(run, cfg, space, arch, strategy=cfg.strategy, seed=cfg.seed,
                       fallback=source)
    return arch, failure


def best_so_far(cfg: RunConfig, run: RunDir, data: ImageData) -> bool:
    """Make ``model.pt``/``model.json`` hold the best network trained so far; False when
    no retraining epoch finished."""
    if run.phase_state("retrain") == "done" and run.exists("model.pt"):
        return True
    state = run.load_state("retrain/state.pt")
    if not state or not state.get("best_state"):
        return False
    space = make_space(cfg.space, **cfg.space_options)
    arch = space.validate(read_architecture(run))
    spec = build_spec(cfg, data)
    run.save_state("model.pt", state["best_state"])
    run.write_json("model.json", {
        "space": cfg.space, "space_options": space.options(), "arch": arch,
        "build": asdict(spec), "normalizer": Normalizer.fit(data.train_x).to_dict(),
        "class_names": data.class_names, "task": data.task, "dataset": data.name,
        "params": None, "best_epoch": int(state["best_epoch"]),
        "epochs": int(state["epoch"]) + 1, "planned_epochs": int(state["planned_epochs"]),
        "stopped": "interrupted",
        "tta": tta_flips(cfg, replace(cfg.train, **space.train_overrides(arch)), data),
    })
    return True
