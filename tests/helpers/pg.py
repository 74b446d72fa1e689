"""A throwaway PostgreSQL cluster for the tests that need a real server.

``start_cluster()`` runs ``initdb`` into a temporary directory and starts the
server on 127.0.0.1 (a free port) and a Unix socket, with trust auth, as the
``postgres`` user when running as root (PostgreSQL refuses root). Debian's
``postgresql`` package provides the binaries; ``scripts/install-system-deps.sh``
installs it. ``unavailable()`` is the one policy for a machine without it: a
skip, but a failure under CI (``CI`` set), where it must be there.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from typing import Callable

INSTALL_HINT = "run scripts/install-system-deps.sh as root to install it"
IN_CI = bool(os.environ.get("CI"))


class PgUnavailable(Exception):
    """Why no cluster can be started on this machine."""


def unavailable(why: str):
    """No PostgreSQL: a failure under CI (it must be there), else a skip."""
    import pytest

    if IN_CI:
        pytest.fail(f"PostgreSQL unavailable under CI: {why}; {INSTALL_HINT}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable: {why}; {INSTALL_HINT}")


def _bindir() -> str | None:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0,
    )
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return os.path.dirname(initdb)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgCluster:
    """A running cluster: where it listens, and how to stop it."""

    def __init__(self, base: str, port: int, stop: Callable[[], None]):
        self.base = base
        self.data = os.path.join(base, "data")
        self.sockdir = os.path.join(base, "sock")
        self.log = os.path.join(base, "postgres.log")
        self.host = "127.0.0.1"
        self.port = port
        self.user = "postgres"
        self.database = "postgres"
        self.ssl_cafile: str | None = None
        self.stop = stop

    def tcp(self, **kw):
        return dict(host=self.host, port=self.port, user=self.user, database=self.database, **kw)

    def unix(self, **kw):
        return dict(host=self.sockdir, port=self.port, user=self.user, database=self.database, **kw)

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def fresh_database(self, name: str) -> str:
        """Drop and re-create database ``name``; return its DSN."""
        import asyncio

        import asyncpg

        async def go():
            conn = await asyncpg.connect(self.dsn())
            try:
                await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                await conn.execute(f'CREATE DATABASE "{name}"')
            finally:
                await conn.close()

        asyncio.run(go())
        return self.dsn(name)


def start_cluster(prefix: str = "ferroloop-pg-", *, max_connections: int = 60,
                  make_tls: Callable[[str], tuple[str, str]] | None = None) -> PgCluster:
    """Start a cluster (call ``.stop()`` when done). ``make_tls(dir)`` returns
    (certificate, key) files to serve TLS with. Raises PgUnavailable when
    this machine cannot run one, RuntimeError when starting it failed."""
    try:
        import asyncpg  # noqa: F401
    except ImportError as exc:
        raise PgUnavailable("asyncpg is not installed") from exc
    bindir = _bindir()
    if bindir is None:
        raise PgUnavailable("server binaries (initdb, pg_ctl) not found")
    prefix_cmd: list[str] = []
    owner = None
    if os.geteuid() == 0:
        import pwd

        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise PgUnavailable("running as root and there is no 'postgres' user") from exc
        runuser = shutil.which("runuser")
        if runuser is None:
            raise PgUnavailable("running as root and runuser(1) is missing")
        prefix_cmd = [runuser, "-u", "postgres", "--"]

    base = tempfile.mkdtemp(prefix=prefix)
    sockdir = os.path.join(base, "sock")
    os.makedirs(sockdir)
    env = dict(os.environ, LC_ALL="C", LANG="C")
    env.pop("PGDATA", None)

    def chown(*paths: str) -> None:
        if owner is not None:
            for p in paths:
                os.chown(p, owner.pw_uid, owner.pw_gid)

    def sh(*args: str):
        return subprocess.run([*prefix_cmd, *args], capture_output=True, text=True,
                              env=env, timeout=60, cwd=base)

    def stop() -> None:
        if os.path.exists(os.path.join(base, "data", "postmaster.pid")):
            sh(os.path.join(bindir, "pg_ctl"), "-D", os.path.join(base, "data"),
               "-m", "immediate", "-w", "-t", "30", "stop")
        shutil.rmtree(base, ignore_errors=True)

    chown(base, sockdir)
    try:
        r = sh(os.path.join(bindir, "initdb"), "-D", os.path.join(base, "data"), "-A", "trust",
               "-U", "postgres", "-E", "UTF8", "--locale=C", "--no-sync")
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{r.stdout}\n{r.stderr}")
        ssl_opts, cafile = "", None
        if make_tls is not None:
            tlsdir = os.path.join(base, "tls")
            os.makedirs(tlsdir)
            cafile, keyfile = make_tls(tlsdir)
            chown(tlsdir, cafile, keyfile)
            ssl_opts = f" -c ssl=on -c ssl_cert_file={cafile} -c ssl_key_file={keyfile}"
        for _attempt in range(3):  # the free port may be taken in the meantime
            cluster = PgCluster(base, _free_port(), stop)
            cluster.ssl_cafile = cafile
            opts = (f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {sockdir} "
                    f"-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                    f"-c max_connections={max_connections}{ssl_opts}")
            r = sh(os.path.join(bindir, "pg_ctl"), "-D", cluster.data, "-l", cluster.log,
                   "-w", "-t", "30", "-o", opts, "start")
            if r.returncode == 0:
                return cluster
        log = ""
        with contextlib.suppress(OSError), open(cluster.log) as f:
            log = f.read()[-3000:]
        raise RuntimeError(f"pg_ctl start failed:\n{r.stdout}\n{r.stderr}\n{log}")
    except BaseException:
        stop()
        raise
