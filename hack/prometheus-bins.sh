#!/usr/bin/env bash
# Builds the pinned Prometheus server that the node tests use to check
# deploy/monitoring (test/e2e/node_monitoring_test.go), from the Go module
# proxy (module hack/prometheus), and caches it in the user's cache directory
# ($XDG_CACHE_HOME, else ~/.cache), under k8s-elector/prometheus/<version>/,
# so that every clone on the machine (and CI on it) shares one build.
# Beside it, in crds/, the Prometheus Operator's CustomResourceDefinitions
# for PodMonitor and PrometheusRule, from the operator's Go module
# (example/prometheus-operator-crd), at the version pinned below: the only
# one of the operator's releases the module proxy here serves.
# PROMETHEUS_BIN_DIR picks another directory (used as it is).
# Prints the directory.
#
# Only Kubernetes service discovery is built in (the tags remove_all_sd and
# enable_kubernetes_sd), and no web UI: the tests use the HTTP API. The first
# build takes a few minutes on 2 cores; later runs return at once.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
module="${root}/hack/prometheus"
version="$(awk '$1 == "require" && $2 == "github.com/prometheus/prometheus" { print $3 }' "${module}/go.mod")"
if [[ -z "${version}" ]]; then
	echo "prometheus-bins: cannot read the pinned Prometheus version from ${module}/go.mod" >&2
	exit 1
fi
operator="github.com/prometheus-operator/prometheus-operator@v0.85.0"
crds=(monitoring.coreos.com_podmonitors.yaml monitoring.coreos.com_prometheusrules.yaml)
cache="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}"
dir="${PROMETHEUS_BIN_DIR:-${cache}/k8s-elector/prometheus/${version}}"

# shellcheck source=hack/cached-build.sh
source "${root}/hack/cached-build.sh"
given_dir PROMETHEUS_BIN_DIR prometheus-bins "${dir}" prometheus "${crds[@]/#/crds/}"
mkdir -p "${dir}"

cached_build prometheus-bins "${dir}" prometheus github.com/prometheus/prometheus/cmd/prometheus \
	prometheus -tags=remove_all_sd,enable_kubernetes_sd
if [[ ! -d "${dir}/crds" ]]; then
	src="$(go mod download -json "${operator}" | awk -F'"' '$2 == "Dir" { print $4 }')"
	if [[ -z "${src}" ]]; then
		echo "prometheus-bins: cannot download ${operator} from the module proxy" >&2
		exit 1
	fi
	mkdir -p "${dir}/.crds.tmp"
	for f in "${crds[@]}"; do
		cp "${src}/example/prometheus-operator-crd/${f}" "${dir}/.crds.tmp/"
	done
	chmod -R u+w "${dir}/.crds.tmp"
	mv "${dir}/.crds.tmp" "${dir}/crds"
fi
echo "${dir}"
