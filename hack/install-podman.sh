#!/usr/bin/env bash
# Installs podman, buildah and runc from Debian's packages when any of them is
# missing (idempotent: with all three on PATH it installs nothing), and checks
# that hack/containers.conf, which the Makefile exports as CONTAINERS_CONF, is
# there. Prints the path of that containers.conf.
#
# apt-get needs root (or sudo). CI starts on a clean clone without podman, so
# `make image` and `make e2e` run this first.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
conf="${root}/hack/containers.conf"

missing=()
for tool in podman buildah runc; do
	command -v "${tool}" >/dev/null 2>&1 || missing+=("${tool}")
done
if ((${#missing[@]} > 0)); then
	echo "install-podman: installing ${missing[*]} from Debian's packages" >&2
	sudo=()
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "install-podman: ${missing[*]} missing, and neither root nor sudo to install them" >&2
			exit 1
		}
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq >&2
	# runc, not crun (crun fails on these machines); no recommends, so no
	# slirp4netns or fuse-overlayfs either: the images are built and run as
	# root with host networking.
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends podman buildah runc uidmap >&2
fi
if [[ ! -f "${conf}" ]]; then
	echo "install-podman: ${conf} is missing" >&2
	exit 1
fi
echo "${conf}"
