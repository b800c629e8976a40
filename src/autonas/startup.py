"""Settings that must be made before PyTorch is imported (the package's first import).

``OMP_WAIT_POLICY`` decides whether idle OpenMP threads spin (ACTIVE, fast on an idle
machine) or sleep (PASSIVE, kinder to other processes on a busy one). It is read once, when
PyTorch loads its OpenMP runtime, so it cannot be changed later in the process.
``benchmarks/contention.py`` measures both; until it shows PASSIVE to be better, the
runtime's own default stays, and ``AUTONAS_OMP_WAIT_POLICY=passive`` (or ``active``) picks
one when ``OMP_WAIT_POLICY`` itself is not set.
"""

from __future__ import annotations

import os

DEFAULT_OMP_WAIT_POLICY: str | None = None
"""None: leave the OpenMP runtime's default."""

_POLICIES = ("ACTIVE", "PASSIVE")


def apply_omp_wait_policy(environ: dict[str, str] | None = None) -> str | None:
    """Set ``OMP_WAIT_POLICY`` from ``AUTONAS_OMP_WAIT_POLICY`` (or the default) unless the
    user set it; returns the policy in force (None: the runtime's default). An unknown value
    is ignored, so a typo never stops the package from importing."""
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env:
        return env["OMP_WAIT_POLICY"]
    wanted = (env.get("AUTONAS_OMP_WAIT_POLICY") or DEFAULT_OMP_WAIT_POLICY or "").upper()
    if wanted not in _POLICIES:
        return None
    env["OMP_WAIT_POLICY"] = wanted
    return wanted


apply_omp_wait_policy()
