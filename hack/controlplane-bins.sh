#!/usr/bin/env bash
# Builds the pinned kube-apiserver and etcd that the end-to-end suite and
# `make demo` run, from the Go module proxy (module hack/tools), and caches them
# in the user's cache directory ($XDG_CACHE_HOME, else ~/.cache), under
# k8s-elector/controlplane/<version>/, so that every clone on the machine
# (and CI on it) shares one build. CONTROLPLANE_BIN_DIR picks another
# directory. Without either build, a directory that setup-envtest filled with
# the pinned versions (KUBEBUILDER_ASSETS, or its store) serves as it is.
# Prints the directory holding them.
#
# The first build compiles most of Kubernetes: 10-20 minutes on 2 cores with a
# cold Go build cache (see the README).
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

# envtest_dir prints a directory that setup-envtest filled (KUBEBUILDER_ASSETS,
# or its store under $XDG_DATA_HOME) if it holds the pinned versions of both.
envtest_dir() {
	local arch data candidate
	arch="$(go env GOARCH 2>/dev/null || echo amd64)"
	data="${XDG_DATA_HOME:-${HOME:-/tmp}/.local/share}"
	for candidate in "${KUBEBUILDER_ASSETS:-}" "${data}/kubebuilder-envtest/k8s/${version#v}-linux-${arch}"; do
		[[ -n "${candidate}" && -x "${candidate}/kube-apiserver" && -x "${candidate}/etcd" ]] || continue
		"${candidate}/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes ${version}" || continue
		"${candidate}/etcd" --version 2>/dev/null | grep -qx "etcd Version: ${etcd_version#v}" || continue
		echo "${candidate}"
		return
	done
}

if [[ -z "${CONTROLPLANE_BIN_DIR:-}" && ! ( -x "${dir}/kube-apiserver" && -x "${dir}/etcd" ) ]]; then
	if found="$(envtest_dir)" && [[ -n "${found}" ]]; then
		echo "controlplane-bins: using ${found}, which setup-envtest filled with the pinned versions" >&2
		echo "${found}"
		exit 0
	fi
fi
mkdir -p "${dir}"

# shellcheck source=hack/cached-build.sh
source "${root}/hack/cached-build.sh"

cached_build controlplane-bins "${dir}" etcd go.etcd.io/etcd/server/v3
cached_build controlplane-bins "${dir}" kube-apiserver k8s.io/kubernetes/cmd/kube-apiserver
echo "${dir}"
