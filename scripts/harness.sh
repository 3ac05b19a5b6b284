# Sourced by loadtest/bench.sh and e2e/run.sh: a temporary work dir, processes
# on free loopback ports, all stopped and removed on exit.
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
# A private nats-server with JetStream; sets NATS_PORT and NATS_URL.
start_nats() {
  NATS_PORT=$(free_port)
  NATS_URL="nats://127.0.0.1:$NATS_PORT"
  "$NATS" -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 & pids+=($!)
  wait_port "$NATS_PORT"
}
