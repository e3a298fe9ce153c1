#!/usr/bin/env bash
# Putting the built tree and the buildpack's runtime files into the app's slug.

INSTALL_RUNTIME_PREFIX="/app/vendor/jemalloc"

# Usage: install::vendor_tree TREE BUILDPACK_DIR BUILD_DIR
# Replaces BUILD_DIR/vendor/jemalloc with TREE plus the buildpack's runtime/bin/ scripts, and
# installs profile.d/jemalloc.sh. The tree is assembled beside its final place and renamed,
# so the slug never holds half of it.
install::vendor_tree() {
	local tree="$1" buildpack_dir="$2" build_dir="$3"
	local target="${build_dir}/vendor/jemalloc"
	local staging="${build_dir}/vendor/.jemalloc-install-$$"

	if [[ ! -f "${buildpack_dir}/profile.d/jemalloc.sh" ]]; then
		output::error \
			"This buildpack is incomplete: profile.d/jemalloc.sh is missing." \
			"Use a released version of the buildpack: heroku buildpacks"
	fi

	rm -rf "${staging}"
	mkdir -p "${build_dir}/vendor"
	cp -R --preserve=mode,timestamps "${tree}" "${staging}"
	mkdir -p "${staging}/bin"
	if [[ -d "${buildpack_dir}/runtime/bin" ]]; then
		cp -R --preserve=mode,timestamps "${buildpack_dir}/runtime/bin/." "${staging}/bin/"
	fi
	if [[ ! -f "${staging}/lib/libjemalloc.so" ]]; then
		output::error "The installed tree has no lib/libjemalloc.so; the cached build may be damaged." \
			"Clear the build cache and build again: heroku builds:cache:purge"
	fi

	rm -rf "${target}"
	mv "${staging}" "${target}"
	mkdir -p "${build_dir}/.profile.d"
	cp "${buildpack_dir}/profile.d/jemalloc.sh" "${build_dir}/.profile.d/jemalloc.sh"
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
# Writes the KEY=VALUE lines of a build-info file (see install::write_build_info), replacing
# FILE in one rename. The Cloud Native Buildpack writes its layer's build-info with it.
install::write_info_file() {
	local info="$1"
	shift
	while (($# >= 2)); do
		printf '%s=%s\n' "$1" "${2//[[:cntrl:]]/ }"
		shift 2
	done >"${info}.tmp"
	mv "${info}.tmp" "${info}"
}

# Usage: install::library_path BUILD_DIR
# Prints where the real library file (what lib/libjemalloc.so resolves to) lives in the dyno.
install::library_path() {
	local build_dir="$1" real
	real="$(readlink -f "${build_dir}/vendor/jemalloc/lib/libjemalloc.so")"
	echo "${INSTALL_RUNTIME_PREFIX}/lib/${real##*/}"
}

# Usage: install::remove BUILD_DIR
# Takes out everything this buildpack installs: a failed build must leave nothing behind that
# a later buildpack or the runtime could mistake for a working install.
install::remove() {
	local build_dir="$1"
	rm -rf "${build_dir}/vendor/jemalloc" "${build_dir}/vendor/.jemalloc-install-$$"
	rm -f "${build_dir}/.profile.d/jemalloc.sh"
}
