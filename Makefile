# k8s-elector: the two commands of the README are `make demo` and `make test`.

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DEMO_FLAGS ?=
E2E_FLAGS ?=

BENCH_FLAGS ?=
SOAK_FLAGS ?=

.PHONY: all build controlplane test lint unit e2e demo bench soak fuzz clean

all: build

## build: the k8s-elector binary, stripped, with its version, in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/k8s-elector ./cmd/k8s-elector

## controlplane: build (once) and cache the pinned kube-apiserver and etcd
controlplane:
	hack/controlplane-bins.sh >/dev/null

## test: everything CI runs: lint, unit tests with the race detector, e2e
test: lint unit e2e

lint:
	@unformatted="$$(gofmt -l . )"; if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...

unit:
	$(GO) test -race ./...

## e2e: the real binary against a real kube-apiserver and etcd
e2e: build controlplane
	cd test/e2e && CONTROLPLANE_BIN_DIR="$$(../../hack/controlplane-bins.sh)" \
		E2E_ELECTOR_BINARY="$(CURDIR)/bin/k8s-elector" \
		$(GO) test -count=1 -timeout 20m $(E2E_FLAGS) ./...

## demo: a fleet of 3 electors with a live status table; Ctrl-C stops it.
## With KUBECONFIG set it runs on that cluster instead of a local one.
## (The demo builds the control plane itself, only when it needs one.)
demo: build
	cd test/e2e && $(GO) run ./cmd/demo -binary "$(CURDIR)/bin/k8s-elector" $(DEMO_FLAGS)

## bench: the benchmark table, watch mode and polling side by side (not in CI)
bench: build
	cd test/e2e && $(GO) run ./cmd/bench $(BENCH_FLAGS)

## soak: a fleet under random faults, with invariants checked (not in CI)
soak: build
	cd test/e2e && $(GO) run ./cmd/soak -binary "$(CURDIR)/bin/k8s-elector" $(SOAK_FLAGS)

## fuzz: run each fuzz target for a while (not part of CI)
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecode -fuzztime 60s ./internal/record
	$(GO) test -run '^$$' -fuzz FuzzValidation -fuzztime 60s .

clean:
	rm -rf bin
