#!/usr/bin/env bash
# Browser end-to-end tests: a private nats-server, `factorychain up` on free
# ports and a temporary data dir, then the Playwright tests in Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FACTORYCHAIN_BIN:-target/debug/factorychain}
source scripts/harness.sh
start_nats
GRPC_PORT=$(free_port); PORTAL_PORT=$(free_port)
FC_DATA_DIR="$work/data" FC_BUS__URL="$NATS_URL" FC_GRPC_ADDR="127.0.0.1:$GRPC_PORT" FC_HTTP_ADDR=127.0.0.1:0 \
  FC_PORTAL__LISTEN_ADDR="127.0.0.1:$PORTAL_PORT" FC_SETTLEMENT__GRPC_ADDR=127.0.0.1:0 FC_LOG=warn "$BIN" up >"$work/up.log" 2>&1 & pids+=($!)
wait_port "$PORTAL_PORT"
export PORTAL_URL="http://127.0.0.1:$PORTAL_PORT" GRPC_URL="http://127.0.0.1:$GRPC_PORT" FACTORYCHAIN_BIN="$PWD/$BIN"
cd e2e
if ! node --test --test-concurrency=1 portal.test.mjs; then
  echo "--- factorychain up log ---" >&2; cat "$work/up.log" >&2
  exit 1
fi
