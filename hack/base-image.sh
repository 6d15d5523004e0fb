#!/usr/bin/env bash
# Makes the local runtime base that `make image` passes as BASE, where no
# registry (and so no distroless image) is reachable: for each architecture
# given (default: amd64 arm64), an image localhost/k8s-elector-base:<arch>
# made from a tarball that holds only what distroless/static:nonroot
# gives k8s-elector:
#
#   /etc/passwd, /etc/group   root, nobody and nonroot (65532), no login shell
#   /etc/ssl/certs/ca-certificates.crt   from the host's Debian ca-certificates
#   /tmp                      mode 1777
#
# No shell, no libc, no package manager. The tarball is deterministic (sorted,
# numeric owner 0), and the image is committed with the files' times and the
# created time set to $BASE_EPOCH (default 0: nothing in it depends on the
# commit), no history and no builder label: the same image on every run and
# for every commit, on every machine with the same CA bundle. The
# image built on it records the base's digest (an annotation), so this is what
# makes that image reproducible too. Uses buildah (hack/install-podman.sh
# installs it).
set -euo pipefail

base="${BASE_IMAGE:-localhost/k8s-elector-base}"
epoch="${BASE_EPOCH:-0}"
arches=("$@")
((${#arches[@]} > 0)) || arches=(amd64 arm64)

certs=/etc/ssl/certs/ca-certificates.crt
if [[ ! -s "${certs}" ]]; then
	echo "base-image: ${certs} missing: install Debian's ca-certificates" >&2
	exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
root="${work}/rootfs"
mkdir -p "${root}/etc/ssl/certs" "${root}/tmp"
cat >"${root}/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
PASSWD
cat >"${root}/etc/group" <<'GROUP'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
GROUP
cp "${certs}" "${root}/etc/ssl/certs/ca-certificates.crt"
chmod 0755 "${root}" "${root}/etc" "${root}/etc/ssl" "${root}/etc/ssl/certs"
chmod 0644 "${root}/etc/passwd" "${root}/etc/group" "${root}/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "${root}/tmp"
tar --create --file="${work}/rootfs.tar" --directory="${root}" \
	--sort=name --format=posix --numeric-owner --owner=0 --group=0 \
	--mtime="@${epoch}" --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
	etc tmp

for arch in "${arches[@]}"; do
	ctr="$(buildah from --arch "${arch}" --os linux scratch)"
	buildah add --quiet "${ctr}" "${work}/rootfs.tar" / >/dev/null
	buildah config --arch "${arch}" --os linux --user 65532:65532 \
		--env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt "${ctr}"
	buildah commit --quiet --rm --timestamp "${epoch}" --omit-history --identity-label=false \
		"${ctr}" "${base}:${arch}" >/dev/null
	echo "${base}:${arch}"
done
