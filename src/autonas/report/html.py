"""Assemble one self-contained HTML page from a loaded run (and a comparison of several).

Every section is built by its own function that catches its own failures, so a damaged or
missing piece turns into "not available" in that section, never into a failed report.
Strings from the run folder are escaped by Jinja2's autoescaping; only markup this package
generates (SVG figures, the slider's JSON) is marked safe.
"""

from __future__ import annotations

import json
import math
import os
import textwrap
import warnings
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import yaml
from markupsafe import Markup

from .. import __version__
from ..run import get_logger
from . import cells, plots
from .load import CELL_TYPES, RunData
from .samples import samples_by_class
from .stats import bootstrap_ci
from .template import COMPARE, CSS, REPORT, SLIDER_JS

MIN_TRIALS_FOR_IMPORTANCE = 4


def fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "n/a" if value is None else str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def seconds(value: float | None) -> str:
    if value is None:
        return "n/a"
    value = float(value)
    if value < 120:
        return f"{value:.0f} s"
    minutes, secs = divmod(round(value), 60)
    if minutes < 120:
        return f"{minutes} min {secs:02d} s" if secs else f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def si(value: Any, unit: str = "") -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "n/a"
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:g} {unit}".strip()


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.ChainableUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.globals.update(fmt=fmt, seconds=seconds)
    return env


def _safe(section: str, build: Callable[[], Any], default: Any) -> Any:
    """Run one section's builder; a failure is logged and the section shows as absent."""
    try:
        return build()
    except Exception as exc:
        get_logger().warning("report: %s section not available (%s: %s)", section,
                             type(exc).__name__, exc)
        return default


def _svg(markup: str | None) -> Markup | None:
    return Markup(markup) if markup else None


def _script_json(obj: Any) -> Markup:
    """JSON that cannot end the <script> element it sits in, whatever strings it holds."""
    text = json.dumps(obj, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


# ----------------------------------------------------------------------------- sections


def _data_section(run: RunData) -> dict[str, Any]:
    data = run.data or {}
    names = run.class_names
    splits = []
    for split, size in (data.get("sizes") or {}).items():
        counts = list((data.get("class_counts") or {}).get(split) or [])
        total = sum(counts) or 1
        splits.append({"name": split, "size": size,
                       "counts": [(n, n / total) for n in counts]})
    samples = samples_by_class(run.samples, names)
    n_classes = len(names) or int(data.get("n_classes") or 0)
    note = (f"Sample images of {len(samples)} of the {n_classes} classes, evenly spread."
            if 0 < len(samples) < n_classes else "")
    return {"splits": splits, "class_names": names, "samples": samples, "samples_note": note}


def _search_section(run: RunData) -> dict[str, Any]:
    out: dict[str, Any] = {"result": run.search_result, "seconds": run.phase_seconds("search"),
                           "kind": None}
    if run.trials:
        out.update(_trials_section(run))
    elif run.search_history or run.alphas:
        out["kind"] = "one-shot"
        history = run.search_history
        out["loss"] = _svg(_safe("search loss", lambda: plots.search_loss_plot(history), None))
        out["accuracy"] = _svg(_safe("search accuracy",
                                     lambda: plots.search_accuracy_plot(history), None))
        out["entropy"] = _svg(_safe("entropy", lambda: plots.entropy_plot(history), None))
        out["skips"] = _svg(_safe("skip count", lambda: plots.skip_count_plot(history), None))
        ops = run.ops
        heatmaps = []
        for t in CELL_TYPES:
            svg = _safe(f"{t} weights", lambda t=t: plots.alpha_heatmaps(run.alphas, ops, t),
                        None)
            if svg:
                heatmaps.append(({"normal": "normal", "reduce": "reduction"}[t], _svg(svg)))
        out["heatmaps"] = heatmaps
        slider = _safe("weight slider", lambda: plots.alpha_slider_data(run.alphas, ops), None)
        out["slider"] = _script_json(slider) if slider else None
    return out


def study_direction_and_importances(study_path: Path, study_name: str | None = None
                                    ) -> tuple[bool | None, dict[str, float] | None, str]:
    """(maximize?, importances, why not) from the Optuna study in ``search/study.db``."""
    if not study_path.is_file():
        return None, None, "no Optuna study (search/study.db) in this run folder"
    import optuna

    storage = f"sqlite:///{study_path.resolve()}"
    names = optuna.study.get_all_study_names(storage)
    if not names:
        return None, None, "the study database holds no study"
    name = study_name if study_name in names else names[0]
    study = optuna.load_study(study_name=name, storage=storage)
    directions = study.directions
    maximize = directions[0] == optuna.study.StudyDirection.MAXIMIZE
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return maximize, None, (f"{len(complete)} completed trials; at least "
                                f"{MIN_TRIALS_FOR_IMPORTANCE} are needed")
    target = (lambda t: t.values[0]) if len(directions) > 1 else None
    with warnings.catch_warnings(record=True) as caught:  # shown on the page, not the console
        warnings.simplefilter("always")
        importances = optuna.importance.get_param_importances(study, target=target)
    if not importances:
        return maximize, None, "no parameter varied across the completed trials"
    note = " ".join(sorted({str(w.message) for w in caught}))
    return maximize, {str(k): float(v) for k, v in importances.items()}, note


def _trials_section(run: RunData) -> dict[str, Any]:
    maximize, importances, note = _safe(
        "parameter importances",
        lambda: study_direction_and_importances(run.path / "search" / "study.db",
                                                (run.search_result or {}).get("study_name")),
        (None, None, "the Optuna study could not be read"))
    if maximize is None:
        maximize = (run.search_result or {}).get("direction", "maximize") != "minimize"
    states: dict[str, int] = {}
    rows = []
    for t in run.trials:
        state = str(t.get("state", "?"))
        states[state] = states.get(state, 0) + 1
        arch = json.dumps(t.get("arch"), separators=(",", ":")) if t.get("arch") else ""
        val = t.get("val") if isinstance(t.get("val"), dict) else {}
        value = t.get("value")
        rows.append({
            "number": t.get("number", ""), "state": state,
            "arch": textwrap.shorten(arch, 70, placeholder=" …") if arch else "",
            "arch_full": arch,
            "value": ", ".join(fmt(v) for v in value) if isinstance(value, list)
            else fmt(value),
            "acc": fmt(val.get("accuracy")), "auc": fmt(val.get("auc")),
            "params": f"{t['params']:,}" if isinstance(t.get("params"), int) else "n/a",
            "flops": si(t.get("flops")), "latency": fmt(t.get("latency_ms"), 2),
            "seconds": fmt(t.get("seconds"), 1),
            "error": textwrap.shorten(str(t.get("error") or ""), 120, placeholder=" …"),
        })
    objective = ((run.config or {}).get("search") or {}).get("objective", "objective")
    return {
        "kind": "multi-trial",
        "trials": rows,
        "trial_counts": ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
        + f" trials ({'maximising' if maximize else 'minimising'} the objective).",
        "trials_plot": _svg(_safe("trials", lambda: plots.trials_plot(
            run.trials, maximize, f"value ({objective})"), None)),
        "importances": importances,
        "importance_plot": _svg(_safe("importances", lambda: plots.importance_plot(
            importances or {}), None)),
        "importance_note": note,
    }


def _arch_section(run: RunData) -> dict[str, Any]:
    arch = run.arch
    if arch is None:
        return {"cells": [], "choices": [], "json": None}
    drawn, choices = [], []
    for label, value in arch.items():
        if cells.is_cell(value):
            title = {"normal": "normal cell", "reduce": "reduction cell"}.get(label, str(label))
            text = "; ".join(f"n{i} = " + " + ".join(f"{op}({cells.INPUTS[j] if j < 2 else j - 2})"
                                                     for op, j in node)
                             for i, node in enumerate(value))
            svg = _safe(f"{label} cell", lambda v=value, t=title, k=label: cells.cell_svg(
                v, t, id_prefix=f"cell-{k}"), None)
            drawn.append((title, _svg(svg), text))
        else:
            choices.append((str(label), json.dumps(value)))
    described = _safe("architecture description", lambda: _describe(run, arch), None) \
        if choices else None
    return {"cells": drawn, "choices": choices, "json": json.dumps(arch, indent=1),
            "description": described}


def _describe(run: RunData, arch: dict[str, Any]) -> str | None:
    """The space's own words for the architecture (e.g. which block an index picks); needs
    the space's code, not a re-run, and is simply left out when the space cannot be built."""
    from ..spaces import make_space

    if not run.space:
        return None
    options = next((s["space_options"] for s in (run.architecture, run.model_info, run.config)
                    if s and s.get("space") == run.space
                    and isinstance(s.get("space_options"), dict)), {})
    text = make_space(run.space, **options).describe(arch)
    return text if text and text != str(arch) else None


def _model_section(run: RunData) -> dict[str, Any]:
    info = run.model_info or {}
    cost = (run.metrics or {}).get("model") or {}
    latency = cost.get("latency_ms")
    epochs = info.get("epochs", len(run.retrain_history) or None)
    best = info.get("best_epoch")
    if best is None:
        flagged = [i for i, r in enumerate(run.retrain_history) if r.get("best")]
        best = flagged[-1] if flagged else None
    return {
        "params": run.params,
        "flops": si(cost.get("flops")),
        "latency": f"{latency:.2f} ms" if isinstance(latency, (int, float)) else "n/a",
        "device": f"measured on {cost['device']}, batch of 1" if cost.get("device") else "",
        "epochs": f"{epochs} ({best + 1})" if epochs and best is not None else fmt(epochs),
        "loss": _svg(_safe("retrain loss", lambda: plots.retrain_loss_plot(
            run.retrain_history, best), None)),
        "accuracy": _svg(_safe("retrain accuracy", lambda: plots.retrain_accuracy_plot(
            run.retrain_history, best), None)),
        "summary": run.model_summary,
        "members": _members(run),
        "tta": " and ".join(info.get("tta") or []),
    }


def _members(run: RunData) -> list[dict[str, str]]:
    """An ensemble's rows: each member alone on validation and test, then the average."""
    info = run.model_info or {}
    members = info.get("ensemble") or []
    scored = (run.metrics or {}).get("members") or []
    if len(members) <= 1:
        return []
    rows = []
    for i, member in enumerate(members):
        found = scored[i] if i < len(scored) else {}
        origin = ("the searched architecture" if member.get("trial") is None
                  else f"trial {member['trial']}")
        rows.append({"name": f"{i + 1}: {origin}" + (
                         "" if member.get("seed") is None else f", seed {member['seed']}"),
                     "params": si(member.get("params")),
                     "val": _pair(found.get("val") or member.get("val")),
                     "test": _pair(found.get("test"))})
    metrics = run.metrics or {}
    rows.append({"name": f"the ensemble (mean of {len(members)})", "params": si(run.params),
                 "val": _pair(metrics.get("val") or info.get("ensemble_val")),
                 "test": _pair(metrics.get("test"))})
    return rows


def _pair(metrics: dict[str, Any] | None) -> str:
    """'AUC / ACC' of a metrics dict, n/a where missing."""
    metrics = metrics or {}
    return f"{fmt(metrics.get('auc'), 3)} / {fmt(metrics.get('accuracy'), 3)}"


def _test_section(run: RunData, n_resamples: int, seed: int) -> dict[str, Any]:
    metrics = run.metrics or {}
    test = metrics.get("test") or {}
    val = metrics.get("val") or {}
    preds = run.predictions or {}
    ci: dict[str, Any] = {}
    note = "Confidence intervals not available: the run folder has no predictions.npz."
    if "test_labels" in preds and "test_probs" in preds:
        n_resamples = bounded_resamples(n_resamples, preds["test_probs"])
        intervals = _safe("bootstrap", lambda: bootstrap_ci(
            preds["test_labels"], preds["test_probs"], n_resamples=n_resamples, seed=seed,
            thresholds=test.get("thresholds")), {})
        ci = {k: v.to_dict() for k, v in intervals.items()}
        if ci:
            note = (f"95% percentile intervals from {n_resamples} bootstrap resamples of the "
                    f"{len(preds['test_labels'])} test images (seed {seed}).")
    rows = []
    multi_label = test.get("task") == "multi-label"
    named = ((("accuracy", "accuracy (mean over labels)"), ("auc", "AUC-ROC (mean over labels)"),
              ("loss", "loss (binary cross-entropy)"), ("exact_match", "exact match"))
             if multi_label else
             (("accuracy", "accuracy"), ("auc", "AUC-ROC"), ("loss", "loss"),
              ("balanced_accuracy", "balanced accuracy"), ("mae", "mean absolute error")))
    for key, name in named:
        if key == "mae" and "mae" not in test:
            continue
        interval = ci.get(key) or {}
        rows.append({
            "key": key, "name": name, "test": _number(test.get(key)), "val": val.get(key),
            "ci": f"{fmt(interval['low'])} – {fmt(interval['high'])}"
            if interval.get("low") is not None else "",
        })
    names = run.class_names
    per_class = test.get("per_label") or test.get("per_class") or {}
    figs = {
        "confusion": _svg(_safe("confusion matrix", lambda: plots.confusion_plot(
            test.get("confusion_matrix") or [], names), None)) if test else None,
        "roc": _svg(_safe("ROC", lambda: plots.roc_plot(
            preds["test_labels"], preds["test_probs"], names), None))
        if "test_probs" in preds else None,
        "per_class": _svg(_safe("per-class", lambda: plots.per_class_plot(
            per_class), None)) if test else None,
    }
    return {"test": {k: _number(test.get(k)) for k in ("accuracy", "auc", "loss")},
            "ci": ci, "ci_note": note, "metric_rows": rows, "test_figs": figs,
            "per_class": list(per_class.items()),
            "metrics": metrics or None}


BOOTSTRAP_CLASS_RESAMPLES = 20_000
"""Resamples x classes at most: the multi-class AUC of each resample costs one pass per
class, so with many classes fewer resamples keep the report's time bounded."""
MIN_RESAMPLES = 200


def bounded_resamples(n_resamples: int, probs: Any) -> int:
    """``n_resamples``, lowered for many classes (never below ``MIN_RESAMPLES``)."""
    shape = getattr(probs, "shape", ())
    k = int(shape[1]) if len(shape) == 2 else 2
    return max(min(n_resamples, MIN_RESAMPLES), min(n_resamples,
                                                    BOOTSTRAP_CLASS_RESAMPLES // max(k, 1)))


def result_warnings(run: RunData) -> list[dict[str, str]]:
    """The run's warnings (metrics.json ``warnings``): a model the report must not present
    as a result without saying so."""
    warnings = (run.metrics or {}).get("warnings") or []
    return [w for w in warnings if isinstance(w, dict) and w.get("message")]


UNTRUSTED = ("short-retrain", "one-class")
"""Warnings that make the run's numbers a failed run rather than a result."""


def untrusted(run: RunData) -> bool:
    return any(w.get("code") in UNTRUSTED for w in result_warnings(run))


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _phases(run: RunData) -> list[tuple[str, dict[str, Any]]]:
    return [(name, p) for name, p in run.status.items() if isinstance(p, dict)]


# ----------------------------------------------------------------------------- pages


def render_report(run: RunData, *, n_resamples: int = 1000, seed: int = 0) -> str:
    """The HTML of one run's report."""
    context: dict[str, Any] = {
        "run": run, "css": Markup(CSS), "slider_js": Markup(SLIDER_JS), "version": __version__,
        "generated": datetime.now().isoformat(timespec="seconds"),
        "data": run.data, "env": run.environment, "phases": _phases(run),
        "warnings": _safe("warnings", lambda: result_warnings(run), []),
        "untrusted": _safe("warnings", lambda: untrusted(run), False),
        "config_text": yaml.safe_dump(run.config, sort_keys=False) if run.config else None,
    }
    context.update(_safe("data", lambda: _data_section(run),
                         {"splits": [], "class_names": run.class_names, "samples": [],
                          "samples_note": ""}))
    context["search"] = _safe("search", lambda: _search_section(run),
                              {"kind": None, "result": None})
    context["arch"] = _safe("architecture", lambda: _arch_section(run),
                            {"cells": [], "choices": [], "json": None})
    context["model"] = _safe("model", lambda: _model_section(run), {"params": run.params})
    context.update(_safe("test", lambda: _test_section(run, n_resamples, seed),
                         {"test": {}, "ci": {}, "metric_rows": [], "test_figs": {},
                          "per_class": [], "metrics": None, "ci_note": ""}))
    return _environment().from_string(REPORT).render(**context)


def _search_progress(run: RunData) -> list[tuple[float, float]]:
    """(cumulative search seconds, validation accuracy): per epoch for one-shot runs, best
    so far per trial for multi-trial runs."""
    points, elapsed = [], 0.0
    if run.trials:
        best = math.nan
        for t in run.trials:
            elapsed += float(t.get("seconds") or 0.0)
            acc = (t.get("val") or {}).get("accuracy") if isinstance(t.get("val"), dict) \
                else None
            if str(t.get("state", "")).upper() == "COMPLETE" and isinstance(acc, (int, float)):
                best = acc if math.isnan(best) else max(best, acc)
            if not math.isnan(best):
                points.append((elapsed, best))
        return points
    for r in run.search_history:
        elapsed += float(r.get("seconds") or 0.0)
        if isinstance(r.get("val_accuracy"), (int, float)):
            points.append((elapsed, float(r["val_accuracy"])))
    return points


def render_comparison(runs: Sequence[RunData], out: Path, *, n_resamples: int = 1000,
                      seed: int = 0) -> str:
    rows, curves, rocs = [], [], []
    labels = _unique_labels(runs)
    for run, label in zip(runs, labels):
        preds = run.predictions or {}
        ci: dict[str, Any] = {}
        if "test_labels" in preds and "test_probs" in preds:
            ci = _safe("bootstrap", lambda p=preds: bootstrap_ci(
                p["test_labels"], p["test_probs"], n_resamples=n_resamples, seed=seed), {})
            rocs.append({"label": label, "labels": preds["test_labels"],
                         "probs": preds["test_probs"]})
        report = run.path / "report.html"
        cost = (run.metrics or {}).get("model") or {}
        rows.append({
            "name": label, "strategy": run.strategy or "n/a", "space": run.space or "n/a",
            "dataset": run.dataset or "n/a",
            "search_time": seconds(run.phase_seconds("search")),
            "total_time": seconds(run.seconds_used), "params": run.params,
            "flops": si(cost.get("flops")),
            "acc": run.metric("test", "accuracy"), "auc": run.metric("test", "auc"),
            "loss": run.metric("test", "loss"),
            "acc_ci": _ci_text(ci.get("accuracy")), "auc_ci": _ci_text(ci.get("auc")),
            "report": _relative(report, out.parent) if report.is_file() else None,
        })
        curves.append({
            "label": label, "search": _search_progress(run),
            "retrain": [float(r["val"]["accuracy"]) for r in run.retrain_history
                        if isinstance((r.get("val") or {}).get("accuracy"), (int, float))],
        })
    context = {
        "css": Markup(CSS), "version": __version__, "rows": rows,
        "generated": datetime.now().isoformat(timespec="seconds"),
        "search": _svg(_safe("comparison search", lambda: plots.compare_search_plot(curves),
                             None)),
        "retrain": _svg(_safe("comparison retrain",
                              lambda: plots.compare_retrain_plot(curves), None)),
        "roc": _svg(_safe("comparison ROC", lambda: plots.compare_roc_plot(rocs), None)),
    }
    return _environment().from_string(COMPARE).render(**context)


def _ci_text(interval: Any) -> str:
    if interval is None or interval.low is None:
        return ""
    return f"{fmt(interval.low, 3)} – {fmt(interval.high, 3)}"


def _unique_labels(runs: Sequence[RunData]) -> list[str]:
    """Folder names, made unique with their parent folder where two are the same."""
    names = [r.name for r in runs]
    out = []
    for run, name in zip(runs, names):
        if names.count(name) > 1:
            name = f"{run.path.resolve().parent.name}/{name}"
        out.append(name)
    return out


def _relative(path: Path, start: Path) -> str:
    try:
        return Path(os.path.relpath(path.resolve(), start.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_uri()


__all__ = ["render_comparison", "render_report"]
