# stackgap — build, test, demo, bench.
# `sudo make …` resets PATH, so find the Go toolchain explicitly.
GO ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X github.com/stackgap/stackgap/internal/version.Version=$(VERSION) \
           -X github.com/stackgap/stackgap/internal/version.Commit=$(COMMIT)
BIN := bin
# Tests of different packages create their own test hosts; two at a time on two cores.
TESTFLAGS ?= -p 2 -timeout 20m
BENCH_DURATION ?= 2s

.PHONY: all build test test-short demo bench lint generate check-generate clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/ ./cmd/...

# The full suite. Privileged tests need root; under CI=true they fail instead of skipping.
test: build
	$(GO) test $(TESTFLAGS) ./...

# Unprivileged unit tests only (fast).
test-short:
	$(GO) test -short ./...

demo: build
	./$(BIN)/stackgap demo

# Side-by-side comparisons asked for by the issues, with ratios. Needs root, and
# installs the peers it compares against (sockperf, dpdk-testpmd) when missing.
bench: build
	@command -v sockperf >/dev/null && command -v dpdk-testpmd >/dev/null && command -v stdbuf >/dev/null || \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q sockperf dpdk-dev coreutils; }
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 45m ./internal/benchcmp/ -args -duration $(BENCH_DURATION)

lint:
	@fmt=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$fmt" ]; then echo "gofmt needed: $$fmt"; exit 1; fi
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

# Rebuild the eBPF objects (needs clang-19); the output is committed.
generate:
	$(GO) generate ./...

# Fails when the committed bpf2go output differs from what the sources produce.
check-generate: generate
	git diff --exit-code -- bpf/

clean:
	rm -rf $(BIN)
