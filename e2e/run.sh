#!/usr/bin/env bash
# Browser end-to-end tests, against both deployment shapes: a private
# nats-server, `factorychain up` (one process, then `--split`: each service its
# own process) on port-0 listeners and a temporary data dir, then the
# Playwright tests in Debian's Chromium. E2E_SHAPES picks the shapes.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FACTORYCHAIN_BIN:-target/debug/factorychain}
source scripts/harness.sh
OPENAPI_TOOLS=$(bash scripts/openapi-tools.sh)
for shape in ${E2E_SHAPES:-one-process split}; do
  echo "=== e2e: $shape ==="
  start_nats
  args=""
  [ "$shape" = split ] && args=--split
  FC_DATA_DIR="$work/data-$shape" UP_ARGS=$args start_up "$work/up-$shape.log"
  export PORTAL_URL="http://$PORTAL_ADDR" GRPC_URL FACTORYCHAIN_BIN="$PWD/$BIN" OPENAPI_TOOLS E2E_SHAPE=$shape
  if ! (cd e2e && node --test --test-concurrency=1 portal.test.mjs); then
    echo "--- factorychain up ($shape) log ---" >&2; cat "$work/up-$shape.log" >&2
    exit 1
  fi
  kill -TERM "$UP_PID"; wait "$UP_PID" || true
done
