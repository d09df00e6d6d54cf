# nfgate build and test entry points. `make test` runs every test, the
# privileged network-namespace tests included (they skip, saying why, without root).
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10m
BIN      := bin/nfgate

.PHONY: all build test test-unit lint bench bench-classify fuzz fuzz-short soak deps clean

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

bench: bench-classify

bench-classify:
	$(GO) run ./bench/cmd/classbench

# Each fuzz target for FUZZTIME (default 10 minutes each).
fuzz:
	@bash .ci/fuzz.sh $(FUZZTIME)

fuzz-short:
	@bash .ci/fuzz.sh 10s

# Soak (root): mixed traffic while reloading, every verdict checked against
# the oracle, resources sampled (docs/reliability.md). SOAK=10m by default;
# `make test` runs it for 60s.
SOAK ?= 10m
soak: build
	NFGATE_SOAK=$(SOAK) $(GO) test -count=1 -v -timeout 40m -run '^TestSoak$$' ./test/e2e

clean:
	rm -rf bin
