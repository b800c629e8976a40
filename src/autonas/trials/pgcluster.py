"""A throw-away PostgreSQL cluster in a temporary folder, for tests and benchmarks.

It runs the server binaries of the installed PostgreSQL (``/usr/lib/postgresql/*/bin`` on
Debian, or ``pg_ctl`` on PATH) on a free localhost port with trust authentication. Run as
root, the server runs as the ``postgres`` system user, since PostgreSQL refuses root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from ..errors import ConfigError


def find_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest version first), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name), reverse=True)
    if found:
        return Path(found[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """``with PostgresCluster() as pg: pg.url`` -> a SQLAlchemy URL of an empty database."""

    def __init__(self, max_connections: int = 200) -> None:
        self.bin = find_bin()
        if self.bin is None:
            raise ConfigError("no PostgreSQL server binaries found (initdb, pg_ctl); install "
                              "them, e.g. apt-get install postgresql")
        self.max_connections = max_connections
        self.folder: Path | None = None
        self.port = 0

    def _as_server_user(self, *args: str) -> list[str]:
        if os.geteuid() != 0:
            return list(args)
        return ["runuser", "-u", "postgres", "--", *args]

    def start(self) -> PostgresCluster:
        assert self.bin is not None
        self.folder = Path(tempfile.mkdtemp(prefix="autonas-pg-"))
        data = self.folder / "data"
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.folder.chmod(0o700)
        run = {"check": True, "capture_output": True, "text": True}
        try:
            subprocess.run(self._as_server_user(str(self.bin / "initdb"), "-D", str(data),
                                                "-U", "postgres", "-A", "trust",
                                                "--no-sync", "-E", "UTF8"), **run)
            self.port = _free_port()
            options = (f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 "
                       f"-c max_connections={self.max_connections} -c fsync=off "
                       "-c synchronous_commit=off -c full_page_writes=off")
            subprocess.run(self._as_server_user(str(self.bin / "pg_ctl"), "-D", str(data),
                                                "-l", str(self.folder / "server.log"), "-w",
                                                "-o", options, "start"), **run)
        except subprocess.CalledProcessError as exc:
            log = self.folder / "server.log"
            detail = log.read_text()[-2000:] if log.exists() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}{detail}") from None
        return self

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        if self.folder is None:
            return
        data = self.folder / "data"
        if (data / "postmaster.pid").exists():
            subprocess.run(self._as_server_user(str(self.bin / "pg_ctl"), "-D", str(data), "-m",
                                                "immediate", "-w", "stop"),
                           capture_output=True, check=False)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def __enter__(self) -> PostgresCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
