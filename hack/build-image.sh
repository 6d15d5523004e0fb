#!/usr/bin/env bash
# Packs the binaries that `make binaries` cross-compiled (bin/linux_<arch>/)
# into one image per architecture with the Dockerfile's default target, and
# makes a manifest list of them. Run by `make image`; the variables below come
# from the Makefile.
#
#   IMAGE, TAG   the list is $IMAGE:$TAG, each image $IMAGE:$TAG-<arch>
#   ARCHES       architectures (default: amd64 arm64)
#   BASE         the runtime base; empty: the local one hack/base-image.sh
#                makes, localhost/k8s-elector-base:<arch> (no registry)
#   VERSION, COMMIT, SOURCE_DATE_EPOCH (the commit time), SOURCE
#   BUILD_FLAGS  more flags for buildah build (image-check: --no-cache)
#
# Reproducible: --timestamp sets the config's created time and every file's
# mtime to SOURCE_DATE_EPOCH, --omit-history drops the build history (which
# holds times) and --identity-label=false the buildah version label, so the
# same commit gives the same digests. Nothing is run inside the build, so the
# arm64 image needs no emulation. Prints "<digest> <reference>" per image.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
: "${IMAGE:=localhost/k8s-elector}" "${VERSION:?}" "${COMMIT:?}" "${SOURCE_DATE_EPOCH:?}"
: "${TAG:=${VERSION}}" "${ARCHES:=amd64 arm64}" "${BASE:=}" "${BUILD_FLAGS:=}"
: "${SOURCE:=https://github.com/k8s-elector/elector}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${root}/hack/containers.conf}"
created="$(date -u -d "@${SOURCE_DATE_EPOCH}" +%Y-%m-%dT%H:%M:%SZ)"
read -r -a arches <<<"${ARCHES}"

for arch in "${arches[@]}"; do
	if [[ ! -x "bin/linux_${arch}/k8s-elector" ]]; then
		echo "build-image: bin/linux_${arch}/k8s-elector missing: run make binaries" >&2
		exit 1
	fi
done
pull=--pull=missing
if [[ -z "${BASE}" ]]; then
	hack/base-image.sh "${arches[@]}" >/dev/null
	pull=--pull=never
fi

list="${IMAGE}:${TAG}"
if buildah manifest exists "${list}" 2>/dev/null; then
	buildah manifest rm "${list}" >/dev/null
fi
buildah manifest create "${list}" >/dev/null
for arch in "${arches[@]}"; do
	ref="${list}-${arch}"
	# shellcheck disable=SC2086 # BUILD_FLAGS is a list of flags
	buildah build --quiet --layers ${BUILD_FLAGS} "${pull}" \
		--platform "linux/${arch}" \
		--build-arg "BASE=${BASE:-localhost/k8s-elector-base:${arch}}" \
		--build-arg "VERSION=${VERSION}" --build-arg "COMMIT=${COMMIT}" \
		--build-arg "CREATED=${created}" --build-arg "SOURCE=${SOURCE}" \
		--timestamp "${SOURCE_DATE_EPOCH}" --omit-history --identity-label=false \
		--tag "${ref}" . >/dev/null
	buildah manifest add "${list}" "containers-storage:${ref}" >/dev/null
	echo "$(podman image inspect --format '{{.Digest}}' "${ref}") ${ref}"
done
# The untagged images the build leaves (the shared stage's steps, cached by
# --layers, which change with every commit) carry the Dockerfile's first
# label, the title.
podman image prune --force --filter label=org.opencontainers.image.title=k8s-elector >/dev/null
# The list's digest as a registry would get it: the list pushed, with its
# images, into an OCI layout.
oci="$(mktemp -d)"
trap 'rm -rf "${oci}"' EXIT
buildah manifest push --quiet --all --digestfile "${oci}/digest" "${list}" "oci:${oci}/layout" >/dev/null
echo "$(cat "${oci}/digest") ${list}"
