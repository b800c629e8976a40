"""DARTS on user model spaces: every decision of a ``ModelSpace`` relaxed to a softmax
(the relaxations are in ``model_supernet.py``), bi-level optimisation as on cell spaces.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import register_strategy
from .darts import Darts
from .model_oneshot import ModelSpaceOneShot
from .model_supernet import ModelArchParams, ModelSupernet, derive_arch, relax


@register_strategy("darts", "DARTS, first order: the architecture follows the validation "
                   "gradient at the current weights", order=1)
@register_strategy("darts2", "DARTS, second order: differentiates through one unrolled "
                   "weight step (about 2.5x the cost of first order)", order=2)
@dataclass
class ModelSpaceDarts(ModelSpaceOneShot, Darts):
    """DARTS on a ModelSpace: softmax-weighted mixing of every value of every decision."""


__all__ = ["ModelArchParams", "ModelSpaceDarts", "ModelSupernet", "derive_arch", "relax"]
