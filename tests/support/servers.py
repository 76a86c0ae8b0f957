"""Throwaway Redis and PostgreSQL servers on loopback for tests (Debian's redis-server and
postgresql packages; `.ci/run` installs them).

    with redis_server(tmp_path) as r:       # r.url == "redis://127.0.0.1:<port>/0"
        r.kill(); r.start()                   # an outage, then the same server back on its port
    with postgres_server(tmp_path) as pg:   # pg.url == "postgresql+psycopg://gw@127.0.0.1:<port>/gw"
        pg.create_database("other")

Each server lives in its own directory under the given path, listens on a free port and is
stopped (and its files removed with the directory) when the block ends. Tests that need one
skip when the binary is missing, so a machine without them still runs the rest.
"""
from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import free_port, wait_port


# --- Redis ----------------------------------------------------------------------------------
def redis_binary() -> str | None:
    return shutil.which("redis-server")


class RedisServer:
    def __init__(self, root: Path):
        self.dir = Path(root) / f"redis-{os.getpid()}-{free_port()}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")
        self.proc = subprocess.Popen(
            [redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, 30, proc=self.proc, what="redis-server")

    def kill(self) -> None:
        """An outage: SIGKILL, nothing saved (the data is gone when it comes back)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def flush(self) -> None:
        import redis
        redis.Redis.from_url(self.url).flushall()


@contextmanager
def redis_server(root: Path):
    if not redis_binary():
        import pytest
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(root)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- PostgreSQL -----------------------------------------------------------------------------
def pg_bindir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return str(Path(found[-1]).parent)
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


class Databases:
    """CREATE/DROP DATABASE through ``self.execute`` (a server of ours or one given by URL)."""

    def execute(self, database: str, sql: str) -> None:
        raise NotImplementedError

    def url_for(self, database: str) -> str:
        raise NotImplementedError

    def create_database(self, name: str, template: str | None = None) -> str:
        tpl = f" TEMPLATE {template} STRATEGY FILE_COPY" if template else ""  # faster for small DBs
        self.execute("postgres", f'CREATE DATABASE "{name}"{tpl}')
        return self.url_for(name)

    def drop_database(self, name: str) -> None:
        self.execute("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class PostgresServer(Databases):
    """A cluster of its own (initdb in a temp dir, trust auth on loopback). As root the server
    runs as the `postgres` system user, since PostgreSQL refuses to run as root."""

    user, database = "gw", "gw"

    def __init__(self, root: Path):
        self.bindir = pg_bindir()
        # its own directory under /tmp, not under `root`: pytest's tmp dirs are private to root
        # (0700), which the postgres user could not enter
        self.dir = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = pwd.getpwnam("postgres")

    def _cmd(self, *args: str) -> list[str]:
        return list(args) if self.run_as is None else ["runuser", "-u", "postgres", "--", *args]

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def init(self) -> None:
        os.chmod(self.dir, 0o755)
        if self.run_as is not None:
            os.chown(self.dir, self.run_as.pw_uid, self.run_as.pw_gid)
        done = subprocess.run(self._cmd(f"{self.bindir}/initdb", "-D", str(self.data), "-U",
                                        self.user, "--auth=trust", "-E", "UTF8",
                                        "--locale=C.UTF-8", "--no-sync"),
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"initdb failed: {done.stderr or done.stdout}")

    def start(self) -> None:
        log = open(self.dir / "postgres.log", "ab")
        self.proc = subprocess.Popen(
            self._cmd(f"{self.bindir}/postgres", "-D", str(self.data), "-p", str(self.port),
                      "-h", "127.0.0.1", "-k", str(self.dir), "-c", "fsync=off",
                      "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                      "-c", "max_connections=300", "-c", "shared_buffers=64MB"),
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_port(self.port, 30, proc=self.proc, what="postgres")
        deadline = time.monotonic() + 30
        while True:  # the port opens before the server accepts sessions
            try:
                self.execute("postgres", "SELECT 1")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        self.create_database(self.database)

    def execute(self, database: str, sql: str) -> None:
        import psycopg
        with psycopg.connect(host="127.0.0.1", port=self.port, user=self.user, dbname=database,
                             autocommit=True) as conn:
            conn.execute(sql)


    def _postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            # signal the postmaster itself: as root, self.proc is runuser, which does not pass
            # SIGINT on (the server would outlive the tests)
            pid = self._postmaster_pid()
            try:
                os.kill(pid, signal.SIGINT) if pid else self.proc.send_signal(signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                if pid:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextmanager
def postgres_server(root: Path):
    if not pg_bindir():
        import pytest
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql)")
    server = PostgresServer(root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        server.stop()
