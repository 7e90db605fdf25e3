# chat-cluster: make targets for people and CI (no cmake).
#   make run      one node on the embedded default (SQLite, in-process broker), 127.0.0.1:6000
#   make test     everything: unit, service, store/broker contracts, black-box over TCP
#   make lint     rustfmt + clippy (warnings are errors)

CARGO ?= cargo
export CHAT_TEST_MYSQL_URL ?= mysql://chat_test:chat_test@127.0.0.1:3306/chat_test
export CHAT_TEST_REDIS_URL ?= redis://127.0.0.1:6379
# The tests' own Redis Cluster (3 masters + 3 replicas), started fresh by test-services.
TEST_REDIS_CLUSTER_PORT ?= 7400
export CHAT_TEST_REDIS_CLUSTER_URL ?= redis-cluster://127.0.0.1:$(TEST_REDIS_CLUSTER_PORT)?node=127.0.0.1:$(shell expr $(TEST_REDIS_CLUSTER_PORT) + 1)&node=127.0.0.1:$(shell expr $(TEST_REDIS_CLUSTER_PORT) + 2)

.PHONY: run build test test-services lint fmt

run:
	$(CARGO) run --bin chat-server

build:
	$(CARGO) build --workspace --all-targets

# Brings up what the tests need: a clean MariaDB test database, a running Redis, a fresh
# Redis Cluster of the tests' own (deploy/run/redis-cluster-test), nginx, and the terminal
# tools (tmux, script) the console tests drive the client with, the browser tests'
# Chromium, Node.js and playwright-core (deploy/browser-setup.sh), and the previous
# release's chat-server for the rolling-upgrade drill (deploy/previous-release.sh: a few
# minutes the first time, then kept under deploy/run/releases/).
test-services:
	bash deploy/db-setup.sh --reset-test
	bash deploy/redis-setup.sh
	bash deploy/redis-cluster.sh down --dir deploy/run/redis-cluster-test
	bash deploy/redis-cluster.sh up --dir deploy/run/redis-cluster-test --port $(TEST_REDIS_CLUSTER_PORT)
	bash deploy/nginx-setup.sh
	bash deploy/tools-setup.sh
	bash deploy/browser-setup.sh
	bash deploy/previous-release.sh

# The tests' Redis Cluster is stopped afterwards, pass or fail, so that no run leaves six
# redis-server processes holding 7400-7405 behind it.
test: test-services build
	@if $(CARGO) nextest --version >/dev/null 2>&1; then \
		$(CARGO) nextest run --workspace --no-fail-fast; \
	else \
		$(CARGO) test --workspace --no-fail-fast; \
	fi; status=$$?; \
	bash deploy/redis-cluster.sh down --dir deploy/run/redis-cluster-test; \
	exit $$status

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

.PHONY: cluster cluster-down cluster-status

# Two nodes (6000, 6002) on the local MySQL and Redis behind nginx on 8000.
# `make cluster REDIS=cluster`: the nodes on a local Redis Cluster (3 masters + 3 replicas
# on 7000-7005, deploy/redis-cluster.sh) instead of the single Redis on 6379.
REDIS ?= single
cluster:
	REDIS=$(REDIS) bash deploy/cluster.sh up

cluster-down:
	bash deploy/cluster.sh down

cluster-status:
	bash deploy/cluster.sh status

.PHONY: fuzz

# The cargo-fuzz targets in fuzz/ (frame decoder, request parser), each for
# FUZZ_SECONDS: `make fuzz FUZZ_SECONDS=600`. Exits non-zero on a finding.
FUZZ_SECONDS ?= 60
fuzz:
	bash deploy/fuzz.sh $(FUZZ_SECONDS)

.PHONY: bench

# The benchmark suite (deploy/bench.sh): its own cluster on 6100/6102/8100, writes bench/RESULTS.md.
bench:
	bash deploy/bench.sh
