# k8s-elector: the two commands of the README are `make demo` and `make test`.

SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# The commit's time: the images' created time and their files' times.
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# Images: $(IMAGE):$(TAG) is the manifest list of $(IMAGE):$(TAG)-<arch>.
IMAGE ?= localhost/k8s-elector
TAG ?= $(VERSION)
ARCHES ?= amd64 arm64
# The runtime base; empty: a local one made without a registry
# (hack/base-image.sh). BASE=gcr.io/distroless/static-debian12:nonroot pulls it.
BASE ?=
HOST_ARCH := $(shell $(GO) env GOARCH)
# podman and buildah read this (runc, cgroupfs, no default ulimits).
CONTAINERS_CONF ?= $(CURDIR)/hack/containers.conf
export CONTAINERS_CONF SOURCE_DATE_EPOCH VERSION COMMIT IMAGE TAG ARCHES BASE
DEMO_FLAGS ?=
E2E_FLAGS ?=

BENCH_FLAGS ?=
SOAK_FLAGS ?=

.PHONY: all build binaries podman image image-check controlplane node test lint unit e2e demo bench soak fuzz clean

all: build

## build: the k8s-elector binary, stripped, with its version, in bin/
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/k8s-elector ./cmd/k8s-elector

## binaries: the same, cross-compiled for each of $(ARCHES), in bin/linux_<arch>/
binaries:
	for arch in $(ARCHES); do \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -ldflags "$(LDFLAGS)" \
			-o bin/linux_$$arch/k8s-elector ./cmd/k8s-elector || exit 1; \
	done

## podman: install podman, buildah and runc from Debian's packages if missing
podman:
	hack/install-podman.sh >/dev/null

## image: the images for $(ARCHES) and their manifest list, from the binaries
image: binaries podman
	hack/build-image.sh

## image-check: build the images twice from nothing; the digests must match
image-check: binaries podman
	hack/image-check.sh

## controlplane: build (once) and cache the pinned kube-apiserver and etcd
controlplane:
	hack/controlplane-bins.sh >/dev/null

## node: for the node tests, install containerd and the CNI plugins from
## Debian's packages if missing, and build (once) and cache the pinned
## kubelet, kube-controller-manager and kube-scheduler, and the Prometheus
## (with the Prometheus Operator's CRDs) that checks deploy/monitoring
node:
	hack/install-node.sh >/dev/null
	hack/node-bins.sh >/dev/null
	hack/prometheus-bins.sh >/dev/null

## test: everything CI runs: lint, unit tests with the race detector, the
## image's reproducibility, e2e (which runs the image too)
test: lint unit image-check e2e

lint:
	@unformatted="$$(gofmt -l . )"; if [ -n "$$unformatted" ]; then \
		echo "gofmt needed on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	cd test/e2e && $(GO) vet ./...
	cd test/e2e/oldclientgo && $(GO) vet ./...

unit:
	$(GO) test -race ./...
	cd test/e2e/oldclientgo && $(GO) test -race ./...

## e2e: the real binary, and the image, against a real kube-apiserver and
## etcd, and in real Pods on a one-node cluster (TestNode*)
e2e: build controlplane node image
	cd test/e2e && CONTROLPLANE_BIN_DIR="$$(../../hack/controlplane-bins.sh)" \
		NODE_BIN_DIR="$$(../../hack/node-bins.sh)" \
		PROMETHEUS_BIN_DIR="$$(../../hack/prometheus-bins.sh)" \
		E2E_ELECTOR_BINARY="$(CURDIR)/bin/k8s-elector" \
		E2E_IMAGE="$(IMAGE):$(TAG)-$(HOST_ARCH)" \
		$(GO) test -count=1 -timeout 30m $(E2E_FLAGS) ./...

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
