"""autonas: neural architecture search for image classification, medical images first."""

from __future__ import annotations

__version__ = "0.1.0"
