"""Classification metrics from predicted probabilities (scikit-learn does the arithmetic)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

OBJECTIVES = {"auc": "max", "accuracy": "max", "loss": "min"}


def auc_roc(y_true: np.ndarray, probs: np.ndarray) -> float:
    """Binary AUC on the positive class, macro one-vs-rest AUC for more classes.

    Returns NaN when it is undefined (a split holding a single class), rather than raising
    in the middle of a run.
    """
    y_true = np.asarray(y_true)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1]
    present = np.unique(y_true)
    if len(present) < 2:
        return float("nan")
    if n_classes == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    # One-vs-rest over the classes present; classes absent from y_true have no defined AUC.
    scores = [roc_auc_score(y_true == c, probs[:, c]) for c in present]
    return float(np.mean(scores))


def classification_metrics(y_true: Sequence[int] | np.ndarray, probs: np.ndarray,
                           class_names: Sequence[str] | None = None, *,
                           thresholds: Sequence[float] | None = None,
                           ordinal: bool = False) -> dict:
    """Loss, accuracy, AUC-ROC, confusion matrix and per-class precision/recall (JSON-able).

    (N, L) 0/1 ``y_true`` is multi-label (see :func:`multilabel_metrics`, which takes the
    per-label ``thresholds``); ``ordinal`` adds the mean absolute error of the class index.
    """
    if np.ndim(y_true) == 2:
        return multilabel_metrics(y_true, probs, class_names, thresholds)
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n_classes = probs.shape[1]
    labels = list(range(n_classes))
    pred = probs.argmax(axis=1)
    clipped = np.clip(probs, 1e-12, 1.0)
    clipped /= clipped.sum(axis=1, keepdims=True)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, pred, labels=labels, zero_division=0
    )
    names = list(class_names) if class_names is not None else [str(c) for c in labels]
    auc = auc_roc(y_true, probs)
    extra = {"mae": float(np.abs(pred - y_true).mean()) if len(y_true) else float("nan"),
             "task": "ordinal"} if ordinal else {}
    return {
        **extra,
        "n": len(y_true),
        "loss": float(log_loss(y_true, clipped, labels=labels)),
        "accuracy": float((pred == y_true).mean()) if len(y_true) else float("nan"),
        "auc": None if math.isnan(auc) else auc,
        "balanced_accuracy": float(np.mean([r for r, s in zip(recall, support) if s > 0])),
        "confusion_matrix": confusion_matrix(y_true, pred, labels=labels).tolist(),
        "per_class": {
            names[c]: {
                "precision": float(precision[c]),
                "recall": float(recall[c]),
                "f1": float(f1[c]),
                "support": int(support[c]),
            }
            for c in labels
        },
    }


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray,
                       label_names: Sequence[str] | None = None,
                       thresholds: Sequence[float] | None = None) -> dict:
    """Per-label AUC-ROC, accuracy, precision and recall, and their means (JSON-able).

    As MedMNIST reports ChestMNIST: ``auc`` is the mean of the per-label AUCs (labels with
    a single class in ``y_true`` have none and are left out), ``accuracy`` the mean of the
    per-label accuracies at ``thresholds`` (0.5 each unless given, e.g. from
    :func:`choose_thresholds` on validation). ``exact_match`` is the share of images whose
    whole label set is right; ``loss`` the mean binary cross-entropy.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, n_labels = probs.shape
    names = list(label_names) if label_names is not None else [str(j) for j in range(n_labels)]
    thr = np.full(n_labels, 0.5) if thresholds is None else np.asarray(thresholds, float)
    pred = (probs >= thr[None, :]).astype(np.int64)
    clipped = np.clip(probs, 1e-12, 1 - 1e-12)
    bce = -(y_true * np.log(clipped) + (1 - y_true) * np.log(1 - clipped))
    per_label: dict[str, dict] = {}
    aucs = []
    for j, name in enumerate(names):
        t, p = y_true[:, j], pred[:, j]
        tp, fp = int(((p == 1) & (t == 1)).sum()), int(((p == 1) & (t == 0)).sum())
        fn, tn = int(((p == 0) & (t == 1)).sum()), int(((p == 0) & (t == 0)).sum())
        auc = (float(roc_auc_score(t, probs[:, j])) if 0 < t.sum() < len(t) else None)
        if auc is not None:
            aucs.append(auc)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        per_label[name] = {
            "auc": auc,
            "accuracy": float((p == t).mean()) if n else float("nan"),
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "support": int(t.sum()),
            "threshold": float(thr[j]),
            "confusion_matrix": [[tn, fp], [fn, tp]],
        }
    return {
        "task": "multi-label",
        "n": int(n),
        "loss": float(bce.mean()) if n else float("nan"),
        "accuracy": float((pred == y_true).mean()) if n else float("nan"),
        "auc": float(np.mean(aucs)) if aucs else None,
        "exact_match": float((pred == y_true).all(axis=1).mean()) if n else float("nan"),
        "thresholds": [float(v) for v in thr],
        "per_label": per_label,
    }


def choose_thresholds(y_true: np.ndarray, probs: np.ndarray) -> list[float]:
    """A decision threshold per label from validation data: the point of its ROC curve
    with the largest Youden index (TPR - FPR), which weighs a rare finding's misses as
    much as its false alarms. A label with a single class in ``y_true`` keeps 0.5."""
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    out = []
    for j in range(probs.shape[1]):
        t = y_true[:, j]
        if not 0 < t.sum() < len(t):
            out.append(0.5)
            continue
        fpr, tpr, thr = roc_curve(t, probs[:, j])
        finite = np.isfinite(thr)
        best = int(np.argmax(np.where(finite, tpr - fpr, -np.inf)))
        out.append(float(min(max(thr[best], 0.0), 1.0)))
    return out


def objective_value(metrics: dict, objective: str) -> float:
    """The number a search or model selection optimises, oriented so larger is better."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {sorted(OBJECTIVES)}")
    value = metrics.get(objective)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        # AUC is undefined on a one-class split: fall back to accuracy rather than stall.
        value = metrics["accuracy"] if objective == "auc" else float("nan")
    return -value if OBJECTIVES[objective] == "min" else value


def selection_objective(objective: str, val_labels: Sequence[int] | np.ndarray) -> str:
    """The objective epoch selection can actually use on this validation split: AUC needs
    two classes present, so a one-class split selects by validation loss instead (its
    accuracy would only reward predicting that one class)."""
    if objective == "auc" and len(np.unique(np.asarray(val_labels))) < 2:
        return "loss"
    return objective


def decides(metrics: dict) -> bool:
    """Whether the predictions use more than one class (or the split holds only one).

    Early in training a network often puts every image in the majority class while its
    scores already rank well: a good AUC, and a classifier no user wants. Epoch selection
    prefers epochs that decide. Multi-label predictions are ranked by their mean AUC alone
    (a rare label is rightly predicted absent for most images, at any epoch).
    """
    if metrics.get("task") == "multi-label":
        return True
    cm = metrics["confusion_matrix"]
    predicted = sum(1 for j in range(len(cm)) if any(row[j] for row in cm))
    present = sum(1 for row in cm if any(row))
    return predicted > 1 or present <= 1


def epoch_score(metrics: dict, objective: str) -> tuple[float, float, float]:
    """How epochs are ranked for selection, larger is better: deciding epochs first, then
    the objective, then the lower validation loss."""
    return (float(decides(metrics)), objective_value(metrics, objective), -metrics["loss"])
