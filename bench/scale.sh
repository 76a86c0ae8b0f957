#!/usr/bin/env bash
# The benchmark on the scale-out shape: a throwaway PostgreSQL and Redis on loopback (the same
# servers the tests use, tests/support/servers.py), then bench/run.sh against them.
#   bench/scale.sh [run.py flags]          BENCH_LIMITED=1 bench/scale.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || ./run.sh test --version >/dev/null
urls=$(mktemp)
.venv/bin/python - "$urls" <<'PY' &
import sys, signal, tempfile, time
from pathlib import Path
sys.path.insert(0, ".")
from tests.support.servers import postgres_server, redis_server
root = Path(tempfile.mkdtemp(prefix="gw-bench-scale-"))
with postgres_server(root) as pg, redis_server(root) as r:
    Path(sys.argv[1]).write_text(f"{pg.url}\n{r.url}\n")
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    while True:
        time.sleep(1)
PY
servers=$!
trap 'kill $servers 2>/dev/null; wait $servers 2>/dev/null; rm -f "$urls"' EXIT
for _ in $(seq 600); do [ -s "$urls" ] && break; sleep 0.1; done
[ -s "$urls" ] || { echo "PostgreSQL/Redis did not start" >&2; exit 1; }
BENCH_DATABASE_URL=$(sed -n 1p "$urls") BENCH_REDIS_URL=$(sed -n 2p "$urls") \
  BENCH_NAME=${BENCH_NAME:-gateway-pg-redis} bash bench/run.sh "$@"
