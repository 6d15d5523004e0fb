#!/usr/bin/env bash
# Installs what the node tests (test/e2e/internal/node) need from the system,
# from Debian's packages, when any of it is missing (idempotent: with all of it
# present it installs nothing):
#   - containerd (and ctr), which the tests start themselves with their own
#     config, state, root and socket under a temporary directory; the package
#     does not start it here (no systemd), and the tests never use its default
#     /etc/containerd or /run/containerd;
#   - runc, which containerd runs the containers with;
#   - containernetworking-plugins: bridge, host-local and loopback in
#     /usr/lib/cni, for the Pods' network;
#   - iptables, for the one DNAT rule the tests add (and remove) so that Pods
#     reach the API server at the `kubernetes` Service's ClusterIP.
# Nothing else is installed system-wide. Prints the CNI plugin directory.
#
# apt-get needs root (or sudo), and the node tests need root anyway.
set -euo pipefail

cni_dir=/usr/lib/cni
missing=()
command -v containerd >/dev/null 2>&1 && command -v ctr >/dev/null 2>&1 || missing+=(containerd)
command -v runc >/dev/null 2>&1 || missing+=(runc)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
for plugin in bridge host-local loopback; do
	if [[ ! -x "${cni_dir}/${plugin}" ]]; then
		missing+=(containernetworking-plugins)
		break
	fi
done
if ((${#missing[@]} > 0)); then
	echo "install-node: installing ${missing[*]} from Debian's packages" >&2
	sudo=()
	if [[ "$(id -u)" != 0 ]]; then
		command -v sudo >/dev/null 2>&1 || {
			echo "install-node: ${missing[*]} missing, and neither root nor sudo to install them" >&2
			exit 1
		}
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -qq >&2
	"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
for plugin in bridge host-local loopback; do
	if [[ ! -x "${cni_dir}/${plugin}" ]]; then
		echo "install-node: ${cni_dir}/${plugin} is missing after installing containernetworking-plugins" >&2
		exit 1
	fi
done
echo "${cni_dir}"
