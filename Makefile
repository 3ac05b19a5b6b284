# FactoryChain: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
DATA_DIR ?= ./data

.PHONY: run test deps deps-test build release bench loadtest lint fmt clean

## Install what is missing (Debian): nats-server, and cargo-nextest for tests.
deps:
	@if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then \
		echo "installing nats-server (Debian package)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq nats-server; \
		else sudo apt-get update -qq && sudo apt-get install -y -qq nats-server; fi; \
	fi

deps-test: deps
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest

release:
	$(CARGO) build --release --bin factorychain --bin fc-loadtest

## Build, start everything on the embedded store, print the gRPC address and a demo device token.
run: deps release
	FC_DATA_DIR=$(DATA_DIR) ./target/release/factorychain up --demo

## Install what is missing and run every test (real nats-server per test).
test: deps-test
	$(CARGO) nextest run --workspace --no-fail-fast
	@if [ -z "$$FC_SCYLLA_NODES" ]; then \
		echo "SKIPPED: ScyllaDB conformance suite (set FC_SCYLLA_NODES=host:9042 to run it against a cluster)"; fi

## Benchmarks: end-to-end ingest vs raw JetStream, ack latency at half load, bytes per reading.
bench: deps release
	./loadtest/bench.sh

## Load generator against a running `factorychain up` (see docs/operations.md and README.md).
loadtest: release
	./target/release/fc-loadtest --help

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

clean:
	$(CARGO) clean
	rm -rf $(DATA_DIR)
