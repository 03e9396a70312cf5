# dispatchflow — run `make help` for the targets.
#
# Two Go modules: the product (this directory) and devserver/, which embeds a real
# Temporal server and its Web UI for `make run` and the integration tests, so that
# production binaries never link the server.

DATA_DIR ?= $(CURDIR)/.data

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-8s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: ## Run everything locally: Temporal server + Web UI (:8233), worker, API (:8080), sandbox ESP; with DISPATCHFLOW_PAYLOAD_KEY, the UI's codec server (:8081).
	go build -C devserver -o ../bin/dispatchflow-dev ./cmd/dispatchflow-dev
	DISPATCHFLOW_DEV_INBOX=$${DISPATCHFLOW_DEV_INBOX:-true} bin/dispatchflow-dev -data-dir "$(DATA_DIR)"

# Debian's PostgreSQL server binaries: make cluster (and the cluster tests, via
# .ci/run) install the package when they are missing.
PG_BINDIR = $(lastword $(sort $(wildcard /usr/lib/postgresql/*/bin/postgres)))
CLUSTER_FLAGS ?=

.PHONY: pg-install
pg-install:
	@test -n "$(PG_BINDIR)" || { \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "cluster: PostgreSQL's server is missing; installing Debian's postgresql: $$sudo apt-get install -y postgresql"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql || \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; } || \
		{ echo "cluster: could not install postgresql with apt-get (see above)" >&2; exit 1; }; }

.PHONY: cluster
cluster: pg-install ## Run on Temporal as deployed: PostgreSQL (:15432, installed when missing), 16 shards, 2 workers + 2 APIs (:8080, :8081), UI (:8233). CLUSTER_FLAGS="-shards 32 -workers 4 …"
	go build -C devserver -o ../bin/dispatchflow-dev ./cmd/dispatchflow-dev
	DISPATCHFLOW_DEV_INBOX=$${DISPATCHFLOW_DEV_INBOX:-true} bin/dispatchflow-dev -cluster -data-dir "$(DATA_DIR)" $(CLUSTER_FLAGS)

.PHONY: build
build: ## Build bin/dispatchflow (API + worker against an existing cluster).
	go build -o bin/dispatchflow ./cmd/dispatchflow

.PHONY: test
test: pg-install ## Run all tests: unit, workflow, replay, integration on an embedded Temporal server, and the cluster on PostgreSQL.
	go test -count=1 ./...
	cd devserver && go test -count=1 ./...
	cd tools/uicheck && go test -count=1 ./...

.PHONY: bench
bench: ## Measure dispatchflow against the naive design on an embedded server (docs/benchmarks.md). BENCH_FLAGS="-n 1000 -scale 50000 …"; BENCH_FLAGS=-cluster: embedded and make cluster side by side
	go build -o bin/dispatchflow ./cmd/dispatchflow
	go build -o bin/bench-naive ./bench/cmd/bench-naive
	go build -o bin/bench ./bench/cmd/bench
	go build -C devserver -o ../bin/dispatchflow-dev ./cmd/dispatchflow-dev
	bin/bench -bin bin $(BENCH_FLAGS)

.PHONY: chaos
chaos: ## Kill the worker, API and Temporal server under load, then check every message (docs/benchmarks.md, Chaos). CHAOS_FLAGS="-n 200 -seed 42 …"
	go build -o bin/dispatchflow ./cmd/dispatchflow
	go build -o bin/chaos ./bench/cmd/chaos
	go build -C devserver -o ../bin/dispatchflow-dev ./cmd/dispatchflow-dev
	bin/chaos -bin bin $(CHAOS_FLAGS)

# Debian's chromium (as `apt-get install -y chromium` puts it); make ui-check installs it when missing.
CHROMIUM ?= /usr/bin/chromium

.PHONY: ui-check
ui-check: ## Check the Temporal UI as a person would, in headless Chromium, payloads in clear then encrypted (codec server); screenshots in .ui-check/ (docs/ui-check.md).
	@test -x "$(CHROMIUM)" || { \
		sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
		echo "ui-check: $(CHROMIUM) is missing; installing Debian's chromium: $$sudo apt-get install -y chromium"; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium || \
		{ $$sudo apt-get update && $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } || \
		{ echo "ui-check: could not install chromium with apt-get (see above); install it, or set CHROMIUM=/path/to/chromium" >&2; exit 1; }; \
		test -x "$(CHROMIUM)" || { echo "ui-check: apt-get installed chromium, but $(CHROMIUM) is still missing; set CHROMIUM=/path/to/chromium" >&2; exit 1; }; }
	go build -C devserver -o ../bin/dispatchflow-dev ./cmd/dispatchflow-dev
	go build -C tools/uicheck -o ../../bin/uicheck .
	bin/uicheck -dev bin/dispatchflow-dev -chromium "$(CHROMIUM)" -out .ui-check

.PHONY: lint
lint: ## gofmt, go vet and Temporal's workflowcheck on both modules.
	@test -z "$$(gofmt -l . | tee /dev/stderr)" || (echo "gofmt: files above need formatting" && exit 1)
	go vet ./...
	cd devserver && go vet ./...
	cd tools/uicheck && go vet ./...
	go run go.temporal.io/sdk/contrib/tools/workflowcheck@v0.6.0 -show-pos ./workflows/... ./bench/naive/...

FUZZTIME ?= 5s

.PHONY: fuzz
fuzz: ## Fuzz each webhook normalizer for FUZZTIME (default 5s; Go fuzzes one target per run).
	go test -run='^$$' -fuzz='^FuzzSendGrid$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzMailgun$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzPostmark$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzSES$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzSarbacane$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzAJO$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzBrevo$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzMailjet$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzSparkPost$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzMandrill$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzResend$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzMailerSend$$' -fuzztime=$(FUZZTIME) ./intake/
	go test -run='^$$' -fuzz='^FuzzPostal$$' -fuzztime=$(FUZZTIME) ./intake/

.PHONY: clean
clean: ## Delete the local Temporal database (.data/) and bin/.
	rm -rf "$(DATA_DIR)" bin
