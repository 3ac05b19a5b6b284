# Sourced by loadtest/bench.sh and e2e/run.sh: a temporary work dir, processes
# on loopback ports the kernel picks (port 0: nothing else can collide with
# them, not even `make run` in another terminal), all stopped and removed on exit.
NATS=$(command -v nats-server || echo /usr/sbin/nats-server)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_port() { for _ in $(seq 300); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }
# A private nats-server with JetStream on a kernel-chosen port; sets NATS_PORT and NATS_URL.
# $1 (optional): its JetStream sync_interval, e.g. "always" (default: nats-server's own, 2m).
start_nats() {
  local dir="$work/nats${1:+-$1}" conf
  mkdir -p "$dir/ports"
  conf="$dir/nats.conf"
  printf 'jetstream {\n  store_dir: "%s"\n%s}\n' "$dir/store" "${1:+  sync_interval: \"$1\"
}" > "$conf"
  "$NATS" -c "$conf" -a 127.0.0.1 -p -1 --ports_file_dir "$dir/ports" >"$dir/nats.log" 2>&1 & pids+=($!)
  for _ in $(seq 300); do
    NATS_URL=$(cat "$dir"/ports/*.ports 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["nats"][0])' 2>/dev/null) && break
    sleep 0.1
  done
  [ -n "${NATS_URL:-}" ] || { echo "nats-server did not start; see $dir/nats.log" >&2; return 1; }
  NATS_PORT=${NATS_URL##*:}
  wait_port "$NATS_PORT"
}
# Start `factorychain up` with every listener on port 0, logging to $1; sets GRPC_URL
# (Ingest, Query), ADMIN_URL (Admin), PORTAL_ADDR, INGEST_HTTP (ingest's health and
# metrics) and UP_PID from the addresses it prints.
# UP_ARGS: extra arguments of `up` (--split: each service its own process). Extra environment comes from the caller.
start_up() {
  local log=$1
  FC_DATA_DIR="${FC_DATA_DIR:-$work/data}" FC_BUS__URL="$NATS_URL" FC_GRPC_ADDR=127.0.0.1:0 FC_HTTP_ADDR=127.0.0.1:0 \
    FC_PORTAL__LISTEN_ADDR=127.0.0.1:0 FC_PORTAL__GRPC_ADDR=127.0.0.1:0 FC_SETTLEMENT__GRPC_ADDR=127.0.0.1:0 FC_MONITOR__GRPC_ADDR=127.0.0.1:0 FC_LOG=${FC_LOG:-warn} "$BIN" up ${UP_ARGS:-} >"$log" 2>&1 & UP_PID=$!
  pids+=($UP_PID)
  for _ in $(seq 600); do
    GRPC_URL=$(sed -n 's/^ *gRPC (Ingest, Query): *//p' "$log")
    ADMIN_URL=$(sed -n 's/^ *gRPC (Admin, Tenancy): *//p' "$log")
    PORTAL_ADDR=$(sed -n 's|^ *portal: *http://||p' "$log")
    INGEST_HTTP=$(sed -n 's|^ *health and metrics: *\(http://[^/ ]*\).*|\1|p' "$log")
    [ -n "$GRPC_URL" ] && [ -n "$ADMIN_URL" ] && [ -n "$PORTAL_ADDR" ] && [ -n "$INGEST_HTTP" ] && return 0
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "factorychain up did not start; its log:" >&2; cat "$log" >&2; return 1
}
