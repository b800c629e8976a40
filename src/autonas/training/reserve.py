"""How long evaluation and the report will take, estimated before retraining starts, so
retraining leaves exactly that much of the budget (not a fixed share of it)."""

from __future__ import annotations

import torch
from torch import nn

from ..data import ImageData
from .loop import probe_forward_seconds, profile_seconds

REPORT_SECONDS = 2.0
"""The report's fixed cost on a modest CPU: plotting imports, fixed figures, writing (its
parts that grow with the classes are bounded in ``report/``)."""


def finish_seconds(model: nn.Module, data: ImageData, device: torch.device) -> float:
    """Seconds to keep for evaluation and the report, estimated before retraining.

    Two timed forward passes (a batch, one image) give the network's cost; from them: the
    validation and test predictions, the profiler's latency runs, the metrics, and the
    report (its size and time grow with the number of classes, bounded in ``report/``).
    """
    x = data.val_x[:64] if len(data.val_y) else data.train_x[:64]
    per_image = probe_forward_seconds(model, x, normalizer=None, device=device)
    predict = per_image * (len(data.val_y) + len(data.test_y))
    profile = profile_seconds(model, (data.channels, *data.image_size), device)
    n, classes = len(data.test_y) + len(data.val_y), data.n_classes
    metrics = 0.2 + 2e-6 * n * classes
    report = REPORT_SECONDS + 0.005 * min(classes, 1000) + 2e-5 * len(data.test_y)
    return 1.25 * (predict + profile + metrics) + report
