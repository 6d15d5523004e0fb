# syntax=docker/dockerfile:1
#
# Build:  docker build --build-arg VERSION=$(git describe --tags --always) \
#           --build-arg COMMIT=$(git rev-parse HEAD) -t k8s-elector .
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 \
#           --build-arg VERSION=... --build-arg COMMIT=... -t k8s-elector .

FROM --platform=$BUILDPLATFORM golang:1.26 AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=""
ARG COMMIT=""
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY *.go ./
COPY cmd/ cmd/
COPY internal/ internal/
# Static (no cgo), reproducible paths, no symbol tables.
RUN CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath \
      -ldflags="-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/k8s-elector ./cmd/k8s-elector

# distroless/static: CA certificates and /etc/passwd for the nonroot user, no
# shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/k8s-elector /k8s-elector
USER 65532:65532
ENTRYPOINT ["/k8s-elector"]
