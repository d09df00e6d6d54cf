# nfgate build and test entry points. `make test` runs every test, the
# privileged network-namespace tests included (they skip, saying why, without root).
GO       ?= go
PKGS     ?= ./...
FUZZTIME ?= 10m
BIN      := bin/nfgate

.PHONY: all build test test-unit lint bench bench-classify bench-net fuzz fuzz-short deps clean demo man deb soak conformance

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

# Soak (root): mixed traffic while reloading, every verdict checked against
# the oracle, resources sampled (docs/reliability.md). SOAK=10m by default;
# `make test` runs it for 60s.
SOAK ?= 10m
soak: build
	NFGATE_SOAK=$(SOAK) $(GO) test -count=1 -v -timeout 40m -run '^TestSoak$$' ./test/e2e

# Differential conformance against the real Felix v3.32.1 (root; the
# Calico kit in $$NFGATE_CALICO_DIR, ../shared/calico or /work/shared/calico;
# docs/conformance.md): SEEDS generated cases (seeds FIRST..FIRST+SEEDS-1)
# through Felix, the live daemon and `nfgate explain`. The first SHRINK
# kinds of disagreement are minimised into bin/conformance/*.toml
# (regression cases for test/conformance/testdata); the summary table is
# bin/conformance/summary.txt. `make test` runs a fixed 24-seed sample.
SEEDS  ?= 100
FIRST  ?= 1
SHRINK ?= 8
conformance: deps build
	@mkdir -p bin/conformance
	@rm -f bin/conformance/rc bin/conformance/summary.txt
	( NFGATE_CONFORMANCE_SEEDS=$(SEEDS) NFGATE_CONFORMANCE_FIRST=$(FIRST) NFGATE_CONFORMANCE_SHRINK=$(SHRINK) \
	  NFGATE_CONFORMANCE_SAVE=$(CURDIR)/bin/conformance NFGATE_CONFORMANCE_REPORT=$(CURDIR)/bin/conformance/summary.txt \
	  $(GO) test -count=1 -v -timeout 48h -run '^TestConformance$$' ./test/conformance; echo $$? > bin/conformance/rc ) \
		| tee bin/conformance/run.log | grep --line-buffered -v '^ *conformance_test.go:[0-9]*:   '
	@echo; cat bin/conformance/summary.txt 2>/dev/null; exit $$(cat bin/conformance/rc)

clean:
	rm -rf bin

# Man pages (docs/man, roff) gzipped for the package; groff checks them
# when it is installed.
man:
	@mkdir -p bin/man
	@for f in docs/man/*.[0-9]; do \
		if command -v groff >/dev/null; then groff -man -ww -z $$f || exit 1; fi; \
		gzip -9n < $$f > bin/man/$$(basename $$f).gz || exit 1; \
	done

# The .deb (bin/nfgate_VERSION_ARCH.deb), built by nfpm run as a pinned Go
# tool: no system packager needed. VERSION defaults to the last v* tag.
NFPM    ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.44.2
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' 2>/dev/null) && echo $${v\#v} || echo 0.0.0+git$$(git rev-parse --short HEAD 2>/dev/null || echo unknown))
DEB_OUT ?= bin

deb: man
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/nfgate
	@mkdir -p $(DEB_OUT)
	NFGATE_VERSION=$(VERSION) GOARCH=$$($(GO) env GOARCH) $(GO) run $(NFPM) package \
		--config cmd/nfgate/packaging/nfpm.yaml --packager deb --target $(DEB_OUT)/
