# syntax=docker/dockerfile:1
#
# One recipe for the k8s-elector image; see docs/image.md.
#
# Default: pack the static binary that `make binaries` cross-compiled on the
# host for the target architecture (bin/linux_<arch>/k8s-elector). This is what
# `make image` builds with podman or buildah, and it runs nothing inside the
# build, so the arm64 image needs no emulation:
#
#   make binaries
#   docker buildx build --platform linux/amd64,linux/arm64 -t k8s-elector .
#
# Compile inside the build instead (no Go on the host):
#
#   docker buildx build --target compiled --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) \
#     --build-arg COMMIT=$(git rev-parse HEAD) -t k8s-elector .
#
# BASE is the runtime base: distroless/static (CA certificates, /etc/passwd
# with nonroot 65532, no shell, no package manager). CI, which reaches no
# registry, passes a local image of the same contents (hack/base-image.sh).

ARG BASE=gcr.io/distroless/static-debian12:nonroot
ARG GO_IMAGE=golang:1.26

# The in-build compile, for --target compiled only.
FROM --platform=$BUILDPLATFORM ${GO_IMAGE} AS build
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=""
ARG COMMIT=""
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY *.go ./
COPY cmd/ cmd/
COPY internal/ internal/
# Static (no cgo), reproducible paths, no symbol tables: as `make binaries`.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/bin/linux_${TARGETARCH}/k8s-elector ./cmd/k8s-elector

# What both images share: the base, the labels, the user, the entrypoint.
FROM ${BASE} AS runtime
LABEL org.opencontainers.image.title="k8s-elector" \
      org.opencontainers.image.description="Kubernetes leader elector: a sidecar with an HTTP API"
ARG VERSION=""
ARG COMMIT=""
ARG CREATED=""
ARG SOURCE=https://github.com/k8s-elector/elector
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}" \
      org.opencontainers.image.created="${CREATED}"
USER 65532:65532
ENTRYPOINT ["/k8s-elector"]

# --target compiled: the binary from the build stage above.
FROM runtime AS compiled
ARG TARGETARCH
COPY --from=build /out/bin/linux_${TARGETARCH}/k8s-elector /k8s-elector

# The default: the binary cross-compiled on the host.
FROM runtime AS image
ARG TARGETARCH
COPY bin/linux_${TARGETARCH}/k8s-elector /k8s-elector
