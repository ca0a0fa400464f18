#!/usr/bin/env bash
# Runs the http-tests/cache-tests suite against meridian-edge. See README.md.
#   benches/conformance/run.sh /path/to/cache-tests [out.json]
set -euo pipefail
SUITE=$(cd "${1:?path to a cache-tests checkout}" && pwd)
OUT=${2:-$PWD/meridian-edge.json}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
ORIGIN_PORT=${ORIGIN_PORT:-8000}
EDGE_PORT=${EDGE_PORT:-8100}
WORK=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
ready() { for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true)" != 000 ] && return 0; sleep 0.1
  done; echo "$1 never answered" >&2; return 1; }

(cd "$ROOT" && cargo build --release --bin meridian-edge)
cd "$SUITE"
# The suite's server is the origin; the suite's CLI is the client.
npm_config_protocol=http npm_config_port=$ORIGIN_PORT npm_config_pidfile=$WORK/pid \
  node test-engine/server/server.mjs >"$WORK/origin.log" 2>&1 &
pids+=($!)
ready "http://127.0.0.1:$ORIGIN_PORT/"
"$ROOT/target/release/meridian-edge" --listen "127.0.0.1:$EDGE_PORT" --admin 127.0.0.1:0 \
  --origin "http://127.0.0.1:$ORIGIN_PORT" --cache-dir "$WORK/cache" >"$WORK/edge.log" 2>&1 &
pids+=($!)
ready "http://127.0.0.1:$EDGE_PORT/"
npm_config_base=http://127.0.0.1:$EDGE_PORT npm_config_id= npm_package_config_id= \
  node --no-warnings test-engine/cli.mjs >"$OUT"
echo "results: $OUT"
