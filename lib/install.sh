#!/usr/bin/env bash
# Putting the built tree and the buildpack's runtime files into the app's slug.

# Where the runtime's sourced files (runtime/lib/*.sh: the preload rules, jemalloc-check's parts)
# go, under vendor/jemalloc and under the CNB layer alike: a directory that jemalloc's own
# `make install` never writes (bin, lib, include, share/doc, share/man), so the two cannot clash.
# The profile.d shim, jemalloc.sh and jemalloc-check find them there.
INSTALL_RUNTIME_LIBEXEC="libexec/jemalloc-buildpack"
# Directories of BUILD_DIR that this build created (vendor, .profile.d): install::remove takes
# them out again when they are empty, so a failed build leaves the app's tree as it found it.
INSTALL_CREATED_DIRS=()

# Usage: install::vendor_tree TREE BUILDPACK_DIR BUILD_DIR
# Replaces BUILD_DIR/vendor/jemalloc with TREE plus the buildpack's runtime/bin/ scripts and
# runtime/lib/ files (in INSTALL_RUNTIME_LIBEXEC), and installs profile.d/jemalloc.sh. The tree is assembled beside its final place and renamed,
# so the slug never holds half of it.
install::vendor_tree() {
	local tree="$1" buildpack_dir="$2" build_dir="$3"
	local target="${build_dir}/vendor/jemalloc"
	local staging="${build_dir}/vendor/.jemalloc-install-$$"

	if [[ ! -f "${buildpack_dir}/profile.d/jemalloc.sh" || ! -f "${buildpack_dir}/runtime/lib/preload-rules.sh" ]]; then
		output::error \
			"This buildpack is incomplete: profile.d/jemalloc.sh or runtime/lib/preload-rules.sh is missing." \
			"Use a released version of the buildpack: heroku buildpacks"
	fi

	install::remove_leftovers "${build_dir}"
	install::create_dir "${build_dir}/vendor"
	install::run cp -R --preserve=mode,timestamps "${tree}" "${staging}"
	install::run mkdir -p "${staging}/bin"
	if [[ -d "${buildpack_dir}/runtime/bin" ]]; then
		install::run cp -R --preserve=mode,timestamps "${buildpack_dir}/runtime/bin/." "${staging}/bin/"
	fi
	install::run mkdir -p "${staging}/${INSTALL_RUNTIME_LIBEXEC}"
	install::run cp -R --preserve=mode,timestamps "${buildpack_dir}/runtime/lib/." "${staging}/${INSTALL_RUNTIME_LIBEXEC}/"
	if [[ ! -f "${staging}/lib/libjemalloc.so" ]]; then
		output::error "The installed tree has no lib/libjemalloc.so; the cached build may be damaged." \
			"Clear the build cache and build again: heroku builds:cache:purge"
	fi

	install::run rm -rf "${target}"
	install::run mv "${staging}" "${target}"
	install::create_dir "${build_dir}/.profile.d"
	install::run cp "${buildpack_dir}/profile.d/jemalloc.sh" "${build_dir}/.profile.d/jemalloc.sh"
}

# Usage: install::run COMMAND [ARGS ...]
# Runs one step of the install; if it fails, fails the build saying why in one line (no space
# left on the build directory, or the tool's own reason) instead of the tool's raw messages.
install::run() {
	local errors
	if errors="$("$@" 2>&1)"; then
		return 0
	fi
	failure::check_space
	# The tool's reason without its file names: "cp: error writing 'x': Input/output error".
	errors="${errors##*$'\n'}"
	errors="${errors##*: }"
	output::error \
		"Installing jemalloc into vendor/jemalloc failed: ${errors:-$1 failed}." \
		"Check that the app's build directory is writable and has free space, then build again."
}

# Usage: install::write_build_info BUILD_DIR KEY VALUE [KEY VALUE ...]
# Records facts of this build in the slug as vendor/jemalloc/build-info, KEY=VALUE lines, for
# jemalloc-check to show in the dyno. It is written after install::vendor_tree, beside the tree
# copied from the cache, so that cache entries stay the same. Values are kept on one line.
install::write_build_info() {
	local build_dir="$1"
	shift
	install::write_info_file "${build_dir}/vendor/jemalloc/build-info" "$@"
}

# Usage: install::write_info_file FILE KEY VALUE [KEY VALUE ...]
# Writes the KEY=VALUE lines of a build-info file (see install::write_build_info) with
# record::write. The Cloud Native Buildpack writes its layer's build-info with it.
install::write_info_file() {
	local info="$1"
	shift
	# A failure stops the build through the ERR trap, which names the step (lib/failure.sh).
	record::write "${info}" = "$@"
}

# Usage: install::library_path BUILD_DIR
# Prints where the real library file (what lib/libjemalloc.so resolves to) lives in the dyno.
install::library_path() {
	local build_dir="$1" real
	real="$(readlink -f "${build_dir}/vendor/jemalloc/lib/libjemalloc.so")"
	# shellcheck disable=SC2154 # BUILD_RUNTIME_PREFIX: lib/build.sh, the one place it is set
	echo "${BUILD_RUNTIME_PREFIX}/lib/${real##*/}"
}

# Usage: install::create_dir DIR
# mkdir -p DIR, remembering it in INSTALL_CREATED_DIRS if it was not there.
install::create_dir() {
	if [[ ! -d "$1" ]]; then
		install::run mkdir -p "$1"
		INSTALL_CREATED_DIRS+=("$1")
	fi
}

# Usage: install::remove_leftovers BUILD_DIR
# Removes staging copies that a build killed while installing left in vendor/ (a kill -9 runs
# no cleanup): they would otherwise stay in every later slug built in this directory.
install::remove_leftovers() {
	local build_dir="$1" leftover
	for leftover in "${build_dir}"/vendor/.jemalloc-install-*; do
		if [[ -e "${leftover}" || -L "${leftover}" ]]; then
			rm -rf "${leftover}"
		fi
	done
}

# Usage: install::remove BUILD_DIR
# Takes out everything this buildpack installs: a failed build must leave nothing behind that
# a later buildpack or the runtime could mistake for a working install, nor a staging copy,
# nor an empty vendor/ or .profile.d/ that it created.
install::remove() {
	local build_dir="$1" dir
	rm -rf "${build_dir}/vendor/jemalloc"
	install::remove_leftovers "${build_dir}"
	rm -f "${build_dir}/.profile.d/jemalloc.sh"
	for dir in "${INSTALL_CREATED_DIRS[@]}"; do
		rmdir "${dir}" 2>/dev/null || :
	done
}
