"""WSGI entry point: `gunicorn -k gevent -w N -b HOST:PORT wsgi:app`."""
try:  # gevent first, before anything imports ssl/socket (as CTFd's wsgi.py does)
    from gevent import monkey

    if not monkey.is_module_patched("socket"):
        monkey.patch_all()
except ImportError:  # pragma: no cover - gevent is a declared dependency
    pass

from app import create_app  # noqa: E402

app = create_app()
