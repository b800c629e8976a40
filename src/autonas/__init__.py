"""autonas: neural architecture search for image classification, medical images first."""

from __future__ import annotations

__version__ = "0.1.0"

# First: sets OMP_WAIT_POLICY before anything below imports torch.
from . import startup as _startup  # noqa: F401  # isort: skip

from .api import ImageClassifier as ImageClassifier
from .experiment import SearchOutcome as SearchOutcome
from .experiment import search as search
