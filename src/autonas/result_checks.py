"""What makes a run's final model untrustworthy, said in plain words.

``metrics.json`` carries the list (``warnings``: ``code`` and ``message``), the log repeats
it, and the report shows it in a box above the numbers, so a retraining too short to learn
or a model that predicts one class is never presented as a result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .training.plan import MACHINE_SLOWER

SHORT_RETRAIN = 5
"""A retraining of fewer epochs than this is flagged: too short to have learned much."""


def result_warnings(meta: dict[str, Any], predictions: dict[str, np.ndarray]
                    ) -> list[dict[str, str]]:
    """What makes the final model untrustworthy, as ``{code, message}``: a retraining too
    short to learn, a model that predicts one class only, a plan cut by a slower machine."""
    warnings: list[dict[str, str]] = []
    epochs = int(meta.get("epochs") or 0)
    if epochs < SHORT_RETRAIN:
        warnings.append({"code": "short-retrain", "message": (
            f"retraining ran {epochs} epoch{'s' if epochs != 1 else ''} only (fewer than "
            f"{SHORT_RETRAIN}): too short to learn much; treat these metrics as a failed run, "
            "not a result, and give the run a larger --budget")})
    one_class = []
    for split in ("val", "test"):
        probs = predictions.get(f"{split}_probs")
        if probs is not None and len(probs) > 1 and probs.ndim == 2 and probs.shape[1] > 1:
            predicted = np.unique(probs.argmax(axis=1))
            if len(predicted) == 1:
                one_class.append((split, int(predicted[0])))
    if one_class:
        names = meta.get("class_names") or []
        label = one_class[0][1]
        name = names[label] if label < len(names) else str(label)
        splits = " and ".join(split for split, _ in one_class)
        warnings.append({"code": "one-class", "message": (
            f"the final model predicts one class ({name!r}) for every {splits} image: it has "
            "learned nothing beyond the majority class; this is not a usable result")})
    first, slowdown = meta.get("first_plan"), meta.get("slowdown")
    at_start = meta.get("start_slowdown")
    if first and at_start and at_start >= MACHINE_SLOWER:
        warnings.append({"code": "slower-machine", "message": (
            f"planned {first} epochs, got {epochs}: the machine ran {at_start:.1f}x slower "
            "than at the start of the run when retraining planned its epochs (other "
            f"processes on its cores?); at the start's speed about {round(first * at_start)} "
            "would have fit")})
    if first and epochs < first:
        slower = (f", the machine ran {slowdown:.1f}x slower than at the start"
                  if slowdown and slowdown > 1.2 else "")
        warnings.append({"code": "fewer-epochs", "message": (
            f"planned {first} epochs, got {epochs}{slower}")})
    return warnings
