"""What the benchmark scripts share: how to call the CLI and where the local data lives."""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

# The CLI of the interpreter running the benchmark, whether or not its venv is on PATH.
AUTONAS = [sys.executable, "-m", "autonas.cli"]
PNEUMONIA = (Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist"
             / "pneumoniamnist.recombined.npz")


def spread(values: list[float]) -> dict[str, float | None]:
    """Mean and sample standard deviation (None where there are too few values)."""
    return {"mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None}


def data_args(dataset: str) -> list[str]:
    """A MedMNIST flag, PneumoniaMNIST's local file by name, or a path to an .npz file."""
    if dataset == "pneumoniamnist" and PNEUMONIA.is_file():
        return ["--data", str(PNEUMONIA)]
    return ["--data", dataset] if dataset.endswith(".npz") else ["--dataset", dataset]
