"""The model-space building blocks in one import, as NNI users expect them:

    from autonas.nn import LayerChoice, ModelSpace, MutableLinear, choice
"""

from __future__ import annotations

from .spaces.model_space import *  # noqa: F403
from .spaces.model_space import __all__  # noqa: F401
