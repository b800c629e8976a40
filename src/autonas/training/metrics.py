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
                           class_names: Sequence[str] | None = None) -> dict:
    """Loss, accuracy, AUC-ROC, confusion matrix and per-class precision/recall (JSON-able)."""
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
    return {
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
    prefers epochs that decide.
    """
    cm = metrics["confusion_matrix"]
    predicted = sum(1 for j in range(len(cm)) if any(row[j] for row in cm))
    present = sum(1 for row in cm if any(row))
    return predicted > 1 or present <= 1


def epoch_score(metrics: dict, objective: str) -> tuple[float, float, float]:
    """How epochs are ranked for selection, larger is better: deciding epochs first, then
    the objective, then the lower validation loss."""
    return (float(decides(metrics)), objective_value(metrics, objective), -metrics["loss"])
