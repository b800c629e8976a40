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
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin

from .classifier.callbacks import CallbackStop, console_quiet, epoch_hook, verbosity
from .classifier.final_fit import final_fit
from .classifier.inputs import DEFAULT_VALIDATION_SPLIT, SINGLE, read_fit_inputs
from .classifier.label_sets import decode_label_sets, encode_label_sets
from .classifier.options import run_config
from .classifier.recovery import best_so_far, fallback_architecture
from .classifier.run_folder import (
    STATE_FILE,
    classes_from_json,
    classes_json,
    fingerprint,
    finished,
    json_params,
    open_run,
    saved_folder,
    seconds_left,
)
from .classifier.size_cap import search_within_size
from .config import RunConfig
from .data import ImageData, Normalizer
from .data.inputs import as_labels, encode_labels, read_inputs
from .errors import AutonasError, ConfigError, DataError
from .export.wrap import ImageModel, unit_scale
from .pipeline import RunInterrupted, execute, load_model
from .run import RunDir, get_logger
from .spaces import make_space
from .spaces.ensemble import unwrap
from .training.budget import Deadline, parse_duration
from .training.device import resolve_device
from .training.loop import predict_proba as predict_network
from .training.metrics import choose_thresholds, classification_metrics

FINAL_FIT_SHARE = 0.35
"""With final_fit, the share of the time limit kept for refitting on train + validation."""
PREDICT_BATCH = 256


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
    directory, project_name: the run folder is ``directory/project_name`` (as AutoKeras
        lays out its folders; None: a temporary one, deleted with the classifier).
        ``overwrite=False`` on a folder holding an earlier fit of the same data continues
        it (a finished one is loaded as is); ``overwrite=True`` starts afresh.
    num_classes: the number of classes (or labels) expected in ``y``; a mismatch is an
        error rather than a silently different model. None: as found.
    multi_label: True for several labels per image (``y`` (N, L) 0/1 or a list of class
        names per image; sigmoid outputs, per-label thresholds chosen on validation);
        None: detected from ``y``.
    max_model_size: a cap on the network's parameters: a constraint of a multi-trial
        search (``max_params``, on its trial networks); after any search the retrained
        network is narrowed (fewer channels) until it fits, else fit stops with an error.
    final_fit: after selecting the epoch count on the validation split, train once more
        on train + validation for that many epochs (takes ~35% of the time limit; the
        final model is then that one network).
    ensemble: networks whose probabilities the final model averages: ``'auto'`` trains
        the chosen architecture again with other seeds while the time limit leaves room
        (up to 5 networks; one without a time limit), a number that many, 1 one.
    tta: test-time augmentation: the final model averages its probabilities over the
        image and the flips its training used (BreastMNIST: left-right; none for chest
        X-rays, whose flips change the anatomy, so none is averaged there).
    image_size: side of the square images files / PIL images are resized to (None: keep
        their size when they all share one, else 64). Arrays are used at their size.
    resize: ``'crop'`` (centre square) or ``'pad'`` for files / PIL images.
    search_options, space_options, network, train_options: advanced options, the
        ``search``, ``space_options``, ``network`` and ``train`` sections of a run config.
    verbose: 1 logs progress to the console, 0 is silent (warnings only); fit's own
        ``verbose`` overrides it for one call.
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
                 verbose: int | bool = 1, num_classes: int | None = None,
                 multi_label: bool | None = None, project_name: str = "image_classifier",
                 max_model_size: int | None = None, ensemble: int | str = "auto",
                 tta: bool = True) -> None:
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
        self.num_classes = num_classes
        self.multi_label = multi_label
        self.project_name = project_name
        self.max_model_size = max_model_size
        self.ensemble = ensemble
        self.tta = tta

    # ------------------------------------------------------------------------------ fit
    def fit(self, x: Any, y: Any = None, validation_data: tuple[Any, Any] | None = None,
            validation_split: float = DEFAULT_VALIDATION_SPLIT, epochs: int | None = None,
            batch_size: int | None = None, callbacks: Any = None,
            verbose: int | bool | None = None) -> ImageClassifier:
        """Search an architecture and retrain it on ``x, y`` within ``time_limit``.

        ``x``: numpy array or tensor (N,H,W), (N,H,W,C) or (N,C,H,W), uint8 or float; a
        torch Dataset of (image, label) items; or a list of PIL images or file paths.
        ``y``: one label per image, ints or strings (``classes_`` keeps them sorted); for
        multi-label data (N, L) 0/1 columns or a list of class names per image.
        Without ``validation_data``, a stratified ``validation_split`` (0.2, as AutoKeras)
        of ``x`` is held out.
        ``epochs``: as in AutoKeras, the training epochs of every candidate and of the
        final network: a multi-trial search trains each trial for at most ``epochs``
        (its ``trial_epochs`` when smaller), and the retraining runs ``epochs`` (None: as
        many as the time limit allows). A one-shot search's supernet epochs are its own.
        ``batch_size``: of the search and of every training (None: the defaults).
        ``callbacks``: objects with ``on_epoch_end(epoch, logs)`` or callables
        ``f(epoch, logs)``, called after every retraining epoch; one that raises stops the
        fit, keeping the best network so far (``stopped_by_`` says why).
        ``verbose``: 0 silent, 1 progress (None: the constructor's).
        """
        quiet = verbosity(self.verbose if verbose is None else verbose) == 0
        with console_quiet(quiet):
            return self._fit(x, y, validation_data, validation_split, epochs, batch_size,
                             epoch_hook(callbacks), quiet)

    def _fit(self, x: Any, y: Any, validation_data: tuple[Any, Any] | None,
             validation_split: float, epochs: int | None, batch_size: int | None,
             on_epoch: Callable[[int, dict[str, Any]], None] | None,
             quiet: bool) -> ImageClassifier:
        started = time.monotonic()
        limit = parse_duration(self.time_limit)
        if limit is None and self.max_trials is None and epochs is None:
            get_logger().warning("no time_limit, max_trials or epochs: fit runs until the "
                                 "strategy's own epoch counts end")
        if batch_size is not None and int(batch_size) < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if not quiet:
            from .ui import setup_console_logging

            setup_console_logging()
        inputs = read_fit_inputs(x, y, validation_data, validation_split,
                                 multi_label=self.multi_label, num_classes=self.num_classes,
                                 image_size=self.image_size, resize=self.resize,
                                 seed=self.seed)
        data, classes, multi_label = inputs.data, inputs.classes, inputs.multi_label
        device = resolve_device(self.device)
        cfg = run_config(self, classes, epochs, limit, batch_size)

        self.classes_ = classes
        self.multi_label_ = multi_label
        self.label_kind_ = inputs.label_kind
        self.input_spec_ = inputs.spec
        self.device_ = device
        self.failures_: list[dict[str, Any]] = []
        self.interrupted_ = False
        self.stopped_by_: str | None = None
        deadline = Deadline(None if limit is None else started + limit)
        run, resume = open_run(self, self.directory, self.project_name, self.overwrite, data)
        self.run_dir_ = run.path
        finish = 0.0 if limit is None else _finish_reserve(limit)
        pipeline_end = deadline if limit is None else Deadline(
            deadline.at - finish - (FINAL_FIT_SHARE * limit if self.final_fit else 0.0))
        if resume and run.exists("config.yaml"):
            stored = RunConfig.from_dict(run.read_yaml("config.yaml"))
            stored.device = cfg.device
            cfg = stored  # continue the run as it was configured
        if resume and finished(run):
            get_logger().info("%s holds a finished fit of this data: loading it", run.path)
        else:
            run.write_json(STATE_FILE, self._state(data, cfg, fitted=False))
            self._run_pipeline(cfg, run, data, pipeline_end, resume, on_epoch)
        self._load_run(run, cfg)
        if multi_label and "thresholds" not in self.model_meta_:
            self._choose_thresholds(run, data)
        if self.final_fit and not self.interrupted_ and self.stopped_by_ is None \
                and "final_fit" not in self.model_meta_:
            replaced, stopped = final_fit(cfg, run, data, Deadline(
                None if deadline.at is None else deadline.at - finish), device, on_epoch)
            self.stopped_by_ = stopped
            if replaced:
                self._load_run(run, cfg)
        run.write_json(STATE_FILE, self._state(data, cfg, fitted=True))
        self.fit_seconds_ = time.monotonic() - started
        return self

    def _choose_thresholds(self, run: RunDir, data: ImageData) -> None:
        """Per-label decision thresholds on the validation split, kept with the model."""
        probs = predict_network(self.model_.network, data.val_x,
                                normalizer=_normalizer_of(self.model_), device=self.device_,
                                head="sigmoid")
        thresholds = choose_thresholds(data.val_y.numpy(), probs)
        self.model_meta_ = {**self.model_meta_, "thresholds": thresholds}
        run.write_json("model.json", self.model_meta_)

    def _run_pipeline(self, cfg: RunConfig, run: RunDir, data: ImageData, end: Deadline,
                      resume: bool, on_epoch: Callable[[int, dict[str, Any]], None] | None = None
                      ) -> None:
        """Search + retrain; a failing search falls back to its best-so-far architecture,
        Ctrl-C to the best epoch so far (``interrupted_``), a raising callback likewise
        (``stopped_by_``)."""
        log = get_logger()
        phases = ("search", "retrain", "ensemble")
        try:
            try:
                if self.max_model_size is not None:
                    search_within_size(cfg, run, data, end, resume, int(self.max_model_size),
                                       on_epoch)
                else:
                    execute(cfg, run, phases, resume=resume, data=data,
                            budget_seconds=seconds_left(end), on_epoch=on_epoch)
            except (AutonasError, RunInterrupted, KeyboardInterrupt, CallbackStop):
                raise
            except Exception as exc:
                if run.phase_state("search") != "failed":
                    raise
                arch, failure = fallback_architecture(cfg, run, exc)
                self.failures_.append(failure)
                execute(cfg, run, ("retrain",), resume=True, arch=arch, data=data,
                        budget_seconds=seconds_left(end), on_epoch=on_epoch)
        except CallbackStop as stop:
            if not best_so_far(cfg, run, data):
                raise stop.error from None
            self.stopped_by_ = str(stop)
            message = f"a callback stopped the fit ({stop}): using the best network so far"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            log.warning(message)
        except (RunInterrupted, KeyboardInterrupt):
            how = ("pass directory=... to be able to continue an interrupted fit"
                   if self.directory is None else
                   f"fit again with directory={str(run.path)!r} and overwrite=False to "
                   "continue")
            if not best_so_far(cfg, run, data):
                raise KeyboardInterrupt(f"fit interrupted before any network finished "
                                        f"training; {how}") from None
            message = f"fit interrupted: using the best network trained so far; {how}"
            warnings.warn(message, RuntimeWarning, stacklevel=3)
            log.warning(message)
            self.interrupted_ = True

    # -------------------------------------------------------------------- run folder
    def _load_run(self, run: RunDir, cfg: RunConfig) -> None:
        network, normalizer, meta = load_model(run, self.device_)
        self._set_model(network, normalizer, meta)
        self.val_metrics_ = meta.get("ensemble_val") or run.epoch_val(
            int(meta.get("best_epoch", -1))) or {}
        self.strategy_ = cfg.strategy
        self.search_space_ = cfg.space
        meta = {**meta, "input": self.input_spec_, "classes": classes_json(self.classes_),
                "label_kind": self.label_kind_}
        run.write_json("model.json", meta)
        self.model_meta_ = meta

    def _set_model(self, network: torch.nn.Module, normalizer: Normalizer,
                   meta: dict[str, Any]) -> None:
        unit = unit_scale(getattr(self, "input_spec_", None) or {})
        self.model_ = ImageModel(network, normalizer, meta["build"]["in_channels"],
                                 unit_scale_trained=unit,
                                 head=meta["build"].get("head", "softmax")).to(
            self.device_).eval()
        self.architecture_ = meta["arch"]

    def _state(self, data: ImageData, cfg: RunConfig, fitted: bool) -> dict[str, Any]:
        state = {"fingerprint": fingerprint(data), "fitted": fitted,
                 "params": json_params(self.get_params()), "config": cfg.to_dict(),
                 "classes": classes_json(self.classes_), "input": self.input_spec_,
                 "label_kind": self.label_kind_, "failures": self.failures_,
                 "interrupted": getattr(self, "interrupted_", False),
                 "stopped_by": getattr(self, "stopped_by_", None)}
        if fitted:
            state["val_metrics"] = self.val_metrics_
        return state

    # -------------------------------------------------------------------- inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this ImageClassifier is not fitted yet: call fit (or "
                                 "ImageClassifier.load) first")

    def predict_proba(self, x: Any) -> np.ndarray:
        """Class probabilities (N, n_classes), columns in the order of ``classes_``; for a
        multi-label model, independent per-label probabilities (N, n_labels)."""
        self._check_fitted()
        images, _, _ = read_inputs(x, None, fitting=False, spec=self.input_spec_)
        outs = []
        with torch.no_grad():
            for start in range(0, len(images), PREDICT_BATCH):
                batch = images[start:start + PREDICT_BATCH].to(self.device_)
                outs.append(self.model_(batch).float().cpu())
        return torch.cat(outs).numpy() if outs else np.zeros((0, len(self.classes_)))

    def score(self, x: Any, y: Any, sample_weight: Any = None) -> float:
        """Accuracy of ``predict(x)`` (labels may be (N,) or (N, 1), like in fit; for a
        multi-label model, the share of labels predicted right)."""
        from sklearn.metrics import accuracy_score

        if self._is_fitted_multi_label():
            probs = self.predict_proba(x)
            truth = encode_label_sets(y, self.classes_, self.label_kind_, len(probs))
            right = (self._decide(probs) == truth).mean(axis=1)
            return float(np.average(right, weights=sample_weight))
        pred = self.predict(x)
        return float(accuracy_score(as_labels(y, len(pred)), pred, sample_weight=sample_weight))

    def predict(self, x: Any) -> Any:
        """Labels, in the form ``y`` had in fit; for a multi-label model the label sets: an
        (N, L) 0/1 array, or a list of class names per image, using the per-label
        thresholds chosen on the validation split (``thresholds_``)."""
        probs = self.predict_proba(x)
        if self._is_fitted_multi_label():
            return decode_label_sets(self._decide(probs), self.classes_, self.label_kind_)
        return self.classes_[probs.argmax(axis=1)]

    @property
    def thresholds_(self) -> list[float] | None:
        """Per-label decision thresholds of a multi-label model (None otherwise)."""
        self._check_fitted()
        if not self._is_fitted_multi_label():
            return None
        return list(self.model_meta_.get("thresholds") or [0.5] * len(self.classes_))

    def _decide(self, probs: np.ndarray) -> np.ndarray:
        return (probs >= np.asarray(self.thresholds_)[None, :]).astype(np.int64)

    def _is_fitted_multi_label(self) -> bool:
        return getattr(self, "label_kind_", SINGLE) != "single"

    def evaluate(self, x: Any, y: Any = None, return_dict: bool = False
                 ) -> list[float] | dict[str, float]:
        """``[loss, accuracy]`` on ``x, y``, as Keras' ``evaluate`` returns them; with
        ``return_dict=True`` the dict ``{'loss', 'accuracy', 'auc'}`` (AUC-ROC: one-vs-rest
        macro for more than 2 classes, the mean over labels for multi-label data, whose
        accuracy is the share of labels right at the validation thresholds; NaN when
        undefined)."""
        self._check_fitted()
        multi_label = self._is_fitted_multi_label()
        images, labels, _ = read_inputs(x, None if multi_label else y, fitting=False,
                                        spec=self.input_spec_)
        if y is None if multi_label else labels is None:
            raise DataError("evaluate needs labels: pass y, or a Dataset of (image, label) "
                            "items")
        probs = self.predict_proba(images)
        names = [str(c) for c in self.classes_]
        if multi_label:
            truth = encode_label_sets(y, self.classes_, self.label_kind_, len(probs))
            metrics = classification_metrics(truth, probs, names, thresholds=self.thresholds_)
        else:
            metrics = classification_metrics(encode_labels(labels, self.classes_), probs, names,
                                             ordinal=self.model_.head == "coral")
        auc = metrics["auc"]
        result = {"loss": metrics["loss"], "accuracy": metrics["accuracy"],
                  "auc": float("nan") if auc is None else float(auc)}
        if "mae" in metrics:
            result["mae"] = metrics["mae"]
        if return_dict:
            return result
        return [result["loss"], result["accuracy"]]

    def export_model(self, probabilities: bool = True) -> torch.nn.Module:
        """A plain ``torch.nn.Module`` (CPU, eval mode): raw images as given to ``fit``
        (uint8 or float; (N,H,W), (N,H,W,C) or (N,C,H,W)) in, probabilities (or logits
        with ``probabilities=False``) out: softmax over classes, or per-label sigmoid
        probabilities for a multi-label model. Normalisation is inside."""
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
            *([f"  ensemble: {len(meta['ensemble'])} networks, probabilities averaged "
               "(the architecture above is the first)"] if meta.get("ensemble") else []),
            *([f"  test-time augmentation: probabilities averaged over the image and its "
               f"{' and '.join(meta['tta'])}"] if meta.get("tta") else []),
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
                 unwrap(self.model_.network).state_dict().items()}
        run.save_state("model.pt", state)
        run.write_json("model.json", self.model_meta_)
        run.write_json(STATE_FILE, {
            "fitted": True, "params": json_params(self.get_params()),
            "classes": classes_json(self.classes_), "input": self.input_spec_,
            "label_kind": getattr(self, "label_kind_", SINGLE),
            "val_metrics": self.val_metrics_, "strategy": self.strategy_,
            "search_space": self.search_space_, "failures": getattr(self, "failures_", []),
        })
        return out

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> ImageClassifier:
        """A fitted classifier from :meth:`save`'s folder (or a finished ``fit``'s
        ``directory``); weights are read with ``weights_only=True``."""
        path = saved_folder(path)  # a fit's directory holds its project folder
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
        clf.classes_ = classes_from_json(state["classes"])
        clf.input_spec_ = state["input"]
        clf.label_kind_ = state.get("label_kind", SINGLE)
        clf.multi_label_ = clf.label_kind_ != SINGLE
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


def _normalizer_of(model: ImageModel) -> Normalizer:
    return Normalizer(model.mean.flatten().cpu(), model.std.flatten().cpu())


__all__ = ["ImageClassifier"]

