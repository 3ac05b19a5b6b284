#!/usr/bin/env bash
# Browser end-to-end tests: a private nats-server, `factorychain up` on free
# ports and a temporary data dir, then the Playwright tests in Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FACTORYCHAIN_BIN:-target/debug/factorychain}
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
NATS_PORT=$(free_port); GRPC_PORT=$(free_port); PORTAL_PORT=$(free_port)
"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 & pids+=($!)
wait_port "$NATS_PORT"
FC_DATA_DIR="$work/data" FC_BUS__URL="nats://127.0.0.1:$NATS_PORT" FC_GRPC_ADDR="127.0.0.1:$GRPC_PORT" FC_HTTP_ADDR=127.0.0.1:0 \
  FC_PORTAL__LISTEN_ADDR="127.0.0.1:$PORTAL_PORT" FC_LOG=warn "$BIN" up >"$work/up.log" 2>&1 & pids+=($!)
wait_port "$PORTAL_PORT"
export PORTAL_URL="http://127.0.0.1:$PORTAL_PORT" GRPC_URL="http://127.0.0.1:$GRPC_PORT" FACTORYCHAIN_BIN="$PWD/$BIN"
cd e2e
if ! node --test --test-concurrency=1 portal.test.mjs; then
  echo "--- factorychain up log ---" >&2; cat "$work/up.log" >&2
  exit 1
fi
