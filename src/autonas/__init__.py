"""autonas: neural architecture search for image classification, medical images first."""

from __future__ import annotations

__version__ = "0.1.0"

from .api import ImageClassifier as ImageClassifier
from .experiment import SearchOutcome as SearchOutcome
from .experiment import search as search
