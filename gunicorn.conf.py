"""gunicorn settings: gevent workers; `gunicorn wsgi:app` picks this file up from the cwd."""
import os

bind = os.environ.get("GATEWAY_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GATEWAY_WORKERS", "2"))
worker_class = "gevent"
worker_connections = int(os.environ.get("GATEWAY_WORKER_CONNECTIONS", "10000"))
timeout = 120            # a worker silent this long is restarted
graceful_timeout = 60    # streams in flight get this long to finish on SIGTERM/HUP
keepalive = 75
# structured JSON access log (one object per line) with the request id; never bodies or keys
accesslog = os.environ.get("GATEWAY_ACCESS_LOG") or None
access_log_format = ('{"time": "%(t)s", "remote": "%(h)s", "method": "%(m)s", "path": "%(U)s", '
                     '"status": %(s)s, "bytes": "%(B)s", "duration_ms": %(M)s, '
                     '"request_id": "%({x-request-id}o)s", "user_agent": "%(a)s"}')
loglevel = os.environ.get("GATEWAY_LOG_LEVEL", "info")


def on_starting(server):
    """Once, in the master: a fresh directory for prometheus-client's multiprocess files."""
    import shutil
    import tempfile

    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="gateway-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    else:
        shutil.rmtree(path, ignore_errors=True)
        os.makedirs(path, exist_ok=True)


def child_exit(server, worker):
    """Drop a dead worker's live gauges from the aggregated metrics."""
    try:
        from prometheus_client import multiprocess
        multiprocess.mark_process_dead(worker.pid)
    except Exception:
        pass


def post_worker_init(worker):
    """Per worker: create the admin from the environment when there is no user yet (the first
    worker wins, the others see the user or lose the unique-name race harmlessly), and start
    the scheduled health checks (one runner per round across workers via a DB lease).

    Done in the workers, not the master, so the master never imports the app and stays small.
    """
    import gevent

    from app.cli import ensure_admin_from_env
    from app.extensions import db
    from app.services import health

    app = worker.wsgi
    with app.app_context():
        try:
            created = ensure_admin_from_env(app)
            if created:
                worker.log.info("created admin user %r from GATEWAY_ADMIN_USER", created)
        except Exception as exc:  # schema not migrated yet, or another worker just created it
            db.session.rollback()
            worker.log.info("admin from the environment not created here: %s", type(exc).__name__)
        finally:
            db.session.remove()
    gevent.spawn(health.scheduler_loop, app)


def worker_exit(server, worker):
    """Graceful stop: write every pending usage record before the worker goes."""
    from app.services.usage import flush_app

    app = getattr(worker, "wsgi", None)
    if app is not None:
        gate = app.extensions.get("gateway_gate")
        if gate is not None:
            gate.flush()  # end every finished request's reservation and lease
        written = flush_app(app)
        if written:
            server.log.info("worker %s flushed %d usage record(s) on exit", worker.pid, written)
