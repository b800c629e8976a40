"""The report's figures, drawn with matplotlib and returned as inline SVG markup.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot), so drawing never
touches global GUI state and works headless. Every function takes plain data (rows of the
run folder's JSON files, arrays of predictions) and returns SVG text, or ``None`` when the
data holds nothing to draw.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..spaces.genotype import edge_inputs

SKIP_OP_NAMES = frozenset({"skip_connect", "identity"})
RC = {
    "svg.fonttype": "none",  # text stays text: smaller files, selectable labels
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
SMALL = 5.2  # figure width (inches): two side by side on a wide screen
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
          "#7f7f7f", "#bcbd22", "#17becf")


@contextmanager
def _figure(width: float, height: float, **kwargs: Any) -> Iterator[Figure]:
    with matplotlib.rc_context(RC):
        yield Figure(figsize=(width, height), layout="constrained", **kwargs)


def to_svg(fig: Figure) -> str:
    """The figure as an ``<svg>`` element that scales to its container."""
    buf = io.StringIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    # Drop the fixed size: the viewBox keeps the aspect ratio, CSS scales the figure down
    # on narrow screens and never beyond its natural size (96 px per inch).
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    natural = fig.get_size_inches()[0] * 96
    return (head + f' class="plot" role="img" style="max-width:{natural:.0f}px"'
            + svg[head_end:])


def _epochs(rows: Sequence[Mapping[str, Any]]) -> list[int]:
    return [int(r.get("epoch", i)) + 1 for i, r in enumerate(rows)]


def _series(rows: Sequence[Mapping[str, Any]], get: Callable[[Mapping[str, Any]], Any]
            ) -> list[float]:
    out = []
    for r in rows:
        try:
            v = get(r)
        except (KeyError, TypeError, IndexError):
            v = None
        out.append(float(v) if isinstance(v, (int, float)) and not isinstance(v, bool)
                   else math.nan)
    return out


def _has_values(values: Sequence[float]) -> bool:
    return any(not math.isnan(v) for v in values)


def _shade_frozen(ax: Any, rows: Sequence[Mapping[str, Any]], x: Sequence[int]) -> None:
    frozen = [xi for xi, r in zip(x, rows) if r.get("alphas_frozen")]
    if frozen:
        ax.axvspan(min(frozen) - 0.5, max(frozen) + 0.5, color="0.85", alpha=0.6, lw=0,
                   label="warm-up (alphas frozen)")


def _epoch_axis(ax: Any, label: str = "epoch") -> None:
    ax.set_xlabel(label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _line(ax: Any, x: Sequence[float], y: Sequence[float], label: str, **kw: Any) -> None:
    if _has_values(y):
        ax.plot(x, y, marker="o", markersize=3, label=label, **kw)


# ----------------------------------------------------------------------------- search


def _curves(rows: Sequence[Mapping[str, Any]], series: Sequence[tuple[str, Callable]],
            title: str, xlabel: str, ylabel: str, mark: int | None = None,
            shade: bool = False) -> str | None:
    """One axis of per-epoch lines; None when no series has a value."""
    if not rows:
        return None
    x = _epochs(rows)
    lines = [(label, _series(rows, get)) for label, get in series]
    if not any(_has_values(y) for _, y in lines):
        return None
    with _figure(SMALL, 3.1) as fig:
        ax = fig.subplots()
        if shade:
            _shade_frozen(ax, rows, x)
        for label, y in lines:
            _line(ax, x, y, label)
        if mark is not None:
            ax.axvline(mark + 1, color="0.4", ls=":", lw=1, label="kept epoch")
        _epoch_axis(ax, xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        return to_svg(fig)


def search_loss_plot(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Supernet training and validation loss per search epoch."""
    return _curves(history, [("train", lambda r: r["train_loss"]),
                             ("validation", lambda r: r["val_loss"])],
                   "supernet loss", "search epoch", "loss", shade=True)


def search_accuracy_plot(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Supernet validation accuracy per search epoch."""
    return _curves(history, [("validation", lambda r: r["val_accuracy"])],
                   "supernet validation accuracy", "search epoch", "accuracy", shade=True)


def entropy_plot(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Normalised entropy of the softmaxed architecture weights: 1 = uniform, 0 = decided."""
    x = _epochs(history)
    normal = _series(history, lambda r: r["entropy"]["normal"])
    reduce = _series(history, lambda r: r["entropy"]["reduce"])
    if not (_has_values(normal) or _has_values(reduce)):
        return None
    with _figure(SMALL, 3.0) as fig:
        ax = fig.subplots()
        _shade_frozen(ax, history, x)
        _line(ax, x, normal, "normal cell")
        _line(ax, x, reduce, "reduction cell")
        ax.ticklabel_format(axis="y", useOffset=False)
        _epoch_axis(ax, "search epoch")
        ax.set_ylabel("entropy (1 = uniform)")
        ax.set_title("architecture-weight entropy")
        ax.legend()
        return to_svg(fig)


def _count_skips(cell: Any) -> float:
    try:
        return float(sum(str(op) in SKIP_OP_NAMES for node in cell for op, _ in node))
    except (TypeError, ValueError):
        return math.nan


def skip_count_plot(history: Sequence[Mapping[str, Any]]) -> str | None:
    """Skip connections in the derived cells per epoch: the usual sign of DARTS collapse."""
    x = _epochs(history)
    normal = _series(history, lambda r: r["skip_normal"] if "skip_normal" in r
                     else _count_skips(r["genotype"]["normal"]))
    reduce = _series(history, lambda r: _count_skips(r["genotype"]["reduce"]))
    if not (_has_values(normal) or _has_values(reduce)):
        return None
    with _figure(SMALL, 3.0) as fig:
        ax = fig.subplots()
        _shade_frozen(ax, history, x)
        if _has_values(normal):
            ax.step(x, normal, where="mid", label="normal cell", marker="o", markersize=3)
        if _has_values(reduce):
            ax.step(x, reduce, where="mid", label="reduction cell", marker="s", markersize=3,
                    linestyle="--")
        ax.yaxis.get_major_locator().set_params(integer=True)
        top = max(v for v in [*normal, *reduce, 1.0] if not math.isnan(v))
        ax.set_ylim(-0.3, top + 0.8)
        _epoch_axis(ax, "search epoch")
        ax.set_ylabel("skip connections")
        ax.set_title("skip connections in the derived cells")
        ax.legend()
        return to_svg(fig)


def state_name(j: int) -> str:
    """Name of cell state ``j``: the two cell inputs, then the intermediate nodes."""
    return {0: "c_{k-2}", 1: "c_{k-1}"}.get(j, f"n{j - 2}")


def edge_labels(n_nodes: int) -> list[str]:
    return [f"{state_name(j)} → n{node}" for node, j in edge_inputs(n_nodes)]


def nodes_for_edges(n_edges: int) -> int | None:
    """Intermediate nodes of a cell with ``n_edges`` edges (n(n+3)/2), None if no fit."""
    n = 0
    while len(edge_inputs(n)) < n_edges:
        n += 1
    return n if len(edge_inputs(n)) == n_edges else None


def pick_epochs(n: int, panels: int) -> list[int]:
    """Up to ``panels`` row indices spread evenly over ``n``, first and last included."""
    if n <= panels:
        return list(range(n))
    return sorted({round(i * (n - 1) / (panels - 1)) for i in range(panels)})


def alpha_heatmaps(alphas: Sequence[Mapping[str, Any]], ops: Sequence[str], cell_type: str,
                   panels: int = 6) -> str | None:
    """Small multiples of the softmaxed weights (edge x op) across search epochs."""
    rows = [r for r in alphas if isinstance(r.get(cell_type), list)]
    if not rows:
        return None
    mats = [np.asarray(r[cell_type], dtype=float) for r in rows]
    if mats[-1].ndim != 2:
        return None
    n_edges, n_ops = mats[-1].shape
    n_nodes = nodes_for_edges(n_edges)
    labels_y = edge_labels(n_nodes) if n_nodes is not None else [f"edge {e}" for e in
                                                                   range(n_edges)]
    labels_x = list(ops) if len(ops) == n_ops else [f"op {k}" for k in range(n_ops)]
    chosen = [i for i in pick_epochs(len(mats), panels) if mats[i].shape == (n_edges, n_ops)]
    # The colours span the weights shown: early, near-uniform epochs differ by little.
    vmin = min(float(mats[i].min()) for i in chosen)
    vmax = max(float(mats[i].max()) for i in chosen)
    if vmax - vmin < 1e-6:
        vmin, vmax = 0.0, max(vmax, 1e-6)
    ncols = min(3, len(chosen))
    nrows = math.ceil(len(chosen) / ncols)
    cell_w = 0.22 * n_ops + 0.4
    cell_h = 0.2 * n_edges + 1.4
    with _figure(1.3 + ncols * cell_w, nrows * cell_h + 0.3) as fig:
        axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
        image = None
        for k, ax in enumerate(axes):
            ax.grid(False)
            if k >= len(chosen):
                ax.set_visible(False)
                continue
            i = chosen[k]
            image = ax.imshow(mats[i], cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto",
                              interpolation="nearest")
            ax.set_title(f"epoch {int(rows[i].get('epoch', i)) + 1}")
            ax.set_xticks(range(n_ops), labels_x, rotation=90, fontsize=7)
            ax.set_yticks(range(n_edges),
                          labels_y if k % ncols == 0 else [""] * n_edges, fontsize=7)
        if image is not None:
            fig.colorbar(image, ax=axes.tolist(), shrink=0.8, label="weight")
        return to_svg(fig)


def alpha_slider_data(alphas: Sequence[Mapping[str, Any]], ops: Sequence[str],
                      max_epochs: int = 200) -> dict[str, Any] | None:
    """The weights of every epoch, rounded, for the report's interactive heatmap."""
    rows = [r for r in alphas if all(isinstance(r.get(t), list) for t in ("normal", "reduce"))]
    if not rows:
        return None
    rows = [rows[i] for i in pick_epochs(len(rows), max_epochs)]
    n_edges = len(rows[-1]["normal"])
    n_nodes = nodes_for_edges(n_edges)
    data: dict[str, Any] = {
        "ops": list(ops),
        "edges": edge_labels(n_nodes) if n_nodes is not None else
        [f"edge {e}" for e in range(n_edges)],
        "epochs": [int(r.get("epoch", i)) + 1 for i, r in enumerate(rows)],
    }
    for t in ("normal", "reduce"):
        data[t] = [np.round(np.asarray(r[t], dtype=float), 4).tolist() for r in rows]
    return data


# ----------------------------------------------------------------------------- trials


def _trial_value(row: Mapping[str, Any]) -> float:
    v = row.get("value")
    if isinstance(v, (list, tuple)):
        v = v[0] if v else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def best_so_far(values: Sequence[float], maximize: bool = True) -> list[float]:
    out, best = [], math.nan
    for v in values:
        if not math.isnan(v) and (math.isnan(best) or (v > best if maximize else v < best)):
            best = v
        out.append(best)
    return out


def trials_plot(trials: Sequence[Mapping[str, Any]], maximize: bool = True,
                label: str = "objective") -> str | None:
    """Optimisation history: every trial's value by state, and the best so far."""
    if not trials:
        return None
    numbers = [int(t.get("number", i)) for i, t in enumerate(trials)]
    values = [_trial_value(t) for t in trials]
    states = [str(t.get("state", "COMPLETE")).upper() for t in trials]
    complete = [v if s == "COMPLETE" else math.nan for v, s in zip(values, states)]
    with _figure(SMALL * 1.3, 3.2) as fig:
        ax = fig.subplots()
        for state, color, marker in (("COMPLETE", COLORS[0], "o"), ("PRUNED", "0.55", "x")):
            xs = [n for n, s, v in zip(numbers, states, values) if s == state
                  and not math.isnan(v)]
            ys = [v for s, v in zip(states, values) if s == state and not math.isnan(v)]
            if xs:
                ax.scatter(xs, ys, s=18, color=color, marker=marker,
                           label=f"{state.lower()} trial")
        failed = [n for n, s in zip(numbers, states) if s == "FAIL"]
        if failed:
            for n in failed:
                ax.axvline(n, color=COLORS[3], alpha=0.35, lw=1)
            ax.plot([], [], color=COLORS[3], alpha=0.5, label="failed trial")
        if _has_values(complete):
            ax.step(numbers, best_so_far(complete, maximize), where="post", color=COLORS[1],
                    label="best so far")
        _epoch_axis(ax, "trial")
        ax.set_ylabel(label)
        ax.set_title("optimisation history")
        ax.legend()
        return to_svg(fig)


def importance_plot(importances: Mapping[str, float]) -> str | None:
    """Parameter importances (fANOVA or Optuna's default evaluator), largest on top."""
    items = sorted(importances.items(), key=lambda kv: kv[1])
    if not items:
        return None
    with _figure(SMALL, 0.3 * len(items) + 1.1) as fig:
        ax = fig.subplots()
        ax.barh([textwrap.shorten(str(k), 40) for k, _ in items], [v for _, v in items],
                color=COLORS[0])
        ax.set_xlabel("importance")
        ax.set_title("parameter importances")
        ax.grid(axis="y", visible=False)
        return to_svg(fig)


# ----------------------------------------------------------------------------- retrain


def retrain_loss_plot(history: Sequence[Mapping[str, Any]], best_epoch: int | None = None
                      ) -> str | None:
    """Training and validation loss per retraining epoch, the kept epoch marked."""
    return _curves(history, [("train", lambda r: r["train_loss"]),
                             ("validation", lambda r: r["val"]["loss"])],
                   "retraining loss", "epoch", "loss", mark=best_epoch)


def retrain_accuracy_plot(history: Sequence[Mapping[str, Any]], best_epoch: int | None = None
                          ) -> str | None:
    """Accuracy and validation AUC per retraining epoch, the kept epoch marked."""
    return _curves(history, [("train ACC", lambda r: r["train_accuracy"]),
                             ("validation ACC", lambda r: r["val"]["accuracy"]),
                             ("validation AUC", lambda r: r["val"]["auc"])],
                   "retraining accuracy and AUC", "epoch", "score", mark=best_epoch)


# ----------------------------------------------------------------------------- test


def _short(names: Sequence[str], width: int = 16) -> list[str]:
    return ["\n".join(textwrap.wrap(str(n), width)) or str(n) for n in names]


MAX_ANNOTATED = 12
"""Classes up to which the confusion matrix writes counts in its cells."""
MAX_LABELLED = 40
"""Classes up to which the confusion matrix names them on its axes."""
MAX_CURVES = 10
"""Classes up to which the ROC plot draws one curve per class (beyond: the micro average)."""
MAX_BARS = 30
"""Classes up to which the per-class plot is drawn (beyond: the table alone)."""


def confusion_plot(matrix: Sequence[Sequence[int]], class_names: Sequence[str]) -> str | None:
    """Counts, coloured by the share of each true class (row) they hold."""
    cm = np.asarray(matrix, dtype=float)
    if cm.ndim != 2 or cm.size == 0 or cm.shape[0] != cm.shape[1]:
        return None
    k = cm.shape[0]
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = min(7.0, 2.4 + 0.45 * k)
    with _figure(size + 0.8, size) as fig:
        ax = fig.subplots()
        ax.grid(False)
        # Many classes: the matrix is one embedded bitmap without per-cell text, so the
        # figure's size and drawing time stay flat in the number of classes.
        image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest",
                          rasterized=k > MAX_ANNOTATED)
        if k <= MAX_ANNOTATED:
            fontsize = 9 if k <= 6 else 6
            for i in range(k):
                for j in range(k):
                    ax.text(j, i, f"{int(cm[i, j])}\n{100 * share[i, j]:.0f}%", ha="center",
                            va="center", fontsize=fontsize,
                            color="white" if share[i, j] > 0.55 else "black")
        if k <= MAX_LABELLED:
            ax.set_xticks(range(k), _short(names), rotation=45 if k > 3 else 0, ha="right"
                          if k > 3 else "center")
            ax.set_yticks(range(k), _short(names))
        ax.set_xlabel("predicted" if k <= MAX_LABELLED else "predicted (class index)")
        ax.set_ylabel("true" if k <= MAX_LABELLED else "true (class index)")
        ax.set_title("confusion matrix (test)")
        fig.colorbar(image, ax=ax, shrink=0.8, label="share of true class")
        return to_svg(fig)


def roc_plot(labels: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> str | None:
    """ROC of the positive class (binary), one-vs-rest per class (multi-class), or one
    curve per label for (N, L) multi-label targets."""
    from sklearn.metrics import auc, roc_curve

    if np.ndim(labels) == 2:
        return label_roc_plot(np.asarray(labels), np.asarray(probs, dtype=float), class_names)
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(probs, dtype=float)
    if p.ndim != 2 or len(y) != len(p) or len(np.unique(y)) < 2:
        return None
    k = p.shape[1]
    names = list(class_names) if len(class_names) == k else [str(i) for i in range(k)]
    classes = [1] if k == 2 else [c for c in range(k) if 0 < (y == c).sum() < len(y)]
    with _figure(SMALL, 4.4) as fig:
        ax = fig.subplots()
        if len(classes) > MAX_CURVES:
            onehot = y[:, None] == np.arange(k)[None, :]
            fpr, tpr, _ = roc_curve(onehot.ravel(), p.ravel())
            ax.plot(fpr, tpr, color=COLORS[0], lw=1.5,
                    label=f"micro average of {len(classes)} classes ({auc(fpr, tpr):.3f})")
            classes = []
        for n, c in enumerate(classes):
            fpr, tpr, _ = roc_curve(y == c, p[:, c])
            label = (f"{names[c]} (AUC {auc(fpr, tpr):.3f})" if k == 2 else
                     f"{textwrap.shorten(names[c], 24)} vs rest ({auc(fpr, tpr):.3f})")
            ax.plot(fpr, tpr, color=COLORS[n % len(COLORS)], lw=1.5, label=label)
        _roc_axes(ax)
        ax.set_title("ROC (test)" if k == 2 else "ROC one-vs-rest (test)")
        ax.legend(loc="lower right", fontsize=7 if k > 4 else 8)
        return to_svg(fig)


def _roc_axes(ax) -> None:
    """The chance diagonal, unit square and axis names every ROC plot shares."""
    ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")


def label_roc_plot(labels: np.ndarray, probs: np.ndarray,
                   label_names: Sequence[str]) -> str | None:
    """Per-label ROC curves of a multi-label model (labels with both values in the split)."""
    from sklearn.metrics import auc, roc_curve

    if probs.shape != labels.shape:
        return None
    k = labels.shape[1]
    names = list(label_names) if len(label_names) == k else [str(i) for i in range(k)]
    shown = [j for j in range(k) if 0 < labels[:, j].sum() < len(labels)]
    if not shown:
        return None
    with _figure(SMALL, 4.4 + 0.12 * max(0, len(shown) - 6)) as fig:
        ax = fig.subplots()
        for n, j in enumerate(shown):
            fpr, tpr, _ = roc_curve(labels[:, j], probs[:, j])
            ax.plot(fpr, tpr, color=COLORS[n % len(COLORS)], lw=1.2,
                    ls="-" if n < len(COLORS) else ":",
                    label=f"{textwrap.shorten(names[j], 24)} ({auc(fpr, tpr):.3f})")
        _roc_axes(ax)
        ax.set_title("ROC per label (test)")
        ax.legend(loc="lower right", fontsize=6 if len(shown) > 6 else 8)
        return to_svg(fig)


def per_class_plot(per_class: Mapping[str, Mapping[str, float]]) -> str | None:
    """Precision, recall and F1 of every class, side by side."""
    names = list(per_class)
    if not names or len(names) > MAX_BARS:
        return None
    metrics = ("precision", "recall", "f1")
    y = np.arange(len(names))
    h = 0.8 / len(metrics)
    with _figure(SMALL, 0.5 * len(names) + 1.4) as fig:
        ax = fig.subplots()
        for m, metric in enumerate(metrics):
            values = [float(per_class[n].get(metric) or 0.0) for n in names]
            ax.barh(y + (m - 1) * h, values, height=h, label=metric, color=COLORS[m])
        ax.set_yticks(y, _short(names, 24))
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("score")
        ax.set_title("per-class precision, recall and F1 (test)")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right", ncols=3)
        return to_svg(fig)


# ----------------------------------------------------------------------------- compare


def compare_search_plot(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """Validation accuracy during the search of several runs against search time, so
    one-shot epochs and multi-trial trials share an axis. Each run is
    ``{"label", "search": [(seconds, accuracy), ...]}``."""
    if not any(r.get("search") for r in runs):
        return None
    with _figure(SMALL, 3.4) as fig:
        ax = fig.subplots()
        for n, r in enumerate(runs):
            points = r.get("search") or []
            if points:
                ax.plot([s for s, _ in points], [a for _, a in points], marker="o",
                        markersize=3, color=COLORS[n % len(COLORS)], label=r["label"])
        ax.set_xlabel("search time (s)")
        ax.set_ylabel("validation accuracy")
        ax.set_title("search (multi-trial: best so far)")
        ax.legend()
        return to_svg(fig)


def compare_retrain_plot(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """Validation accuracy per retraining epoch of several runs: ``{"label", "retrain":
    [accuracy, ...]}`` each."""
    if not any(r.get("retrain") for r in runs):
        return None
    with _figure(SMALL, 3.4) as fig:
        ax = fig.subplots()
        for n, r in enumerate(runs):
            values = r.get("retrain") or []
            if values:
                ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3,
                        color=COLORS[n % len(COLORS)], label=r["label"])
        _epoch_axis(ax, "retraining epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_title("retraining")
        ax.legend()
        return to_svg(fig)


def compare_roc_plot(runs: Sequence[Mapping[str, Any]]) -> str | None:
    """Test ROC curves of binary runs on one axis; ``{"label", "labels", "probs"}`` each."""
    from sklearn.metrics import auc, roc_curve

    usable = [r for r in runs if r.get("probs") is not None
              and np.asarray(r["probs"]).ndim == 2 and np.asarray(r["probs"]).shape[1] == 2
              and len(np.unique(r["labels"])) == 2]
    if not usable:
        return None
    with _figure(SMALL, 4.4) as fig:
        ax = fig.subplots()
        for n, r in enumerate(usable):
            fpr, tpr, _ = roc_curve(np.asarray(r["labels"]) == 1, np.asarray(r["probs"])[:, 1])
            ax.plot(fpr, tpr, color=COLORS[n % len(COLORS)], lw=1.5,
                    label=f"{r['label']} (AUC {auc(fpr, tpr):.3f})")
        ax.plot([0, 1], [0, 1], color="0.6", ls="--", lw=1)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title("test ROC")
        ax.legend(loc="lower right")
        return to_svg(fig)
