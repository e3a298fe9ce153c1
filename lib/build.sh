#!/usr/bin/env bash
# Building jemalloc from verified source into a minimal tree (bin/ and lib/) for /app/vendor/jemalloc.
# The SHA-256 of the recipe files (build::recipe_files) is part of the cache key: editing the
# recipe invalidates cached builds.

# Where the library lives in the dyno. It is compiled into jemalloc-config and jeprof, and the
# build happens elsewhere, so it is given as --prefix and the result is staged with DESTDIR.
BUILD_RUNTIME_PREFIX="/app/vendor/jemalloc"
BUILD_LOG_TAIL_LINES=30
# jemalloc's defaults return freed memory to the kernel slowly and give a process 4 arenas per
# CPU; for threaded job workers the memory benchmark (README) measured this setting at 0.80-0.84
# of glibc's peak RSS and 0.39-0.40 of its RSS after work, where the stock defaults measured
# 1.21-1.26 and 0.59-0.61. It is compiled in (--with-malloc-conf), so any key of the app's
# MALLOC_CONF overrides it. background_thread and dirty_decay_ms exist from 5.0 on only.
BUILD_MEMORY_MALLOC_CONF="narenas:2,background_thread:true,dirty_decay_ms:1000"
# jemalloc stops its background thread in every fork()ed child, so the tuning above would do
# nothing in forked workers (puma cluster mode, Celery prefork, gunicorn). This C file, linked
# into the library with the tuning, switches it back on in the child.
BUILD_FORK_HELPER_SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/background_thread_after_fork.c"
# JEMALLOC_METRICS (allocator figures per process, in the logs and for jemalloc-check): a C file
# linked into every build of 5.0 and later, tuned or not. It does nothing unless the variable is set.
BUILD_METRICS_SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src/metrics.c"
# The fork helper wraps these two functions (so that it sees an app set background_thread
# itself): jemalloc's definitions in src/jemalloc.pic.o are renamed to jemalloc_buildpack_real_<name>.
BUILD_RENAMED_MALLCTL=(mallctl mallctlbymib)
# configure compiles with -g3, but the library is stripped before it ships, so that debug
# information is thrown away; -g0 (last on the command line, so it wins) cut a 5.3.0 compile
# from 49 s to 36 s on 2 cores. Releases whose Makefile has no EXTRA_CFLAGS (before 5.0) ignore it.
BUILD_MAKE_VARIABLES=(EXTRA_CFLAGS=-g0)

# Usage: build::recipe_files
# Prints the files whose content decides what a build produces from a given source and options.
build::recipe_files() {
	echo "${BASH_SOURCE[0]}"
	echo "${BUILD_FORK_HELPER_SOURCE}"
	echo "${BUILD_METRICS_SOURCE}"
}

# Usage: build::default_malloc_conf VERSION TUNING
# Prints the options string to compile into jemalloc (nothing for TUNING none, or for releases
# before 5.0, which would reject its keys with "Invalid conf pair" in every process).
build::default_malloc_conf() {
	local version="$1" tuning="$2"
	if [[ "${tuning}" == memory && "${version%%.*}" -ge 5 ]]; then
		echo "${BUILD_MEMORY_MALLOC_CONF}"
	fi
}

# Usage: build::requested_flags PROFILING DEFAULT_MALLOC_CONF
# Prints the configure flags that follow from the app's settings, one per line. They are part
# of the cache key (build::requested_options) and of every configure run (build::configure_flags).
build::requested_flags() {
	local profiling="$1" default_malloc_conf="$2"
	echo "--prefix=${BUILD_RUNTIME_PREFIX}"
	if [[ "${profiling}" == true ]]; then
		echo "--enable-prof"
	fi
	if [[ -n "${default_malloc_conf}" ]]; then
		echo "--with-malloc-conf=${default_malloc_conf}"
	fi
}

# Usage: build::requested_options PROFILING DEFAULT_MALLOC_CONF
# Prints build::requested_flags on one line, for the cache key. The flags added only when a
# release supports them (build::configure_flags) follow from the source itself, whose SHA-256
# is also in the key.
build::requested_options() {
	local flags=()
	mapfile -t flags < <(build::requested_flags "$1" "$2")
	echo "${flags[*]}"
}

# Usage: build::fail LOG_FILE "what failed" ["how to fix" ...]
# Fails the build, showing the end of the compile log; or, when the disk filled up (which also
# leaves the log empty), says that instead.
build::fail() {
	local log_file="$1" what="$2" log_lines=()
	shift 2
	failure::check_space
	mapfile -t log_lines < <(tail -n "${BUILD_LOG_TAIL_LINES}" "${log_file}" 2>/dev/null | sed 's/^/  /')
	if ((${#log_lines[@]} == 0)); then
		log_lines=("  (the build log is empty)")
	fi
	output::error "${what}" "Last ${BUILD_LOG_TAIL_LINES} lines of the build log:" "${log_lines[@]}" "$@"
}

# Usage: build::run_logged LOG_FILE DIRECTORY STEP_NAME COMMAND [ARGS ...]
# Runs COMMAND in DIRECTORY with its output going to LOG_FILE only; fails the build on error.
build::run_logged() {
	local log_file="$1" directory="$2" step_name="$3"
	shift 3
	echo "+ $*" >>"${log_file}"
	if ! (cd "${directory}" && exec "$@") >>"${log_file}" 2>&1; then
		build::fail "${log_file}" "Building jemalloc failed during '${step_name}'." \
			"This release may not build with this stack's compiler or C library." \
			"Try another version, for example: heroku config:set JEMALLOC_VERSION=5.3.0"
	fi
}

# Usage: build::unpack TARBALL SOURCE_DIR LOG_FILE
# Unpacks a .tar.bz2 or .tar.gz (tar detects which) into SOURCE_DIR, dropping its single top
# directory, and prints that directory's name (a git snapshot's name carries its commit).
# Member names may start with "./" (as `tar -c ./dir` writes them); an archive of the source
# files themselves (configure or configure.ac at its root) is unpacked as it is.
build::unpack() {
	local tarball="$1" source_dir="$2" log_file="$3" listing top_dirs strip=1
	listing="${source_dir}.listing"
	if ! tar -tf "${tarball}" >"${listing}" 2>>"${log_file}"; then
		build::fail "${log_file}" "The downloaded jemalloc source is not a readable .tar.bz2 or .tar.gz archive." \
			"Check that JEMALLOC_SOURCE_URL (if set) points to a source tarball."
	fi
	top_dirs="$(sed -e 's#^\(\./\)*##' -e '/^\.\{0,1\}$/d' "${listing}" | cut -d / -f 1 | sort -u)"
	if [[ $'\n'"${top_dirs}"$'\n' == *$'\n'configure$'\n'* || $'\n'"${top_dirs}"$'\n' == *$'\n'configure.ac$'\n'* ]]; then
		strip=0
		top_dirs=""
	elif [[ -z "${top_dirs}" || "${top_dirs}" == *$'\n'* || "${top_dirs}" == . ]]; then
		output::error \
			"The jemalloc source archive does not have a single top directory, as release tarballs do." \
			"Check that JEMALLOC_SOURCE_URL (if set) points to a jemalloc source tarball."
	fi
	mkdir -p "${source_dir}"
	if ! tar -xf "${tarball}" -C "${source_dir}" --transform 's#^\(\./\)*##' --strip-components="${strip}" \
		--no-same-owner 2>>"${log_file}"; then
		build::fail "${log_file}" "Unpacking the jemalloc source failed."
	fi
	echo "${top_dirs}"
}

# Usage: build::prepare_source SOURCE_DIR VERSION TOP_DIR_NAME LOG_FILE
# Makes a git snapshot buildable like a release tarball: generate configure, and write the
# VERSION file that configure would otherwise take from git (format <version>-<n>-g<gid>).
build::prepare_source() {
	local source_dir="$1" version="$2" top_dir_name="$3" log_file="$4" commit
	if [[ ! -f "${source_dir}/configure" && -f "${source_dir}/configure.ac" ]]; then
		if ! command -v autoconf >/dev/null; then
			output::error \
				"This jemalloc source has no configure script and autoconf is not installed to generate it." \
				"Use a release tarball instead of a git snapshot (JEMALLOC_SOURCE_URL)."
		fi
		build::run_logged "${log_file}" "${source_dir}" autoconf autoconf
	fi
	if [[ ! -f "${source_dir}/configure" ]]; then
		output::error \
			"The jemalloc source has neither a configure script nor configure.ac." \
			"Check that JEMALLOC_SOURCE_URL (if set) points to a jemalloc source tarball."
	fi
	if [[ ! -f "${source_dir}/VERSION" ]]; then
		commit="0000000000000000000000000000000000000000"
		if [[ "${top_dir_name}" =~ -g?([0-9a-f]{7,40})$ ]]; then
			commit="${BASH_REMATCH[1]}"
		fi
		echo "${version}-0-g${commit}" >"${source_dir}/VERSION"
		echo "+ wrote VERSION: ${version}-0-g${commit}" >>"${log_file}"
	fi
}

# Usage: build::configure_flags SOURCE_DIR PROFILING DEFAULT_MALLOC_CONF LOG_FILE
# Prints the configure flags, one per line: the requested ones (build::requested_flags), then
# static libraries and docs switched off where configure offers that (5.2.0 and 5.2.1 on); 5.2.1
# advertises the doc switch as --enable-documentation although the option is named --enable-doc.
build::configure_flags() {
	local source_dir="$1" profiling="$2" default_malloc_conf="$3" log_file="$4" help
	help="$(cd "${source_dir}" && ./configure --help 2>>"${log_file}")"
	build::requested_flags "${profiling}" "${default_malloc_conf}"
	if [[ "${help}" =~ --(en|dis)able-static[^-[:alnum:]] ]]; then
		echo "--disable-static"
	fi
	if [[ "${help}" =~ --(en|dis)able-doc(umentation)?[^-[:alnum:]] ]]; then
		echo "--disable-doc"
	fi
}

# Usage: build::page_size_flag VERSION ARCH
# Prints --with-lg-page=16 for an aarch64 (arm64) build of a release before 5.3.1, nothing
# otherwise. Those releases take the page size from the machine that builds them, and a library
# built for 4 KiB pages refuses to run ("Unsupported system page size") on the 64 KiB-page
# kernels some arm64 systems use; built for 64 KiB pages it runs on both. 5.3.1 chooses 16 for
# aarch64 Linux itself. ARCH is as uname -m prints it; the cache key names it too.
build::page_size_flag() {
	local version="$1" arch="$2" lowest
	if [[ "${arch}" != aarch64 && "${arch}" != arm64 ]]; then
		return 0
	fi
	lowest="$(printf '%s\n' "${version}" 5.3.1 | sort -V | head -n 1)"
	if [[ "${lowest}" != 5.3.1 ]]; then
		echo "--with-lg-page=16"
	fi
}

# Usage: build::from_source TARBALL VERSION PROFILING DEFAULT_MALLOC_CONF WORK_DIR OUTPUT_DIR
# Builds the verified TARBALL inside WORK_DIR (a scratch directory, never BUILD_DIR) and moves
# the minimal runtime tree to OUTPUT_DIR. The compile log is WORK_DIR/build.log and the exact
# configure flags are left in WORK_DIR/configure-flags.
build::from_source() {
	local tarball="$1" version="$2" profiling="$3" default_malloc_conf="$4" work_dir="$5" output_dir="$6"
	local source_dir="${work_dir}/source" staging_dir="${work_dir}/staging"
	local log_file="${work_dir}/build.log" top_dir_name page_size_flag configure_flags=()
	mkdir -p "${work_dir}"
	: >"${log_file}"

	top_dir_name="$(build::unpack "${tarball}" "${source_dir}" "${log_file}")"
	build::prepare_source "${source_dir}" "${version}" "${top_dir_name}" "${log_file}"

	mapfile -t configure_flags < <(build::configure_flags "${source_dir}" "${profiling}" "${default_malloc_conf}" "${log_file}")
	if ((${#configure_flags[@]} == 0)); then
		build::fail "${log_file}" "Could not run jemalloc's configure script."
	fi
	page_size_flag="$(build::page_size_flag "${version}" "$(uname -m)")"
	if [[ -n "${page_size_flag}" ]]; then
		configure_flags+=("${page_size_flag}")
	fi
	echo "${configure_flags[*]}" >"${work_dir}/configure-flags"

	build::run_logged "${log_file}" "${source_dir}" configure ./configure "${configure_flags[@]}"
	local make_variables=("${BUILD_MAKE_VARIABLES[@]}") linked_objects=()
	if [[ "${version%%.*}" -ge 5 ]]; then
		build::compile_object "${BUILD_METRICS_SOURCE}" "${work_dir}/metrics.o" "${log_file}"
		linked_objects+=("${work_dir}/metrics.o")
	fi
	if [[ -n "${default_malloc_conf}" ]]; then
		build::link_fork_helper "${source_dir}" "${work_dir}" "${log_file}"
		linked_objects+=("${work_dir}/background_thread_after_fork.o")
	fi
	if ((${#linked_objects[@]} > 0)); then
		make_variables+=("EXTRA_LDFLAGS=${linked_objects[*]}")
	fi
	# Only the shared library and the scripts: these targets exist in every release since 3.0,
	# and skip the static library, headers and docs that a dyno never needs.
	build::run_logged "${log_file}" "${source_dir}" make make -j"$(nproc)" build_lib_shared "${make_variables[@]}"
	build::run_logged "${log_file}" "${source_dir}" "make install" \
		make install_lib_shared install_bin DESTDIR="${staging_dir}"

	local installed="${staging_dir}${BUILD_RUNTIME_PREFIX}"
	build::prune "${installed}"
	build::ensure_unversioned_link "${installed}/lib" "${log_file}"
	build::run_logged "${log_file}" "${installed}/lib" strip \
		strip --strip-unneeded "$(readlink -f "${installed}/lib/libjemalloc.so")"
	mv "${installed}" "${output_dir}"
}

# Usage: build::compile_object SOURCE OBJECT LOG_FILE
# Compiles one of the buildpack's C files (src/) into OBJECT, for the library's link line (part
# of libjemalloc.so itself, so that LD_PRELOAD names one file, as it always has).
build::compile_object() {
	local source="$1" object="$2" log_file="$3"
	build::run_logged "${log_file}" "$(dirname "${object}")" "compile $(basename "${source}")" \
		cc -std=gnu99 -O2 -fPIC -Wall -c "${source}" -o "${object}"
}

# Usage: build::link_fork_helper SOURCE_DIR WORK_DIR LOG_FILE
# Compiles the fork helper to WORK_DIR/background_thread_after_fork.o (build::compile_object)
# and renames jemalloc's definitions of the functions it wraps
# (BUILD_RENAMED_MALLCTL) in the configured SOURCE_DIR's src/jemalloc.pic.o.
build::link_fork_helper() {
	local source_dir="$1" work_dir="$2" log_file="$3" object="src/jemalloc.pic.o" name renames=()
	build::compile_object "${BUILD_FORK_HELPER_SOURCE}" "${work_dir}/background_thread_after_fork.o" "${log_file}"
	build::run_logged "${log_file}" "${source_dir}" "compile ${object}" make -j"$(nproc)" "${BUILD_MAKE_VARIABLES[@]}" "${object}"
	for name in "${BUILD_RENAMED_MALLCTL[@]}"; do
		if ! nm -g --defined-only "${source_dir}/${object}" 2>>"${log_file}" | grep -qE "[[:space:]]T ${name}\$"; then
			build::fail "${log_file}" "This jemalloc source does not define ${name} in ${object}, which the fork helper wraps." \
				"Set JEMALLOC_TUNING=none to build it without the buildpack's tuning and fork helper."
		fi
		renames+=(--redefine-sym "${name}=jemalloc_buildpack_real_${name}")
	done
	build::run_logged "${log_file}" "${source_dir}" "rename ${BUILD_RENAMED_MALLCTL[*]}" objcopy "${renames[@]}" "${object}"
}

# Usage: build::prune TREE
# Keeps only what a dyno uses: the shared library and its links, jemalloc-config and
# jeprof (pprof in 3.x). jemalloc's own bin/jemalloc.sh goes: the buildpack ships its wrapper.
build::prune() {
	local tree="$1"
	find "${tree}" -mindepth 1 -maxdepth 1 ! -name bin ! -name lib -exec rm -rf {} +
	mkdir -p "${tree}/bin" "${tree}/lib"
	rm -f "${tree}/bin/jemalloc.sh"
	find "${tree}/lib" -mindepth 1 -maxdepth 1 ! -name 'libjemalloc.so*' -exec rm -rf {} +
}

# Usage: build::ensure_unversioned_link LIB_DIR LOG_FILE
# The runtime preloads lib/libjemalloc.so, so it must resolve to the real library.
build::ensure_unversioned_link() {
	local lib_dir="$1" log_file="$2" versioned=()
	if [[ ! -e "${lib_dir}/libjemalloc.so" ]]; then
		mapfile -t versioned < <(find "${lib_dir}" -maxdepth 1 -type f -name 'libjemalloc.so.*' -printf '%f\n')
		if ((${#versioned[@]} == 1)); then
			ln -sf "${versioned[0]}" "${lib_dir}/libjemalloc.so"
		fi
	fi
	if [[ ! -f "${lib_dir}/libjemalloc.so" ]]; then
		build::fail "${log_file}" "The jemalloc build did not produce lib/libjemalloc.so."
	fi
}
