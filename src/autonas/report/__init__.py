"""Self-contained HTML reports of run folders, and comparisons of several runs.

The report reads only the run folder (it never re-runs anything), so any finished,
interrupted or partial run can be reported again at any time.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .load import RunData, load_run

REPORT_FILE = "report.html"


def write_report(run_dir: str | Path, out: str | Path | None = None, *,
                 n_resamples: int = 1000, seed: int = 0) -> Path:
    """Write the report of ``run_dir`` to ``out`` (default ``run_dir/report.html``)."""
    from .html import render_report  # matplotlib and jinja2 load only when a page is made

    run = load_run(run_dir)
    target = Path(out) if out is not None else run.path / REPORT_FILE
    _write_text(target, render_report(run, n_resamples=n_resamples, seed=seed))
    return target


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path, *,
                     n_resamples: int = 1000, seed: int = 0) -> Path:
    """One page comparing several runs: a table of their results and overlaid curves."""
    from .html import render_comparison

    if not run_dirs:
        raise ConfigError("compare needs at least one run folder")
    runs = [load_run(d) for d in run_dirs]
    target = Path(out)
    _write_text(target, render_comparison(runs, target, n_resamples=n_resamples, seed=seed))
    return target


def _write_text(path: Path, text: str) -> None:
    """Atomic write: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; a report is for sharing
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


__all__ = ["REPORT_FILE", "RunData", "load_run", "write_comparison", "write_report"]
