"""A private, throw-away PostgreSQL cluster for benchmarks: initdb in a temp dir, loopback only, stopped on exit.

Uses Debian's server binaries (``apt-get install -y postgresql``; found under /usr/lib/postgresql/<version>/bin).
initdb refuses to run as root, so as root the cluster is created and run as the ``postgres`` system user.
The cluster listens on 127.0.0.1 only, on a free port, with its unix socket inside its own data directory, and
trusts local connections (it holds nothing but generated benchmark data and is deleted when stopped).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _bindir() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise RuntimeError("PostgreSQL server not found: apt-get update && apt-get install -y postgresql")
    return os.path.dirname(found[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """``with PgCluster() as pg: pg.url("dbname")`` — started on enter, stopped and deleted on exit."""

    def __init__(self, port: int | None = None):
        self.bindir = _bindir()
        self.port = port or _free_port()
        self.root = tempfile.mkdtemp(prefix="sweep-bench-pg-")
        self.data = os.path.join(self.root, "data")
        self.log = os.path.join(self.root, "server.log")
        self.as_root = os.geteuid() == 0
        self.started = False

    def _run(self, *args: str) -> str:
        cmd = list(args)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout

    def start(self) -> "PgCluster":
        """initdb + pg_ctl start; returns when the server accepts connections."""
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(f"{self.bindir}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        opts = f"-k {self.data} -p {self.port} -c listen_addresses=127.0.0.1"
        self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-l", self.log, "-o", opts, "-w", "start")
        self.started = True
        return self

    def version(self) -> str:
        return self._run(f"{self.bindir}/postgres", "--version").strip()

    def stop(self) -> None:
        """pg_ctl stop -m fast, then delete the cluster."""
        if self.started:
            try:
                self._run(f"{self.bindir}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
            finally:
                self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def recreate_database(self, dbname: str) -> str:
        """DROP + CREATE ``dbname``; returns its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}"')
            conn.execute(f'CREATE DATABASE "{dbname}"')
        return self.url(dbname)

    def __enter__(self) -> "PgCluster":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


if __name__ == "__main__":  # smoke test: start, print version and URL, stop
    with PgCluster() as pg:
        print(pg.version(), pg.url())
        time.sleep(0.1)
