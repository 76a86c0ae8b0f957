#!/usr/bin/env bash
# CPU per streamed request: one gevent worker, K streams of 20 chunks x 50 ms from the harness's
# fake upstream; worker CPU (utime+stime from /proc) before/after divided by K.
#   bench/stream_cpu.sh [K]        (default 500)
set -euo pipefail
cd "$(dirname "$0")/.."
HARNESS=${BENCH_HARNESS:-../shared/bench}
K=${1:-500}
[ -x /tmp/bench-venv/bin/python ] || { python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install -q uvloop; }
export GATEWAY_INSTANCE_PATH=$(mktemp -d /tmp/gw-scpu.XXXX)
export GATEWAY_DATABASE_URL=sqlite:///$GATEWAY_INSTANCE_PATH/gw.db GATEWAY_HEALTH_INTERVAL=0 GATEWAY_LOG_LEVEL=warning
.venv/bin/flask --app wsgi db upgrade >/dev/null 2>&1
.venv/bin/flask --app wsgi seed-demo --base-url http://127.0.0.1:18077/v1 --model fake-model >/dev/null
KEY=$(.venv/bin/flask --app wsgi create-key --name stream-cpu)
/tmp/bench-venv/bin/python "$HARNESS/fake_upstream.py" --port 18077 --chunks 20 --chunk-delay-ms 50 >/dev/null 2>&1 &
UP=$!
.venv/bin/gunicorn -k gevent -w 1 -b 127.0.0.1:5077 wsgi:app >/dev/null 2>&1 &
GU=$!
trap 'kill $UP $GU 2>/dev/null' EXIT
sleep 2
/tmp/bench-venv/bin/python "$HARNESS/stream_client.py" --url http://127.0.0.1:5077 --key "$KEY" -k 20 >/dev/null  # warm up
WORKER=$(pgrep -P $GU | head -1)
ticks() { awk '{print $14+$15}' /proc/$WORKER/stat; }
HZ=$(getconf CLK_TCK)
before=$(ticks)
/tmp/bench-venv/bin/python "$HARNESS/stream_client.py" --url http://127.0.0.1:5077 --key "$KEY" -k "$K"
after=$(ticks)
python3 -c "print(f'worker CPU per stream: {($after-$before)/$HZ*1000/$K:.2f} ms over K=$K streams (20 chunks each)')"
