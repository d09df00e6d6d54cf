# nfgate build and test entry points. `make test` runs every test, the
# privileged network-namespace tests included (they skip, saying why, without root).
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10m
BIN      := bin/nfgate

.PHONY: all build test test-unit lint bench bench-classify fuzz fuzz-short deps clean demo

all: build

build:
	$(GO) build -o $(BIN) ./cmd/nfgate

# System packages the privileged tests and the lab need (Debian).
deps:
	@bash .ci/deps.sh

# The demo lab: namespaces, nfgate on a gateway, real traffic, every decision
# printed, everything torn down (Ctrl-C too). Needs root.
demo: deps build
	$(GO) build -o bin/nfgate-lab ./cmd/nfgate-lab
	@bin/nfgate-lab --nfgate $(BIN) --config examples/lab/nfgate.toml

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

clean:
	rm -rf bin
