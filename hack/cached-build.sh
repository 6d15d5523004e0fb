# Sourced by hack/controlplane-bins.sh, hack/node-bins.sh and
# hack/prometheus-bins.sh: the one way they build a pinned binary into their
# cache, and take a directory the user gives instead (given_dir).
#
# cached_build TAG DIR NAME PACKAGE [MODULE [BUILD FLAGS...]] builds PACKAGE
# in module hack/MODULE (default tools) into DIR/NAME unless it is there, with
# progress on stderr every 15 s, each line prefixed with TAG.
# -trimpath and no VCS stamping keep the build reproducible; the binary is
# written to a temporary name, so an interrupted build is never cached.

cached_build() { # tag dir name package [module [build flags...]]
	local tag="$1" dir="$2" name="$3" pkg="$4" module="${5:-tools}"
	local flags=("${@:6}")
	if [[ -x "${dir}/${name}" ]]; then
		return
	fi
	echo "${tag}: building ${name} (${pkg}); the first build takes several minutes on 2 cores" >&2
	local start=${SECONDS}
	(
		cd "$(dirname "${BASH_SOURCE[0]}")/${module}"
		go build -trimpath -buildvcs=false "${flags[@]}" -o "${dir}/.${name}.tmp" "${pkg}"
	) &
	local pid=$!
	trap 'kill ${pid} 2>/dev/null || true' INT TERM
	while kill -0 "${pid}" 2>/dev/null; do
		sleep 15
		if kill -0 "${pid}" 2>/dev/null; then
			echo "${tag}: still building ${name} ($((SECONDS - start))s)" >&2
		fi
	done
	wait "${pid}"
	trap - INT TERM
	mv "${dir}/.${name}.tmp" "${dir}/${name}"
	echo "${tag}: built ${name} in $((SECONDS - start))s" >&2
}

# given_dir VAR TAG DIR FILE... prints DIR and exits the script if the
# environment variable VAR (a directory chosen by the user) is set, once
# every FILE is there; it fails naming the first missing one.
given_dir() { # var tag dir files...
	local var="$1" tag="$2" dir="$3"
	shift 3
	if [[ -z "${!var:-}" ]]; then
		return
	fi
	local f
	for f in "$@"; do
		if [[ ! -e "${dir}/${f}" ]]; then
			echo "${tag}: ${var}=${dir} has no ${f}" >&2
			exit 1
		fi
	done
	echo "${dir}"
	exit 0
}
