#!/usr/bin/env bash
# The steps every build of jemalloc takes, whatever the buildpack API (bin/compile for classic
# buildpacks, bin/build for Cloud Native Buildpacks): read the config vars, choose the version,
# its source and checksum, compute the cache key; then download, verify and build.
# Results are left in global variables, named below, for the caller's cache and install steps,
# and the facts bin/report shows are added to the caller's REPORT_FACTS array as they become
# known. Needs lib/output.sh, failure.sh, config.sh, versions.sh, download.sh, build.sh, cache.sh.

# Usage: pipeline::resolve ENV_DIR
# Reads the JEMALLOC_* config vars from ENV_DIR (one file per var), prints the headline step,
# and sets VERSION, SOURCE_SHA256, SOURCE_URL, CHECKSUM_ORIGIN, DOWNLOAD_TIMEOUT, PROFILING,
# TUNING, DEFAULT_MALLOC_CONF, STACK_NAME, CACHE_KEY and SHORT_KEY. Fails the build on bad input.
pipeline::resolve() {
	local ENV_DIR="$1" RECIPE_FILES=()
	failure::step "reading the config vars"
	REQUESTED_VERSION="$(config::requested_version "${ENV_DIR}")"
	CHECKSUM_OVERRIDE="$(config::checksum "${ENV_DIR}")"
	SOURCE_URL_OVERRIDE="$(config::source_url "${ENV_DIR}")"
	download::hide_url_secrets "${SOURCE_URL_OVERRIDE}"
	DOWNLOAD_TIMEOUT="$(config::download_timeout "${ENV_DIR}")"
	PROFILING="$(config::profiling "${ENV_DIR}")"
	TUNING="$(config::tuning "${ENV_DIR}")"

	VERSION="$(versions::select "${REQUESTED_VERSION}" "${CHECKSUM_OVERRIDE}")"
	SOURCE_SHA256="$(versions::source_checksum "${VERSION}" "${CHECKSUM_OVERRIDE}")"
	SOURCE_URL="${SOURCE_URL_OVERRIDE:-$(versions::upstream_url "${VERSION}")}"
	if [[ -n "${CHECKSUM_OVERRIDE}" ]]; then
		CHECKSUM_ORIGIN="config var"
		HEADLINE="jemalloc ${VERSION} (checksum from JEMALLOC_CHECKSUM"
	else
		CHECKSUM_ORIGIN="pinned"
		HEADLINE="jemalloc ${VERSION} (checksum pinned"
	fi
	REPORT_FACTS+=(
		jemalloc_version "${VERSION}" source_url "$(download::redact_url "${SOURCE_URL}")"
		source_sha256 "${SOURCE_SHA256}" checksum_origin "${CHECKSUM_ORIGIN}" profiling "${PROFILING}"
	)
	DEFAULT_MALLOC_CONF="$(build::default_malloc_conf "${VERSION}" "${TUNING}")"
	if [[ -n "${DEFAULT_MALLOC_CONF}" ]]; then
		HEADLINE+=", tuned for memory"
	fi
	if [[ "${PROFILING}" == true ]]; then
		HEADLINE+=", profiling enabled"
	fi
	output::step "${HEADLINE})"
	if [[ "${TUNING}" == memory && -z "${DEFAULT_MALLOC_CONF}" ]]; then
		output::detail "jemalloc ${VERSION} predates the options of the memory tuning (5.0 and later): built with its own defaults"
	fi
	if ! versions::is_listed "${VERSION}"; then
		output::warning "Warning: jemalloc ${VERSION} is not a listed release; building it because JEMALLOC_CHECKSUM is set."
	fi

	STACK_NAME="$(cache::stack_name)"
	REPORT_FACTS+=(stack "${STACK_NAME}")
	mapfile -t RECIPE_FILES < <(build::recipe_files)
	CACHE_KEY="$(cache::key "${STACK_NAME}" "$(uname -m)" "${VERSION}" "${SOURCE_SHA256}" \
		"$(build::requested_options "${PROFILING}" "${DEFAULT_MALLOC_CONF}")" "${RECIPE_FILES[@]}")"
	SHORT_KEY="$(cache::short_key "${CACHE_KEY}")"
}

# Usage: pipeline::fetch_and_build SCRATCH_DIR
# Downloads the source chosen by pipeline::resolve, verifies its SHA-256 and builds it: the tree
# is left in SCRATCH_DIR/tree, the configure flags in SCRATCH_DIR/build/configure-flags, and the
# seconds the build took in BUILD_SECONDS.
pipeline::fetch_and_build() {
	local SCRATCH_DIR="$1"
	failure::step "downloading the jemalloc source"
	output::step "Downloading jemalloc ${VERSION} source"
	output::detail "From $(download::redact_url "${SOURCE_URL}")"
	TARBALL="${SCRATCH_DIR}/download/jemalloc-source"
	mkdir -p "${TARBALL%/*}"
	download::fetch "${SOURCE_URL}" "${TARBALL}" "${DOWNLOAD_TIMEOUT}"
	download::verify_sha256 "${TARBALL}" "${SOURCE_SHA256}" "${CHECKSUM_ORIGIN}" "${SOURCE_URL}"
	output::detail "Verified SHA-256 ${SOURCE_SHA256}"

	failure::step "building jemalloc"
	output::step "Building jemalloc ${VERSION} (cache key ${SHORT_KEY})"
	BUILD_STARTED="${SECONDS}"
	build::from_source "${TARBALL}" "${VERSION}" "${PROFILING}" "${DEFAULT_MALLOC_CONF}" "${SCRATCH_DIR}/build" "${SCRATCH_DIR}/tree"
	BUILD_SECONDS=$((SECONDS - BUILD_STARTED))
	output::detail "Built in ${BUILD_SECONDS} s"
}
