"""What a network's outputs mean for each kind of task, in one place.

A *head* names how logits become probabilities:

* ``softmax``: one logit per class, one class per image (binary and multi-class);
* ``sigmoid``: one logit per label, any set of labels per image (multi-label);
* ``coral``: K-1 cumulative logits ``P(y > k)`` of an ordinal K-class problem (CORAL),
  turned into K class probabilities that sum to 1.

Training, evaluation, prediction and export all ask this module instead of assuming a
softmax, so a new task kind is a change here rather than in every caller.
"""

from __future__ import annotations

import torch

HEADS = ("softmax", "sigmoid", "coral")


def head_for(task: str, ordinal: bool = False) -> str:
    """The head of a data task (``ImageData.task``), with the ordinal option applied."""
    if task == "multi-label":
        return "sigmoid"
    return "coral" if ordinal else "softmax"


def output_units(head: str, n_classes: int) -> int:
    """Logits the network must produce: one per class or label, K-1 for CORAL."""
    return n_classes - 1 if head == "coral" else n_classes


def coral_probs(logits: torch.Tensor) -> torch.Tensor:
    """K class probabilities from K-1 cumulative logits: p_k = P(y > k-1) - P(y > k).

    With CORAL's ordered biases the cumulative probabilities decrease, so every p_k is
    >= 0; the clamp only guards an unordered head (e.g. before training) against tiny
    negative values, and the renormalisation keeps the sum at exactly 1.
    """
    above = torch.sigmoid(logits.float())
    ones = torch.ones_like(above[:, :1])
    zeros = torch.zeros_like(above[:, :1])
    cumulative = torch.cat([ones, above, zeros], dim=1)
    probs = (cumulative[:, :-1] - cumulative[:, 1:]).clamp(min=0.0)
    return probs / probs.sum(dim=1, keepdim=True).clamp(min=1e-12)


def to_probs(logits: torch.Tensor, head: str = "softmax") -> torch.Tensor:
    """Class probabilities (softmax, coral) or per-label probabilities (sigmoid)."""
    if head == "sigmoid":
        return torch.sigmoid(logits.float())
    if head == "coral":
        return coral_probs(logits)
    return logits.float().softmax(dim=1)


def batch_correct(logits: torch.Tensor, y: torch.Tensor, head: str = "softmax") -> torch.Tensor:
    """Correct predictions in a batch, as a sum over images (a multi-label image counts the
    share of its labels that are right, at a 0.5 threshold), for running accuracies."""
    if head == "sigmoid":
        return ((logits > 0) == (y > 0)).float().mean(dim=1).sum()
    return (to_probs(logits, head).argmax(1) == y).sum()


def head_of_labels(y: torch.Tensor) -> str:
    """The head implied by a label tensor alone (2-D 0/1 targets are multi-label)."""
    return "sigmoid" if y.ndim == 2 else "softmax"


class CoralHead(torch.nn.Module):
    """CORAL's ordinal output on any network with one output unit: K-1 logits
    ``score - threshold_k`` that share the network's weights and differ only by their
    biases, kept ordered (``threshold_k`` increasing, a cumulative sum of softplus steps),
    so ``P(y > k)`` decreases with k and the class probabilities are never negative."""

    def __init__(self, network: torch.nn.Module, n_classes: int) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"an ordinal head needs at least 2 grades, got {n_classes}")
        self.network = network
        self.first = torch.nn.Parameter(torch.zeros(1))
        self.steps = torch.nn.Parameter(torch.zeros(n_classes - 2))

    def thresholds(self) -> torch.Tensor:
        steps = torch.nn.functional.softplus(self.steps) + 1e-3
        return torch.cat([self.first, self.first + torch.cumsum(steps, dim=0)])

    def _levels(self, score: torch.Tensor) -> torch.Tensor:
        return score[:, :1] - self.thresholds()[None, :]

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.network(x)
        if isinstance(out, tuple):  # an auxiliary head gets the same treatment
            return tuple(self._levels(o) for o in out)
        return self._levels(out)

    def __getattr__(self, name: str):  # set_drop_path, aux_head, ... of the wrapped network
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("network"), name)


def eval_loss_accuracy(logits: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Unweighted loss and accuracy of held-out logits (a search's supernet check):
    cross-entropy and argmax accuracy, or for (N, L) targets binary cross-entropy and the
    per-label accuracy at 0.5."""
    logits = logits.float()
    if y.ndim == 2:
        y = y.float()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
        return float(loss), float(((logits > 0) == (y > 0)).float().mean())
    y = y.long()
    loss = torch.nn.functional.cross_entropy(logits, y)
    return float(loss), float((logits.argmax(1) == y).float().mean())
