"""``ImageClassifier``: the AutoKeras three-liner on top of the autonas pipeline.

    clf = ImageClassifier(max_trials=5)
    clf.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=10)
    clf.evaluate(x_test, y_test)

It builds an in-memory dataset, runs the pipeline's search and retrain phases in a run
folder under one clock (``time_limit`` covers the whole ``fit``), and keeps the retrained
network with its normalisation as a plain module (``export_model``). scikit-learn
conventions hold: constructor arguments are stored as given, fitted state ends in ``_``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import shutil
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from .config import RunConfig
from .data import ImageData, Normalizer, split_indices
from .data.folder import RESIZE_MODES
from .data.inputs import as_labels, encode_fit_labels, encode_labels, label_key, read_inputs
from .data.validate import validate_arrays
from .errors import AutonasError, ConfigError, DataError
from .export.wrap import ImageModel, unit_scale
from .pipeline import (
    RunInterrupted,
    build_spec,
    execute,
    load_model,
    read_architecture,
    write_architecture,
)
from .run import RunDir, get_logger
from .spaces import BuildSpec, available_spaces, make_space
from .strategies import available_strategies, make_strategy
from .training.budget import Deadline, parse_duration
from .training.device import resolve_device
from .training.metrics import classification_metrics
from .training.trainer import TrainConfig, fit

OBJECTIVES = {"val_auc": "auc", "val_accuracy": "accuracy", "val_loss": "loss",
              "auc": "auc", "accuracy": "accuracy", "loss": "loss"}
LOSSES = {"auto": "ce", "ce": "ce", "cross_entropy": "ce", "categorical_crossentropy": "ce",
          "focal": "focal"}
MULTI_TRIAL_PREFERENCE = ("evolution", "tpe", "random")
"""strategy='auto' with max_trials: the first of these that is registered."""
ONE_SHOT_DEFAULT = "darts"
MULTI_TRIAL_SPACE = "medmnist-cnn"
"""search_space='auto' for a multi-trial strategy, when registered: a small CNN space whose
candidates train in seconds (the DARTS cell space otherwise)."""
FINAL_FIT_SHARE = 0.35
"""With final_fit, the share of the time limit kept for refitting on train + validation."""
PREDICT_BATCH = 256
STATE_FILE = "classifier.json"


def _finish_reserve(seconds: float) -> float:
    """Time kept after the pipeline for loading the model and writing results."""
    return min(5.0, 0.5 + 0.02 * seconds)


class ImageClassifier(ClassifierMixin, BaseEstimator):
    """Search, retrain and serve an image classifier within a time limit.

    Parameters (stored unmodified; see :meth:`fit` for what they become):

    max_trials: architectures a multi-trial search may try; with ``strategy='auto'`` giving
        it selects a multi-trial strategy (else one-shot DARTS).
    time_limit: wall-clock limit of ``fit`` as a whole, seconds or ``'10m'``-style text
        (None: no limit; then give ``epochs`` and ``max_trials``).
    strategy, search_space: registered names (``autonas strategies`` / ``autonas spaces``)
        or ``'auto'``.
    objective: ``'val_auc'``, ``'val_accuracy'`` or ``'val_loss'``: selects the best
        retraining epoch (and the best trial, for multi-trial strategies).
    loss: ``'auto'`` (cross-entropy), ``'ce'`` or ``'focal'``.
    class_weight: None, ``'balanced'`` or a dict {label: weight} (missing labels weigh 1).
    seed, device: the random seed; ``'auto'``, ``'cpu'`` or ``'cuda'``.
    directory: the run folder (None: a temporary one, deleted with the classifier).
        ``overwrite=False`` on a folder holding an earlier fit of the same data continues
        it (a finished one is loaded as is); ``overwrite=True`` starts afresh.
    final_fit: after selecting the epoch count on the validation split, train once more
        on train + validation for that many epochs (takes ~35% of the time limit).
    image_size: side of the square images files / PIL images are resized to (None: keep
        their size when they all share one, else 64). Arrays are used at their size.
    resize: ``'crop'`` (centre square) or ``'pad'`` for files / PIL images.
    search_options, space_options, network, train_options: advanced options, the
        ``search``, ``space_options``, ``network`` and ``train`` sections of a run config.
    verbose: log progress to the console.
    """

    def __init__(self, max_trials: int | None = None, time_limit: float | str | None = "10m",
                 strategy: str = "auto", search_space: str = "auto",
                 objective: str = "val_auc", loss: str = "auto",
                 class_weight: str | dict | None = None, seed: int = 0,
                 directory: str | Path | None = None, overwrite: bool = False,
                 device: str = "auto", *, final_fit: bool = False,
                 image_size: int | None = None, resize: str = "crop",
                 search_options: dict | None = None, space_options: dict | None = None,
                 network: dict | None = None, train_options: dict | None = None,
                 verbose: bool = True) -> None:
        self.max_trials = max_trials
        self.time_limit = time_limit
        self.strategy = strategy
        self.search_space = search_space
        self.objective = objective
        self.loss = loss
        self.class_weight = class_weight
        self.seed = seed
        self.directory = directory
        self.overwrite = overwrite
        self.device = device
        self.final_fit = final_fit
        self.image_size = image_size
        self.resize = resize
        self.search_options = search_options
        self.space_options = space_options
        self.network = network
        self.train_options = train_options
        self.verbose = verbose

    # ------------------------------------------------------------------------------ fit
    def fit(self, x: Any, y: Any = None, validation_data: tuple[Any, Any] | None = None,
            validation_split: float = 0.15, epochs: int | None = None) -> ImageClassifier:
        """Search an architecture and retrain it on ``x, y`` within ``time_limit``.

        ``x``: numpy array or tensor (N,H,W), (N,H,W,C) or (N,C,H,W), uint8 or float; a
        torch Dataset of (image, label) items; or a list of PIL images or file paths.
        ``y``: one label per image, ints or strings (``classes_`` keeps them sorted).
        Without ``validation_data``, a stratified ``validation_split`` of ``x`` is held out.
        ``epochs``: retraining epochs (None: as many as the time limit allows).
        """
        started = time.monotonic()
        limit = parse_duration(self.time_limit)
        if limit is None and self.max_trials is None and epochs is None:
            get_logger().warning("no time_limit, max_trials or epochs: fit runs until the "
                                 "strategy's own epoch counts end")
        if self.verbose:
            from .ui import setup_console_logging

            setup_console_logging()
        images, labels, spec = read_inputs(x, y, fitting=True, image_size=self.image_size,
                                             resize=self.resize)
        classes, y_idx = encode_fit_labels(labels)
        if validation_data is not None:
            if len(validation_data) != 2:
                raise DataError("validation_data must be a pair (x_val, y_val)")
            val_images, val_labels, _ = read_inputs(*validation_data, fitting=False, spec=spec)
            train = (images, torch.as_tensor(y_idx))
            val = (val_images, torch.as_tensor(encode_labels(val_labels, classes)))
        else:
            if not 0.0 < validation_split < 1.0:
                raise ConfigError(f"validation_split must be between 0 and 1, got "
                                  f"{validation_split}; or pass validation_data")
            keep, held = split_indices(torch.as_tensor(y_idx), validation_split, seed=self.seed)
            if len(held) == 0:
                raise DataError("too few images to hold out a validation split; pass "
                                "validation_data or more images")
            yt = torch.as_tensor(y_idx)
            train, val = (images[keep], yt[keep]), (images[held], yt[held])
        data = self._dataset(train, val, classes)
        device = resolve_device(self.device)
        cfg = self._config(data, classes, epochs, limit)

        self.classes_ = classes
        self.input_spec_ = spec
        self.device_ = device
        self.failures_: list[dict[str, Any]] = []
        self.interrupted_ = False
        deadline = Deadline(None if limit is None else started + limit)
        run, resume = self._open_run(data)
        self.run_dir_ = run.path
        finish = 0.0 if limit is None else _finish_reserve(limit)
        pipeline_end = deadline if limit is None else Deadline(
            deadline.at - finish - (FINAL_FIT_SHARE * limit if self.final_fit else 0.0))
        if resume and run.exists("config.yaml"):
            stored = RunConfig.from_dict(run.read_yaml("config.yaml"))
            stored.device = cfg.device
            cfg = stored  # continue the run as it was configured
        if resume and self._finished(run):
            get_logger().info("%s holds a finished fit of this data: loading it", run.path)
        else:
            run.write_json(STATE_FILE, self._state(data, cfg, fitted=False))
            self._run_pipeline(cfg, run, data, pipeline_end, resume)
        self._load_run(run, cfg)
        if self.final_fit and not self.interrupted_ and "final_fit" not in self.model_meta_:
            self._final_fit(cfg, run, data, Deadline(None if deadline.at is None
                                                     else deadline.at - finish))
        run.write_json(STATE_FILE, self._state(data, cfg, fitted=True))
        self.fit_seconds_ = time.monotonic() - started
        return self

    def _run_pipeline(self, cfg: RunConfig, run: RunDir, data: ImageData, end: Deadline,
                      resume: bool) -> None:
        """Search + retrain; a failing search falls back to its best-so-far architecture,
        Ctrl-C to the best epoch so far (``interrupted_``)."""
        log = get_logger()
        phases = ("search", "retrain")
        try:
            try:
                execute(cfg, run, phases, resume=resume, data=data,
                        budget_seconds=_seconds_left(end))
            except (AutonasError, RunInterrupted, KeyboardInterrupt):
                raise
            except Exception as exc:
                if run.phase_state("search") != "failed":
                    raise
                arch = self._fallback_architecture(cfg, run, exc)
                execute(cfg, run, ("retrain",), resume=True, arch=arch, data=data,
                        budget_seconds=_seconds_left(end))
        except (RunInterrupted, KeyboardInterrupt):
            how = ("pass directory=... to be able to continue an interrupted fit"
                   if self.directory is None else
                   f"fit again with directory={str(run.path)!r} and overwrite=False to "
                   "continue")
            if not self._best_so_far(cfg, run, data):
                raise KeyboardInterrupt(f"fit interrupted before any network finished "
                                        f"training; {how}") from None
            message = f"fit interrupted: using the best network trained so far; {how}"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            log.warning(message)
            self.interrupted_ = True

    def _fallback_architecture(self, cfg: RunConfig, run: RunDir, exc: Exception
                               ) -> dict[str, Any]:
        """The architecture a failed search had reached (a multi-trial search's best
        finished trial, a one-shot search's last recorded epoch), or a random one when it
        failed before recording any."""
        from .trials.search import TRIALS_FILE, best_finished

        space = make_space(cfg.space, **cfg.space_options)
        arch, source = None, "random (the search failed before its first epoch)"
        best = best_finished(run.read_jsonl(TRIALS_FILE), cfg.search)
        if best is not None:  # a multi-trial search: its best finished trial
            arch, source = best["arch"], f"search trial {best['number']} (best finished)"
        for row in reversed([] if arch is not None else
                            run.read_jsonl("search/history.jsonl")):
            candidate = row.get("architecture") or row.get("genotype") or row.get("arch")
            if candidate is not None:
                arch, source = candidate, f"search epoch {row.get('epoch', '?')}"
                break
        if arch is None:
            arch = space.sample(random.Random(cfg.seed))
        arch = space.validate(arch)
        failure = {"phase": "search", "error": f"{type(exc).__name__}: {exc}",
                   "fallback": source}
        self.failures_.append(failure)
        run.append_jsonl("failures.jsonl", failure)
        message = f"the search failed ({failure['error']}); retraining the architecture of {source}"
        warnings.warn(message, RuntimeWarning, stacklevel=4)
        get_logger().warning(message)
        write_architecture(run, cfg, space, arch, strategy=cfg.strategy, seed=cfg.seed,
                           fallback=source)
        return arch

    def _best_so_far(self, cfg: RunConfig, run: RunDir, data: ImageData) -> bool:
        """Make ``model.pt``/``model.json`` hold the best network trained so far."""
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
        })
        return True

    def _final_fit(self, cfg: RunConfig, run: RunDir, data: ImageData, end: Deadline) -> None:
        """Retrain on train + validation for the epoch count validation selected."""
        meta = run.read_json("model.json")
        selected = epochs = int(meta["best_epoch"]) + 1
        both_x = torch.cat([data.train_x, data.val_x])
        both_y = torch.cat([data.train_y, data.val_y])
        times = sorted(r["seconds"] for r in run.read_jsonl("retrain/history.jsonl")
                       if r.get("complete", True) and r.get("seconds"))
        if times and end.at is not None:
            # Fewer epochs when all of them would not fit, so the schedule still completes.
            per_epoch = times[len(times) // 2] * len(both_y) / len(data.train_y)
            epochs = min(epochs, int(0.9 * end.remaining() / per_epoch))
            if epochs < 1:
                warnings.warn("no time left for the final fit: keeping the network trained "
                              "on the training split", RuntimeWarning, stacklevel=3)
                return
        combined = ImageData(name=data.name, train_x=both_x, train_y=both_y, val_x=data.val_x,
                             val_y=data.val_y, test_x=data.test_x, test_y=data.test_y,
                             class_names=data.class_names, task=data.task, hflip=data.hflip,
                             vflip=data.vflip)
        space = make_space(meta["space"], **meta["space_options"])
        model = space.build(meta["arch"], BuildSpec(**meta["build"])).to(self.device_)
        normalizer = Normalizer.fit(both_x)
        train = TrainConfig.from_dict({**asdict(cfg.train), "epochs": epochs})
        try:
            result = fit(model, combined, train, deadline=end, device=self.device_,
                         seed=cfg.seed, run=run, prefix="final_fit", normalizer=normalizer)
        except KeyboardInterrupt:
            warnings.warn("final fit interrupted: keeping the network trained on the "
                          "training split", RuntimeWarning, stacklevel=3)
            return
        if result.state_dict is None or result.epochs < epochs:
            warnings.warn(f"the time limit cut the final fit after {result.epochs} of {epochs} "
                          "epochs: keeping the network trained on the training split",
                          RuntimeWarning, stacklevel=3)
            return
        run.save_state("model.pt", result.state_dict)
        run.write_json("model.json", {**meta, "normalizer": normalizer.to_dict(),
                                      "final_fit": {"epochs": epochs,
                                                    "selected_epochs": selected,
                                                    "images": len(both_y)}})
        self._load_run(run, cfg)

    # -------------------------------------------------------------------- configuration
    def _config(self, data: ImageData, classes: np.ndarray, epochs: int | None,
                limit: float | None) -> RunConfig:
        objective = OBJECTIVES.get(str(self.objective))
        if objective is None:
            raise ConfigError(f"objective must be one of val_auc, val_accuracy, val_loss; got "
                              f"{self.objective!r}")
        loss = LOSSES.get(str(self.loss))
        if loss is None:
            raise ConfigError(f"loss must be one of {', '.join(LOSSES)}; got {self.loss!r}")
        if self.resize not in RESIZE_MODES:
            raise ConfigError(f"resize must be one of {RESIZE_MODES}, got {self.resize!r}")
        weights = self._class_weights(classes)
        strategy = self._choose_strategy()
        space_name = self._choose_space(strategy)
        space_opts = dict(self.space_options or {})
        space = make_space(space_name, **space_opts)
        known = set(make_strategy(strategy, space).option_names())
        search: dict[str, Any] = {}
        if "max_trials" in known and self.max_trials is not None:
            search["max_trials"] = int(self.max_trials)
        if "objective" in known:
            search["objective"] = objective
        if "loss" in known:
            search["loss"] = loss
        if "class_weights" in known:
            search["class_weights"] = weights
        elif "train" in known:
            search["train"] = {"loss": loss, "class_weights": weights}
        search.update(self.search_options or {})
        train = {"objective": objective, "loss": loss, "class_weights": weights,
                 **(self.train_options or {})}
        if epochs is not None or "epochs" not in train:
            train["epochs"] = epochs  # fit's argument wins over train_options
        return RunConfig.from_dict({
            "dataset": "in-memory", "space": space_name, "space_options": space_opts,
            "strategy": strategy, "search": search, "network": dict(self.network or {}),
            "train": train, "budget": limit, "seed": int(self.seed),
            "device": str(self.device),
        })

    def _choose_strategy(self) -> str:
        if self.strategy != "auto":
            return str(self.strategy)
        if self.max_trials is not None:
            available = available_strategies()
            for name in MULTI_TRIAL_PREFERENCE:
                if name in available:
                    return name
        return ONE_SHOT_DEFAULT

    def _choose_space(self, strategy: str) -> str:
        if self.search_space != "auto":
            return str(self.search_space)
        # A multi-trial strategy has a max_trials option; it trains every candidate, so a
        # space of small networks suits it better than the DARTS cell space.
        if "max_trials" in make_strategy(strategy, None).option_names() and \
                MULTI_TRIAL_SPACE in available_spaces():
            return MULTI_TRIAL_SPACE
        return "darts"

    def _class_weights(self, classes: np.ndarray) -> str | list[float] | None:
        cw = self.class_weight
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
                key = classes[by_text[str(key)]].item()
            if key not in lookup:
                raise ConfigError(f"class_weight names label {label!r}, which is not among the "
                                  f"classes {list(classes)}")
            weights[lookup[key]] = float(w)
        return weights

    # -------------------------------------------------------------------- run folder
    def _open_run(self, data: ImageData) -> tuple[RunDir, bool]:
        """(run folder, whether it continues an earlier fit of the same data)."""
        cleanup = self.__dict__.pop("_cleanup", None)
        if cleanup is not None:
            cleanup()  # a refit replaces the previous temporary run folder
        if self.directory is None:
            path = Path(tempfile.mkdtemp(prefix="autonas-classifier-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, str(path), True)
            return RunDir(path), False
        path = Path(self.directory).expanduser()
        if path.exists() and any(path.iterdir()):
            is_run = any((path / f).exists() for f in ("config.yaml", "status.json", STATE_FILE))
            if not is_run:
                raise ConfigError(f"directory {path} holds files that are not an autonas run; "
                                  "choose an empty or new directory")
            if self.overwrite:
                shutil.rmtree(path)
            else:
                state = json.loads((path / STATE_FILE).read_text()) if (
                    path / STATE_FILE).is_file() else {}
                if state.get("fingerprint") != _fingerprint(data):
                    raise ConfigError(
                        f"directory {path} holds a fit of other data; pass overwrite=True to "
                        "replace it, or another directory")
                return RunDir(path), True
        path.mkdir(parents=True, exist_ok=True)
        return RunDir(path), False

    @staticmethod
    def _finished(run: RunDir) -> bool:
        return run.exists("model.pt") and run.exists("model.json") and \
            run.phase_state("retrain") == "done"

    def _load_run(self, run: RunDir, cfg: RunConfig) -> None:
        network, normalizer, meta = load_model(run, self.device_)
        self._set_model(network, normalizer, meta)
        history = run.read_jsonl("retrain/history.jsonl")
        best = meta.get("best_epoch", -1)
        self.val_metrics_ = history[best]["val"] if 0 <= best < len(history) else {}
        self.strategy_ = cfg.strategy
        self.search_space_ = cfg.space
        meta = {**meta, "input": self.input_spec_, "classes": _classes_json(self.classes_)}
        run.write_json("model.json", meta)
        self.model_meta_ = meta

    def _set_model(self, network: torch.nn.Module, normalizer: Normalizer,
                   meta: dict[str, Any]) -> None:
        unit = unit_scale(getattr(self, "input_spec_", None) or {})
        self.model_ = ImageModel(network, normalizer, meta["build"]["in_channels"],
                                 unit_scale_trained=unit).to(self.device_).eval()
        self.architecture_ = meta["arch"]

    def _state(self, data: ImageData, cfg: RunConfig, fitted: bool) -> dict[str, Any]:
        state = {"fingerprint": _fingerprint(data), "fitted": fitted,
                 "params": _json_params(self.get_params()), "config": cfg.to_dict(),
                 "classes": _classes_json(self.classes_), "input": self.input_spec_,
                 "failures": self.failures_, "interrupted": getattr(self, "interrupted_", False)}
        if fitted:
            state["val_metrics"] = self.val_metrics_
        return state

    def _dataset(self, train: tuple[torch.Tensor, torch.Tensor],
                 val: tuple[torch.Tensor, torch.Tensor], classes: np.ndarray) -> ImageData:
        out, _ = validate_arrays({"train": train, "val": val}, n_classes=len(classes),
                                 where="ImageClassifier")
        x, _ = out["train"]
        empty_x = x.new_zeros((0, *x.shape[1:]))
        return ImageData(
            name="ImageClassifier", train_x=x, train_y=out["train"][1],
            val_x=out["val"][0], val_y=out["val"][1], test_x=empty_x,
            test_y=torch.zeros(0, dtype=torch.int64),
            class_names=[str(c) for c in classes],
            task="binary-class" if len(classes) == 2 else "multi-class",
            info={"source": "ImageClassifier.fit"})

    # -------------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this ImageClassifier is not fitted yet: call fit (or "
                                 "ImageClassifier.load) first")

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of ``classes_``."""
        self._check_fitted()
        images, _, _ = read_inputs(x, None, fitting=False, spec=self.input_spec_)
        outs = []
        with torch.no_grad():
            for start in range(0, len(images), PREDICT_BATCH):
                batch = images[start:start + PREDICT_BATCH].to(self.device_)
                outs.append(self.model_(batch).float().cpu())
        return torch.cat(outs).numpy() if outs else np.zeros((0, len(self.classes_)))

    def score(self, x: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of ``predict(x)`` (labels may be (N,) or (N, 1), like in fit)."""
        from sklearn.metrics import accuracy_score

        pred = self.predict(x)
        return float(accuracy_score(as_labels(y, len(pred)), pred, sample_weight=sample_weight))

    def predict(self, x: Any) -> np.ndarray:
        """Labels, in the form ``y`` had in fit."""
        probs = self.predict_proba(x)
        return self.classes_[probs.argmax(axis=1)]

    def evaluate(self, x: Any, y: Any = None) -> dict[str, float]:
        """{'loss', 'accuracy', 'auc'} on ``x, y`` (AUC-ROC: one-vs-rest macro for more
        than 2 classes; NaN when ``y`` holds a single class)."""
        self._check_fitted()
        images, labels, _ = read_inputs(x, y, fitting=False, spec=self.input_spec_)
        if labels is None:
            raise DataError("evaluate needs labels: pass y, or a Dataset of (image, label) "
                            "items")
        probs = self.predict_proba(images)
        metrics = classification_metrics(encode_labels(labels, self.classes_), probs,
                                         [str(c) for c in self.classes_])
        auc = metrics["auc"]
        return {"loss": metrics["loss"], "accuracy": metrics["accuracy"],
                "auc": float("nan") if auc is None else float(auc)}

    def export_model(self, probabilities: bool = True) -> torch.nn.Module:
        """A plain ``torch.nn.Module`` (CPU, eval mode): raw images as given to ``fit``
        (uint8 or float; (N,H,W), (N,H,W,C) or (N,C,H,W)) in, probabilities (or logits
        with ``probabilities=False``) out. Normalisation is inside."""
        self._check_fitted()
        model = copy.deepcopy(self.model_).cpu().eval()
        model.network = model.network.to(memory_format=torch.contiguous_format)
        model.probabilities = probabilities
        return model

    def summary(self, print_fn: Callable[[str], None] | None = None) -> None:
        """Print the chosen architecture, its size, validation metrics and the run folder."""
        self._check_fitted()
        print_fn = print_fn or print
        meta = self.model_meta_
        space = make_space(meta["space"], **meta["space_options"])
        params = sum(p.numel() for p in self.model_.network.parameters())
        val = self.val_metrics_ or {}
        lines = [
            "ImageClassifier",
            f"  strategy / space: {self.strategy_} / {meta['space']}",
            f"  architecture: {space.describe(meta['arch'])}",
            f"  parameters: {params:,}",
            f"  input: {self.input_spec_['layout']} {self.input_spec_['dtype']}, "
            f"{self.input_spec_['channels']}x{self.input_spec_['height']}x"
            f"{self.input_spec_['width']} (CxHxW)",
            f"  classes: {self.classes_.tolist()}",
            f"  best epoch: {meta.get('best_epoch', -1) + 1} of {meta.get('epochs')}",
            "  validation: " + ", ".join(f"{k} {val[k]:.4f}" for k in ("accuracy", "auc", "loss")
                                         if isinstance(val.get(k), (int, float))),
            f"  run folder: {getattr(self, 'run_dir_', None)}",
        ]
        for failure in getattr(self, "failures_", []):
            lines.append(f"  failed {failure['phase']}: {failure['error']} "
                         f"(fell back to {failure['fallback']})")
        print_fn("\n".join(lines))

    # -------------------------------------------------------------------- persistence
    def save(self, path: str | Path) -> Path:
        """A folder with weights (``model.pt``), the architecture and preprocessing
        (``model.json``) and the classifier's state (``classifier.json``): loadable with
        :meth:`load`, ``autonas export`` and ``autonas predict``."""
        self._check_fitted()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        run = RunDir(out)
        state = {k: v.detach().cpu().clone() for k, v in
                 self.model_.network.state_dict().items()}
        run.save_state("model.pt", state)
        run.write_json("model.json", self.model_meta_)
        run.write_json(STATE_FILE, {
            "fitted": True, "params": _json_params(self.get_params()),
            "classes": _classes_json(self.classes_), "input": self.input_spec_,
            "val_metrics": self.val_metrics_, "strategy": self.strategy_,
            "search_space": self.search_space_, "failures": getattr(self, "failures_", []),
        })
        return out

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> ImageClassifier:
        """A fitted classifier from :meth:`save`'s folder (or a finished ``fit``'s
        ``directory``); weights are read with ``weights_only=True``."""
        run = RunDir(path)
        for name in ("model.pt", "model.json", STATE_FILE):
            if not run.exists(name):
                raise ConfigError(f"{path} has no {name}: pass a folder written by "
                                  "ImageClassifier.save")
        state = run.read_json(STATE_FILE)
        if not state.get("fitted"):
            raise ConfigError(f"{path} holds an unfinished fit; continue it with fit(..., "
                              "directory=that folder, overwrite=False)")
        params = dict(state["params"])
        params["device"] = device
        clf = cls(**params)
        clf.device_ = resolve_device(device)
        network, normalizer, meta = load_model(run, clf.device_)
        clf.classes_ = _classes_from_json(state["classes"])
        clf.input_spec_ = state["input"]
        clf._set_model(network, normalizer, meta)
        clf.model_meta_ = meta
        clf.val_metrics_ = state.get("val_metrics") or {}
        clf.strategy_ = state.get("strategy") or state.get("config", {}).get("strategy")
        clf.search_space_ = state.get("search_space") or meta["space"]
        clf.failures_ = state.get("failures", [])
        clf.run_dir_ = run.path
        return clf

    def __getstate__(self) -> dict[str, Any]:
        # The temporary run folder's finalizer cannot be pickled (nor should a copy own it).
        return {k: v for k, v in self.__dict__.items() if k != "_cleanup"}


# ----------------------------------------------------------------------------- helpers


def _seconds_left(deadline: Deadline) -> float | None:
    if deadline.at is None:
        return None
    left = deadline.remaining()
    if left <= 1.0:
        raise ConfigError("the time limit is used up before the search could start; give "
                          "fit a larger time_limit")
    return left







def _fingerprint(data: ImageData) -> str:
    h = hashlib.sha1()
    for t in (data.train_x, data.train_y, data.val_x, data.val_y):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.contiguous().numpy().tobytes())
    h.update(json.dumps(data.class_names).encode())
    return h.hexdigest()


def _classes_json(classes: np.ndarray) -> dict[str, Any]:
    return {"values": classes.tolist(), "dtype": classes.dtype.str}


def _classes_from_json(d: dict[str, Any]) -> np.ndarray:
    dtype = np.dtype(d["dtype"])
    return np.array(d["values"], dtype=object if dtype.kind == "O" else dtype)


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in params.items():
        out[k] = str(v) if isinstance(v, Path) else v
    return out


__all__ = ["ImageClassifier"]

