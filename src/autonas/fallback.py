"""Honest ends of a search: what the run must say, and train, when the search did not
really choose (the budget stopped it before its architecture was ever updated, or while
its strategy was still drawing at random)."""

from __future__ import annotations

from typing import Any

from .spaces.base import SearchSpace
from .strategies.base import SearchResult, Strategy


def search_honesty(strategy: Strategy, space: SearchSpace, result: SearchResult) -> dict[str, Any]:
    """What ``search/result.json`` must say when the search did not really choose.

    ``fallback`` (with ``default_arch``): the architecture was never updated, so the space's
    documented default is trained instead of an untouched initialisation. ``limited``: a
    multi-trial search ended while its strategy was still drawing at random.
    """
    if result.arch_steps == 0:
        reason = ("no trial finished inside the search budget" if "states" in result.extra
                  else "the architecture weights were never stepped (the search stopped "
                  "during warm-up)")
        default = space.default_arch()
        if default is None:
            return {"limited": f"{reason}, and {type(space).__name__} has no default "
                               "architecture: trained the untouched initialisation"}
        return {"fallback": f"{reason}: trained the default architecture",
                "default_arch": default}
    if result.extra.get("random_only"):
        complete = result.extra.get("states", {}).get("COMPLETE", 0)
        population = getattr(strategy, "population", lambda: None)()
        return {"limited": f"{plural(complete, 'trial')} finished, fewer than the {population} "
                           f"{strategy.name} draws at random before it exploits what it "
                           "learnt: the result is the best of random architectures"}
    return {}


def plural(n: int, noun: str) -> str:
    """"1 trial", "2 trials"."""
    return f"{n} {noun}{'' if n == 1 else 's'}"
