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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[object]:
    """A throw-away PostgreSQL server for the session (about 3 s to start), stopped at the
    end; the tests that need it skip only where no server binary is installed."""
    from autonas.trials.pgcluster import PostgresCluster, find_bin

    if find_bin() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine: install "
                    "Debian's postgresql package to run the multi-worker tests")
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def postgres_url(postgres_cluster, request) -> str:
    """A URL of a fresh database on the session's server, one per test."""
    import re

    import psycopg

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50]
    base = postgres_cluster.url
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + "/" + name
