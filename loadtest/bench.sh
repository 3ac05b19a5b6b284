#!/usr/bin/env bash
# `make bench`: end-to-end ingest against `factorychain up` (private nats-server,
# embedded store), the same batches straight to JetStream, ack latency at half
# load, and bytes per reading of the steel-plant year. Ends with one JSON line
# per figure. Knobs: BENCH_DEVICES (1000), BENCH_DURATION (30s).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=target/release
DEVICES=${BENCH_DEVICES:-1000}
DURATION=${BENCH_DURATION:-30s}
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
wait_port() { for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened" >&2; return 1; }

NATS_PORT=$(free_port); GRPC_PORT=$(free_port)
NATS_URL="nats://127.0.0.1:$NATS_PORT"
"$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 & pids+=($!)
wait_port "$NATS_PORT"
FC_DATA_DIR="$work/data" FC_BUS__URL="$NATS_URL" FC_GRPC_ADDR="127.0.0.1:$GRPC_PORT" FC_HTTP_ADDR=127.0.0.1:0 \
  FC_ADMIN_TOKEN=bench-admin FC_LOG=warn "$BIN/factorychain" up >"$work/up.log" 2>&1 & pids+=($!)
wait_port "$GRPC_PORT"
common=(--server "http://127.0.0.1:$GRPC_PORT" --admin-token bench-admin --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --nats-url "$NATS_URL" --json)

echo "1/4 full load: $DEVICES device streams, 100 readings per batch, $DURATION" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate 0 | tee "$work/full.json" >&2
echo "2/4 the same batches straight to JetStream" >&2
"$BIN/fc-loadtest" raw-jetstream --nats-url "$NATS_URL" --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --json | tee "$work/raw.json" >&2
HALF=$(python3 -c "import json; print(max(1, int(json.load(open('$work/full.json'))['e2e_readings_per_s'] / 2)))")
echo "3/4 half load: $HALF readings/s offered" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate "$HALF" | tee "$work/half.json" >&2
echo "4/4 storage: the steel-plant year in the embedded store" >&2
"$BIN/fc-loadtest" storage > "$work/storage.json"

python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
full, raw, half = (json.load(open(f"{w}/{n}.json")) for n in ("full", "raw", "half"))
e2e, rawr = full["e2e_readings_per_s"], raw["e2e_readings_per_s"]
print(json.dumps({
    "bench": "ingest_e2e",
    "devices": full["devices"],
    "readings_per_batch": full["readings_per_batch"],
    "readings_per_s": round(e2e),
    "raw_jetstream_readings_per_s": round(rawr),
    "ratio": round(e2e / rawr, 3) if rawr else None,
    "ack_p99_ms_half_load": half["ack_p99_ms"],
    "ack_p50_ms_half_load": half["ack_p50_ms"],
    "ack_p99_ms_full_load": full["ack_p99_ms"],
    "writer_backlog_max_msgs": full["writer_backlog_max_msgs"],
    "writer_drain_s": round(full["writer_drain_s"], 2),
    "half_load_offered_readings_per_s": half["offered_readings_per_s"],
    "half_load_acked_readings_per_s": round(half["acked_readings_per_s"]),
    "errors": full["stream_errors"] + full["refused_batches"] + half["stream_errors"] + half["refused_batches"],
}))
print(open(f"{w}/storage.json").read().strip())
PY
