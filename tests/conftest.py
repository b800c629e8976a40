"""Shared test settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and when other processes keep the
    cores busy, several threads per op make them orders of magnitude slower. Runs started
    from the tests (in process or as subprocesses) get one thread too."""
    threads = torch.get_num_threads()
    env = os.environ.get("AUTONAS_THREADS")
    torch.set_num_threads(1)
    os.environ["AUTONAS_THREADS"] = "1"
    yield
    torch.set_num_threads(threads)
    if env is None:
        os.environ.pop("AUTONAS_THREADS", None)
    else:
        os.environ["AUTONAS_THREADS"] = env


@pytest.fixture(autouse=True)
def _keep_one_torch_thread() -> Iterator[None]:
    """An in-process CLI run sets the thread count from AUTONAS_THREADS; keep it at one."""
    yield
    torch.set_num_threads(1)
