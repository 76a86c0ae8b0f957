#!/usr/bin/env bash
# The README's two commands:
#   ./run.sh          install into .venv, migrate the embedded SQLite DB, create/print the admin, start gunicorn
#   ./run.sh test     install the test dependencies (and Debian's chromium when root) and run every test
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${GATEWAY_VENV:-.venv}

need_root_pkg() {  # install Debian packages when we can (root + apt-get), else just warn
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if [ -z "${_APT_UPDATED:-}" ]; then apt-get update -qq >/dev/null; _APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    echo "note: please install Debian packages: $*" >&2
  fi
}

make_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" 2>/dev/null || { need_root_pkg python3-venv; "$PY" -m venv "$VENV"; }
    "$VENV/bin/pip" install -q --upgrade pip
  fi
  "$VENV/bin/pip" install -q -e ".$1"
}

case "${1:-start}" in
  start)
    make_venv ""
    export GATEWAY_INSTANCE_PATH=${GATEWAY_INSTANCE_PATH:-$PWD/instance}
    "$VENV/bin/flask" --app wsgi db upgrade
    "$VENV/bin/flask" --app wsgi ensure-admin --generate
    bind=${GATEWAY_BIND:-127.0.0.1:8000}
    echo "console: http://$bind/   (OpenAI-compatible API: http://$bind/v1)"
    exec "$VENV/bin/gunicorn" -k gevent -w "${GATEWAY_WORKERS:-2}" -b "$bind" wsgi:app
    ;;
  test)
    make_venv "[test]"
    command -v chromium >/dev/null || need_root_pkg chromium || true
    shift
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  *)
    echo "usage: ./run.sh [start|test [pytest args]]" >&2; exit 2 ;;
esac
