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

# shellcheck source=hack/cached-build.sh
source "${root}/hack/cached-build.sh"
given_dir NODE_BIN_DIR node-bins "${dir}" "${names[@]}"
mkdir -p "${dir}"

cached_build node-bins "${dir}" kubelet k8s.io/kubernetes/cmd/kubelet
cached_build node-bins "${dir}" kube-controller-manager k8s.io/kubernetes/cmd/kube-controller-manager
cached_build node-bins "${dir}" kube-scheduler k8s.io/kubernetes/cmd/kube-scheduler
echo "${dir}"
