"""Early stopping against the collapse of DARTS-style searches towards skip connections.

Two rules, usable with every one-shot strategy (options ``max_skips`` and
``stable_epochs``), read from the per-epoch search records only, so a resumed search
applies them to the same history:

- ``max_skips`` (DARTS+, criterion 1): stop once the derived normal cell holds more than
  ``k`` skip connections; past that point the supernet's weights favour parameter-free
  paths and the architecture only gets worse.
- ``stable_epochs`` (DARTS+ criterion 2, the early stopping of ZeroLess-DARTS): stop once
  the derived normal cell (which op on which edge) has stayed the same for ``n`` epochs;
  the ranking has settled and further epochs only sharpen it towards collapse.

Epochs with frozen architecture weights (warm-up) are ignored: their genotype is that of
the random initialisation and says nothing about collapse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import ConfigError


def check_stopping_options(max_skips: int | None, stable_epochs: int | None) -> None:
    if max_skips is not None and (not isinstance(max_skips, int) or max_skips < 0):
        raise ConfigError(f"max_skips must be a whole number >= 0 (or null to disable), got "
                          f"{max_skips!r}")
    if stable_epochs is not None and (not isinstance(stable_epochs, int) or stable_epochs < 2):
        raise ConfigError(f"stable_epochs must be a whole number >= 2 (or null to disable), got "
                          f"{stable_epochs!r}")


def collapse_stop(history: Sequence[dict[str, Any]], max_skips: int | None,
                  stable_epochs: int | None) -> str | None:
    """The rule that ends the search now, as ``"<rule>: <why>"``, or None to go on."""
    searched = [r for r in history if not r.get("alphas_frozen")]
    if not searched:
        return None
    last = searched[-1]
    skips = last.get("skip_normal")
    if max_skips is not None and skips is not None and skips > max_skips:
        return (f"max_skips: the normal cell holds {skips} skip connections "
                f"(more than max_skips={max_skips})")
    if stable_epochs is not None and len(searched) >= stable_epochs:
        cells = [(r.get("genotype") or {}).get("normal") for r in searched[-stable_epochs:]]
        if cells[0] is not None and all(c == cells[0] for c in cells):
            return (f"stable_epochs: the normal cell has not changed for {stable_epochs} "
                    "epochs")
    return None
