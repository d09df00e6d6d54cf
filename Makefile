# nfgate build and test entry points. `make test` runs every test, the
# privileged network-namespace tests included (they skip, saying why, without root).
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10m
BIN      := bin/nfgate

.PHONY: all build test test-unit lint bench bench-classify bench-net fuzz fuzz-short deps clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/nfgate

# System packages the privileged tests and the lab need (Debian).
deps:
	@bash .ci/deps.sh

test: deps lint build
	$(GO) test -count=1 -timeout 15m $(PKGS)

test-unit:
	$(GO) test -count=1 -short $(PKGS)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# The classifier table, then the namespace harness (needs root; see
# docs/performance.md). NETBENCH_FLAGS e.g. "-quick" or "-runs 5".
bench: bench-classify bench-net

bench-classify:
	$(GO) run ./bench/cmd/classbench

NETBENCH_FLAGS ?= -wait-load 1.5
bench-net: build
	$(GO) run ./bench/cmd/netbench -nfgate $(BIN) $(NETBENCH_FLAGS)

# Each fuzz target for FUZZTIME (default 10 minutes each).
fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

fuzz-short:
	@bash .ci/fuzz.sh 10s

clean:
	rm -rf bin
