#!/usr/bin/env bash
# Builds the pinned kube-apiserver and etcd that the end-to-end suite and
# `make demo` run, from the Go module proxy (module hack/tools), and caches them
# in the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), under
# k8s-elector/controlplane/<version>/, so that every clone on the machine
# (and CI on it) shares one build. CONTROLPLANE_BIN_DIR picks another
# directory. Prints the directory holding them.
#
# The first build compiles most of Kubernetes: about 4-8 minutes on 2 cores.
# Later runs find the cache and return at once.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${root}/hack/tools"
version="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "${tools}/go.mod")"
etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2 }' "${tools}/go.mod")"
if [[ -z "${version}" || -z "${etcd_version}" ]]; then
	echo "controlplane-bins: cannot read pinned versions from ${tools}/go.mod" >&2
	exit 1
fi
cache="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
dir="${CONTROLPLANE_BIN_DIR:-${cache}/k8s-elector/controlplane/${version}-etcd-${etcd_version}}"
mkdir -p "${dir}"

build() { # name package
	local name="$1" pkg="$2"
	if [[ -x "${dir}/${name}" ]]; then
		return
	fi
	echo "controlplane-bins: building ${name} (${pkg}); the first build takes several minutes on 2 cores" >&2
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
			echo "controlplane-bins: still building ${name} ($((SECONDS - start))s)" >&2
		fi
	done
	wait "${pid}"
	trap - INT TERM
	mv "${dir}/.${name}.tmp" "${dir}/${name}"
	echo "controlplane-bins: built ${name} in $((SECONDS - start))s" >&2
}

build etcd go.etcd.io/etcd/server/v3
build kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "${dir}"
