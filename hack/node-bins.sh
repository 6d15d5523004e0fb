#!/usr/bin/env bash
# Builds the pinned kubelet, kube-controller-manager and kube-scheduler that
# the node tests (test/e2e/internal/node) run, from the Go module proxy
# (module hack/tools, the same module set as hack/controlplane-bins.sh), and
# caches them beside the control plane, in the user's cache directory
# ($XDG_CACHE_HOME, else ~/.cache), under k8s-elector/node/<version>/, so
# that every clone on the machine (and CI on it) shares one build.
# NODE_BIN_DIR picks another directory (its binaries are used as they are).
# Prints the directory holding them.
#
# With the control plane's build cached, the first build takes several more
# minutes on 2 cores; later runs find the cache and return at once.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${root}/hack/tools"
version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "${tools}/go.mod")"
if [[ -z "${version}" ]]; then
	echo "node-bins: cannot read the pinned Kubernetes version from ${tools}/go.mod" >&2
	exit 1
fi
cache="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
dir="${NODE_BIN_DIR:-${cache}/k8s-elector/node/${version}}"
names=(kubelet kube-controller-manager kube-scheduler)

if [[ -n "${NODE_BIN_DIR:-}" ]]; then
	for name in "${names[@]}"; do
		if [[ ! -x "${dir}/${name}" ]]; then
			echo "node-bins: NODE_BIN_DIR=${dir} has no ${name}" >&2
			exit 1
		fi
	done
	echo "${dir}"
	exit 0
fi
mkdir -p "${dir}"

build() { # name package
	local name="$1" pkg="$2"
	if [[ -x "${dir}/${name}" ]]; then
		return
	fi
	echo "node-bins: building ${name} (${pkg}); the first build takes several minutes on 2 cores" >&2
	local start=${SECONDS}
	(
		cd "${tools}"
		# -trimpath and no VCS stamping keep the build reproducible; the binary
		# is written to a temporary name so an interrupted build is never cached.
		go build -trimpath -buildvcs=false -o "${dir}/.${name}.tmp" "${pkg}"
	) &
	local pid=$!
	trap 'kill ${pid} 2>/dev/null || true' INT TERM
	while kill -0 "${pid}" 2>/dev/null; do
		sleep 15
		if kill -0 "${pid}" 2>/dev/null; then
			echo "node-bins: still building ${name} ($((SECONDS - start))s)" >&2
		fi
	done
	wait "${pid}"
	trap - INT TERM
	mv "${dir}/.${name}.tmp" "${dir}/${name}"
	echo "node-bins: built ${name} in $((SECONDS - start))s" >&2
}

build kubelet k8s.io/kubernetes/cmd/kubelet
build kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
build kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
echo "${dir}"
