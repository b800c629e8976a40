"""How the ImageClassifier's arguments become a run configuration: objective and loss
names, strategy and space when ``'auto'``, class weights, batch size, epochs and the model
size cap."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..config import RunConfig
from ..data.folder import RESIZE_MODES
from ..data.inputs import label_key
from ..errors import ConfigError
from ..spaces import available_spaces, make_space
from ..strategies import available_strategies, make_strategy

OBJECTIVES = {"val_auc": "auc", "val_accuracy": "accuracy", "val_loss": "loss",
              "auc": "auc", "accuracy": "accuracy", "loss": "loss"}
LOSSES = {"auto": "ce", "ce": "ce", "cross_entropy": "ce", "categorical_crossentropy": "ce",
          "binary_crossentropy": "ce", "focal": "focal", "coral": "coral"}
MULTI_TRIAL_PREFERENCE = ("evolution", "tpe", "random")
"""strategy='auto' with max_trials: the first of these that is registered."""
ONE_SHOT_DEFAULT = "darts"
MULTI_TRIAL_SPACE = "medmnist-cnn"
"""search_space='auto' for a multi-trial strategy, when registered: a small CNN space whose
candidates train in seconds (the DARTS cell space otherwise)."""


def run_config(est: Any, classes: np.ndarray, epochs: int | None, limit: float | None,
               batch_size: int | None = None) -> RunConfig:
    """The run configuration of one ``fit``: the estimator's arguments (``est``, an
    ImageClassifier) mapped onto the search, network and training sections."""
    objective = OBJECTIVES.get(str(est.objective))
    if objective is None:
        raise ConfigError(f"objective must be one of val_auc, val_accuracy, val_loss; got "
                          f"{est.objective!r}")
    loss = LOSSES.get(str(est.loss))
    if loss is None:
        raise ConfigError(f"loss must be one of {', '.join(LOSSES)}; got {est.loss!r}")
    if est.resize not in RESIZE_MODES:
        raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {est.resize!r}")
    weights = class_weights(est.class_weight, classes)
    strategy = choose_strategy(est)
    space_name = choose_space(est, strategy)
    space_opts = dict(est.space_options or {})
    space = make_space(space_name, **space_opts)
    known = set(make_strategy(strategy, space).option_names())
    search: dict[str, Any] = {}
    if "max_trials" in known and est.max_trials is not None:
        search["max_trials"] = int(est.max_trials)
    if "objective" in known:
        search["objective"] = objective
    if "loss" in known:  # a supernet searches with cross-entropy for an ordinal head
        search["loss"] = "ce" if loss == "coral" else loss
    if "class_weights" in known:
        search["class_weights"] = weights
    elif "train" in known:
        search["train"] = {"loss": loss, "class_weights": weights}
    if batch_size is not None:
        if "batch_size" in known:
            search["batch_size"] = int(batch_size)
        if "train" in known:
            search.setdefault("train", {})["batch_size"] = int(batch_size)
    if epochs is not None and "trial_epochs" in known:
        default = make_strategy(strategy, space).options().get("trial_epochs")
        search["trial_epochs"] = min(int(epochs), int(default or epochs))
    if est.max_model_size is not None:
        if int(est.max_model_size) < 1:
            raise ConfigError(f"max_model_size must be a positive parameter count, got "
                              f"{est.max_model_size}")
        if "max_params" in known:
            search["max_params"] = int(est.max_model_size)
    search.update(est.search_options or {})
    train = {"objective": objective, "loss": loss, "class_weights": weights,
             **({"batch_size": int(batch_size)} if batch_size is not None else {}),
             **(est.train_options or {})}
    if epochs is not None or "epochs" not in train:
        train["epochs"] = epochs  # fit's argument wins over train_options
    ensemble = getattr(est, "ensemble", "auto")
    if est.final_fit or est.max_model_size is not None:
        ensemble = 1  # both act on one network (the refit; the size cap)
    return RunConfig.from_dict({
        "dataset": "in-memory", "ensemble": ensemble, "tta": getattr(est, "tta", True),
        "space": space_name,
        "space_options": space_opts,
        "strategy": strategy, "search": search, "network": dict(est.network or {}),
        "train": train, "budget": limit, "seed": int(est.seed),
        "device": str(est.device),
    })


def choose_strategy(est: Any) -> str:
    """``strategy='auto'``: multi-trial with ``max_trials``, else one-shot DARTS."""
    if est.strategy != "auto":
        return str(est.strategy)
    if est.max_trials is not None:
        available = available_strategies()
        for name in MULTI_TRIAL_PREFERENCE:
            if name in available:
                return name
    return ONE_SHOT_DEFAULT


def choose_space(est: Any, strategy: str) -> str:
    """``search_space='auto'``: small CNNs for a multi-trial strategy, else DARTS cells."""
    if est.search_space != "auto":
        return str(est.search_space)
    # A multi-trial strategy has a max_trials option; it trains every candidate, so a
    # space of small networks suits it better than the DARTS cell space.
    if "max_trials" in make_strategy(strategy, None).option_names() and \
            MULTI_TRIAL_SPACE in available_spaces():
        return MULTI_TRIAL_SPACE
    return "darts"


def class_weights(spec: Any, classes: np.ndarray) -> str | list[float] | None:
    """``class_weight`` (None, 'balanced' or {label: weight}) as a training option."""
    cw = spec
    if cw is None or (isinstance(cw, str) and cw.lower() == "none"):
        return None
    if isinstance(cw, str):
        if cw.lower() in ("balanced", "auto"):
            return "balanced"
        raise ConfigError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")
    if not isinstance(cw, dict):
        raise ConfigError(f"class_weight must be None, 'balanced' or a dict {{label: "
                          f"weight}}, got {type(cw).__name__}")
    lookup = {label_key(c): i for i, c in enumerate(classes)}
    by_text = {str(c): i for i, c in enumerate(classes)}  # keys that went through JSON
    weights = [1.0] * len(classes)
    for label, w in cw.items():
        key = label_key(label)
        if key not in lookup and str(key) in by_text:
            key = label_key(classes[by_text[str(key)]])
        if key not in lookup:
            raise ConfigError(f"class_weight names label {label!r}, which is not among the "
                              f"classes {list(classes)}")
        weights[lookup[key]] = float(w)
    return weights
