#!/usr/bin/env bash
# The README's two commands:
#   ./run.sh          install into .venv, migrate the embedded SQLite DB, create/print the admin, start gunicorn
#   ./run.sh test     install the test dependencies (and Debian's chromium, postgresql, redis-server when
#                     root) and run every test: on SQLite, then the database tests again on PostgreSQL
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
    # real PostgreSQL and Redis servers for the scale-out tests (started by the fixtures)
    command -v redis-server >/dev/null || need_root_pkg redis-server || true
    have_pg() { compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; }
    have_pg || need_root_pkg postgresql || true
    shift
    # one pass only when asked for (GATEWAY_TEST_DATABASE=sqlite|postgresql|<postgres URL>)
    [ -z "${GATEWAY_TEST_DATABASE:-}" ] && have_pg || exec "$VENV/bin/python" -m pytest "$@"
    # the two passes run side by side (two cores: the PostgreSQL pass is in-process database
    # work, the SQLite pass is mostly e2e processes); the PostgreSQL log is printed at the end
    pglog=$(mktemp /tmp/gateway-tests-postgresql.XXXX.log)
    GATEWAY_TEST_DATABASE=postgresql "$VENV/bin/python" -m pytest "$@" >"$pglog" 2>&1 &
    pgpid=$!
    trap 'kill $pgpid 2>/dev/null || true' INT TERM
    status=0
    echo "== every test on SQLite (the PostgreSQL pass runs beside it: $pglog) =="
    "$VENV/bin/python" -m pytest "$@" || status=$?
    pg=0
    wait "$pgpid" || pg=$?
    echo "== the database tests again, on PostgreSQL (GATEWAY_TEST_DATABASE=postgresql) =="
    if [ "$pg" = 0 ]; then tail -n 15 "$pglog"; else cat "$pglog"; fi
    grep -E "[0-9]+ (passed|failed|error)" "$pglog" | tail -n 1 || true   # the summary, last
    [ "$pg" = 5 ] && pg=0  # the selection held no database test
    [ "$status" != 0 ] || status=$pg
    exit "$status"
    ;;
  *)
    echo "usage: ./run.sh [start|test [pytest args]]" >&2; exit 2 ;;
esac
