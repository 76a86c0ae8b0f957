#!/usr/bin/env bash
# Re-run the gateway overhead benchmark (../shared/bench) against this gateway, one gevent worker.
#   bench/run.sh [extra run.py flags, e.g. --streams 100,500,2000]
# Needs: wrk (Debian), a venv for the harness with uvloop (created in /tmp/bench-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${BENCH_HARNESS:-../shared/bench}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
[ -x /tmp/bench-venv/bin/python ] || { python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -q uvloop; }
[ -x .venv/bin/gunicorn ] || ./run.sh test --version >/dev/null

export GATEWAY_INSTANCE_PATH=$(mktemp -d /tmp/gw-bench.XXXX)
# BENCH_DATABASE_URL / BENCH_REDIS_URL: measure the scale-out shape (bench/scale.sh starts both)
export GATEWAY_DATABASE_URL=${BENCH_DATABASE_URL:-sqlite:///$GATEWAY_INSTANCE_PATH/gw.db}
[ -z "${BENCH_REDIS_URL:-}" ] || export GATEWAY_REDIS_URL=$BENCH_REDIS_URL
export GATEWAY_HEALTH_INTERVAL=0 GATEWAY_LOG_LEVEL=warning
.venv/bin/flask --app wsgi db upgrade >/dev/null 2>&1
.venv/bin/flask --app wsgi seed-demo --base-url http://127.0.0.1:18000/v1 --model fake-model >/dev/null
# the harness sends temperature 0: measure the proxy path, not cache hits, unless asked
[ -n "${BENCH_CACHE:-}" ] || .venv/bin/flask --app wsgi set-setting cache.enabled false >/dev/null
if [ -n "${BENCH_LIMITED:-}" ]; then  # every limit and a budget set, none of them reached
  KEY=$(.venv/bin/flask --app wsgi create-key --name bench \
        --limits '{"rpm": 100000000, "rph": 1000000000, "rpd": 10000000000, "tpm": 100000000000, "tpd": 1000000000000, "concurrency": 100000}' \
        --budget '{"amount_usd": 1000000000, "period": "month"}')
else
  KEY=$(.venv/bin/flask --app wsgi create-key --name bench)
fi
exec /tmp/bench-venv/bin/python "$HARNESS/run.py" --name "${BENCH_NAME:-gateway}" \
  --target http://127.0.0.1:5000 --key "$KEY" --model fake-model \
  --start "exec $PWD/.venv/bin/gunicorn -k gevent -w 1 -b 127.0.0.1:5000 wsgi:app" "$@"
