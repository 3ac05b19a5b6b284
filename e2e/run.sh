#!/usr/bin/env bash
# Browser end-to-end tests: a private nats-server, `factorychain up` on port-0
# listeners and a temporary data dir, then the Playwright tests in Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${FACTORYCHAIN_BIN:-target/debug/factorychain}
source scripts/harness.sh
start_nats
start_up "$work/up.log"
OPENAPI_TOOLS=$(bash scripts/openapi-tools.sh)
export PORTAL_URL="http://$PORTAL_ADDR" GRPC_URL FACTORYCHAIN_BIN="$PWD/$BIN" OPENAPI_TOOLS
cd e2e
if ! node --test --test-concurrency=1 portal.test.mjs; then
  echo "--- factorychain up log ---" >&2; cat "$work/up.log" >&2
  exit 1
fi
