#!/usr/bin/env bash
# Checks that the image is reproducible and holds what it should: builds it
# twice, each time from nothing (an empty image store of its own, no build
# cache), as `make image` does, and compares the digests of each
# architecture's image and of the manifest list; then lists the files of the
# amd64 image and checks them against what docs/image.md promises. Run by
# `make image-check` (and `make test`), with the Makefile's variables; exits 1
# on any difference.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${root}"
export CONTAINERS_CONF="${CONTAINERS_CONF:-${root}/hack/containers.conf}"
export IMAGE="${CHECK_IMAGE:-localhost/k8s-elector-check}"

work="$(mktemp -d "${TMPDIR:-/var/tmp}/k8s-elector-image-check.XXXXXX")"
store() { # run: point buildah and podman at an image store of its own
	export CONTAINERS_STORAGE_CONF="${work}/$1.conf"
	cat >"${CONTAINERS_STORAGE_CONF}" <<CONF
[storage]
driver = "overlay"
graphroot = "${work}/$1/root"
runroot = "${work}/$1/run"
CONF
}
cleanup() {
	for run in a b; do
		if [[ -f "${work}/${run}.conf" ]]; then
			CONTAINERS_STORAGE_CONF="${work}/${run}.conf" buildah rm --all >/dev/null 2>&1 || true
			CONTAINERS_STORAGE_CONF="${work}/${run}.conf" buildah rmi --all --force >/dev/null 2>&1 || true
		fi
	done
	rm -rf "${work}"
}
trap cleanup EXIT

for run in a b; do
	store "${run}"
	BUILD_FLAGS=--no-cache hack/build-image.sh >"${work}/${run}.digests"
	echo "image-check: build ${run}:" >&2
	sed 's/^/  /' "${work}/${run}.digests" >&2
done
if ! diff -u "${work}/a.digests" "${work}/b.digests" >&2; then
	echo "image-check: FAIL: two builds of the same commit gave different digests" >&2
	exit 1
fi

# What the amd64 image holds (in store b): exactly these files, owned by
# root, and the binary; no shell.
read -r _ ref < <(grep -- '-amd64$' "${work}/b.digests")
ctr="$(buildah from --pull=never "${ref}")"
mnt="$(buildah mount "${ctr}")"
got="$(cd "${mnt}" && find . -mindepth 1 -printf '%M %U:%G %p\n' | sort -k3)"
buildah umount "${ctr}" >/dev/null
buildah rm "${ctr}" >/dev/null
want='drwxr-xr-x 0:0 ./etc
-rw-r--r-- 0:0 ./etc/group
-rw-r--r-- 0:0 ./etc/passwd
drwxr-xr-x 0:0 ./etc/ssl
drwxr-xr-x 0:0 ./etc/ssl/certs
-rw-r--r-- 0:0 ./etc/ssl/certs/ca-certificates.crt
-rwxr-xr-x 0:0 ./k8s-elector
drwxrwxrwt 0:0 ./tmp'
if [[ -z "${BASE:-}" && "${got}" != "${want}" ]]; then
	echo "image-check: FAIL: the image's files are not what they should be:" >&2
	diff -u <(echo "${want}") <(echo "${got}") >&2 || true
	exit 1
fi
user="$(podman image inspect --format '{{.Config.User}} {{.Config.Entrypoint}}' "${ref}")"
if [[ "${user}" != "65532:65532 [/k8s-elector]" ]]; then
	echo "image-check: FAIL: user and entrypoint are ${user}, want 65532:65532 [/k8s-elector]" >&2
	exit 1
fi
size="$(podman image inspect --format '{{.Size}}' "${ref}")"
echo "image-check: OK: the same digests twice; ${ref} is ${size} bytes, runs as ${user}" >&2
