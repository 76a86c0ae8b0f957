"""Process plumbing shared by the end-to-end suites: free ports, polling, log tails, starting and
stopping the gateway under gunicorn and the fake upstreams.

    env = clean_env(GATEWAY_INSTANCE_PATH=str(instance), GATEWAY_DATABASE_URL=...)
    admin_key = migrate_and_admin_key(env, "e2e-admin")
    gunicorn = start_gunicorn(env, workers=2, log_path=tmp / "gunicorn.log",
                              ready_path="/v1/models", ready_status=401)
    try:
        ...                                   # gunicorn.url, gunicorn.workers()
    finally:
        gunicorn.stop()                       # SIGINT to its session, SIGKILL after the grace

Every process is started from the repository root with the venv's binaries (``BIN``). A process
started with ``new_session=True`` (the default) leads a session of its own, so ``stop_group``
reaches gunicorn's workers too. Waits raise AssertionError, naming what was waited for and,
where there is a log, its last lines.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable

import requests

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the venv's bin: gunicorn and flask live next to python
FAKE_PROVIDER = ROOT / "tests" / "e2e" / "fake_provider.py"  # every provider's wire format


# ------------------------------------------------------------------------------------ waiting
def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Poll `check()` until it returns something truthy (returned); an exception counts as "not
    yet". AssertionError naming `what` (and the last exception) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # not there yet
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def tail(path: Path | None, n: int = 60) -> str:
    """The last `n` lines of a log file ("" when there is none)."""
    if path is None:
        return ""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _exited(proc: subprocess.Popen | None, what: str, log_path: Path | None) -> None:
    if proc is not None and proc.poll() is not None:
        raise AssertionError(f"{what} exited with {proc.returncode}"
                             + (f":\n{tail(log_path)}" if log_path else ""))


_EXITED = object()


def _polled(check, proc, what: str, log_path: Path | None, timeout: float, interval: float):
    """wait_until(check), failing at once when `proc` exits; the log tail on any failure."""
    def ready():
        if proc is not None and proc.poll() is not None:
            return _EXITED  # truthy: ends the wait (an exception would only count as "not yet")
        return check()
    try:
        result = wait_until(ready, timeout, interval, what)
    except AssertionError as exc:
        _exited(proc, what, log_path)  # died meanwhile: say so, with its log
        raise AssertionError(f"{exc}" + (f"\n--- last lines of {log_path}:\n{tail(log_path)}"
                                         if log_path else "")) from None
    if result is _EXITED:
        _exited(proc, what, log_path)
    return result


def wait_port(port: int, timeout: float = 15.0, interval: float = 0.05, *,
              proc: subprocess.Popen | None = None, what: str | None = None) -> None:
    """Until something accepts TCP connections on 127.0.0.1:`port` (fails early if `proc` exits)."""
    def listening():
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0
    _polled(listening, proc, what or f"port {port} to open", None, timeout, interval)


def wait_http(url: str, status: int | None = None, timeout: float = 30.0, interval: float = 0.1, *,
              proc: subprocess.Popen | None = None, log_path: Path | None = None,
              what: str | None = None) -> None:
    """Until GET `url` answers `status` (None: any 2xx); fails early if `proc` exits, and every
    failure carries the tail of `log_path`."""
    def answers():
        r = requests.get(url, timeout=1)
        return r.ok if status is None else r.status_code == status
    _polled(answers, proc, what or url, log_path, timeout, interval)


# ------------------------------------------------------------------------------------ /proc
def children_of(pid: int, *, zombies: bool = False) -> list[int]:
    """The pids whose parent is `pid` (gunicorn's workers), sorted; zombies only if asked."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and (zombies or fields[0] != "Z"):
            out.append(int(entry))
    return sorted(out)


def pid_alive(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_workers(master_pid: int, n: int, exclude: Iterable[int] = frozenset(),
                 timeout: float = 30.0) -> list[int]:
    """Until `master_pid` has exactly `n` children, none of them in `exclude`; their pids."""
    exclude = set(exclude)

    def ready():
        pids = [p for p in children_of(master_pid) if p not in exclude]
        return pids if len(pids) == n and len(children_of(master_pid)) == n else None
    return wait_until(ready, timeout, 0.1, f"{n} gunicorn workers")


# ------------------------------------------------------------------------------------ start / stop
def start_process(argv: list[str], log_path: Path | None = None, *, stdout=None,
                  env: dict | None = None, cwd: Path = ROOT,
                  new_session: bool = True) -> subprocess.Popen:
    """Popen `argv` from `cwd`, stdout+stderr to `log_path` (overwritten), to `stdout` when given
    (e.g. subprocess.PIPE), else to /dev/null; in a session of its own unless new_session=False."""
    if stdout is None and log_path is None:
        stdout = subprocess.DEVNULL
    if stdout is not None:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=stdout, stderr=subprocess.STDOUT,
                                start_new_session=new_session)
    with open(log_path, "wb") as fh:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=new_session)


def _signal(proc: subprocess.Popen, sig, group: bool) -> bool:
    if proc.poll() is not None:
        return False
    try:
        os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
    except ProcessLookupError:
        return False
    return True


def _reap(proc: subprocess.Popen, grace: float, group: bool) -> None:
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL) if group else proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(5)


def stop_group(proc: subprocess.Popen, sig=signal.SIGINT, grace: float = 10.0, *,
               group: bool = True) -> None:
    """Stop a process we started: `sig` to its process group (group=False: to it alone), then
    SIGKILL after `grace` seconds. Nothing to do if it has already exited."""
    if _signal(proc, sig, group):
        _reap(proc, grace, group)


def stop_all(procs: Iterable[subprocess.Popen], sig=signal.SIGTERM, grace: float = 10.0, *,
             group: bool = True) -> None:
    """stop_group for several processes, all signalled first and then waited for one by one."""
    signalled = [p for p in list(procs) if _signal(p, sig, group)]
    for p in signalled:
        _reap(p, grace, group)


def start_upstream(script: Path = FAKE_PROVIDER, log_path: Path | None = None, *args: str,
                   ready_path: str = "/_stats", timeout: float = 15.0,
                   what: str = "the fake provider") -> tuple[subprocess.Popen, str]:
    """`python SCRIPT --port P ARGS` in its own session, once GET `ready_path` answers 2xx:
    (process, base URL). Stop it with stop_group(proc, signal.SIGTERM, 5)."""
    port = free_port()
    proc = start_process([sys.executable, str(script), "--port", str(port), *args], log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}{ready_path}", None, timeout, 0.1, proc=proc, log_path=log_path, what=what)
    except BaseException:
        stop_group(proc, signal.SIGTERM, 5)
        raise
    return proc, url


@contextmanager
def upstream(script: Path = FAKE_PROVIDER, log_path: Path | None = None, *args: str, **kw):
    """start_upstream as a block: yields the base URL; SIGTERM (5 s grace) when it ends."""
    proc, url = start_upstream(script, log_path, *args, **kw)
    try:
        yield url
    finally:
        stop_group(proc, signal.SIGTERM, 5)


# ------------------------------------------------------------------------------------ the gateway
def clean_env(**values: str) -> dict[str, str]:
    """os.environ without any GATEWAY_* variable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    env.update(values)
    return env


def flask_cli(env: dict, *args: str) -> str:
    """`flask --app wsgi ARGS` from the repository root: its stdout (AssertionError with its
    stderr when it fails)."""
    done = subprocess.run([str(BIN / "flask"), "--app", "wsgi", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def migrate_and_admin_key(env: dict, name: str) -> str:
    """`flask db upgrade`, then `flask create-key --name NAME --scopes admin`: the raw key."""
    flask_cli(env, "db", "upgrade")
    return flask_cli(env, "create-key", "--name", name, "--scopes", "admin").strip().splitlines()[-1].strip()


class Gunicorn:
    """``gunicorn -k gevent -w WORKERS -b 127.0.0.1:PORT [ARGS] wsgi:app`` from the repository
    root with `env`; output to `log_path` (or `stdout`, see start_process)."""

    def __init__(self, env: dict, *, workers: int = 1, port: int | None = None,
                 log_path: Path | None = None, stdout=None, args: Iterable[str] = (),
                 new_session: bool = True):
        self.env, self.workers_wanted, self.port = env, workers, port or free_port()
        self.log_path, self.stdout, self.args, self.new_session = log_path, stdout, list(args), new_session
        self.proc: subprocess.Popen | None = None

    @property
    def argv(self) -> list[str]:
        return [str(BIN / "gunicorn"), "-k", "gevent", "-w", str(self.workers_wanted),
                "-b", f"127.0.0.1:{self.port}", *self.args, "wsgi:app"]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> "Gunicorn":
        self.proc = start_process(self.argv, self.log_path, stdout=self.stdout, env=self.env,
                                  new_session=self.new_session)
        return self

    def wait_http(self, path: str = "/healthz", status: int | None = 200, timeout: float = 30.0,
                  what: str = "gunicorn") -> None:
        """Until GET `path` answers `status` (AssertionError with the log tail otherwise)."""
        wait_http(f"{self.url}{path}", status, timeout, 0.1, proc=self.proc,
                  log_path=self.log_path, what=what)

    def workers(self) -> list[int]:
        return children_of(self.pid)

    def wait_workers(self, n: int | None = None, exclude: Iterable[int] = frozenset(),
                     timeout: float = 30.0) -> list[int]:
        return wait_workers(self.pid, self.workers_wanted if n is None else n, exclude, timeout)

    def stop(self, sig=signal.SIGINT, grace: float = 15.0) -> None:
        """SIGINT (gunicorn's quick shutdown) by default; SIGTERM is the graceful one."""
        if self.proc is not None:
            stop_group(self.proc, sig, grace, group=self.new_session)


def start_gunicorn(env: dict, *, workers: int = 1, log_path: Path | None = None,
                   ready_path: str | None = "/healthz", ready_status: int | None = 200,
                   timeout: float = 30.0, **kw) -> Gunicorn:
    """A started Gunicorn (keywords as Gunicorn's) once GET `ready_path` answers `ready_status`
    (ready_path=None: no wait). If it does not, it is stopped and the AssertionError carries the
    tail of its log."""
    server = Gunicorn(env, workers=workers, log_path=log_path, **kw).start()
    if ready_path is not None:
        try:
            server.wait_http(ready_path, ready_status, timeout)
        except BaseException:
            server.stop()
            raise
    return server
