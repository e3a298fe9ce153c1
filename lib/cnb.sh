#!/usr/bin/env bash
# The Cloud Native Buildpack's own steps (Buildpack API 0.10): the jemalloc layer and its
# metadata. Everything about the build itself (config vars, version, source, checksum, cache key,
# compile) is shared with the classic buildpack in lib/pipeline.sh.
#
# The layer <layers>/jemalloc is a launch and cache layer. Its contents are a classic cache entry,
# tree/ (the built bin/ and lib/) and manifest (what tree/ must hold), which cache::damage
# verifies; beside them, what the buildpack adds at every build: bin/ (jemalloc-check,
# jemalloc.sh and links to the tree's scripts; the launcher puts a launch layer's bin/ on PATH),
# exec.d/jemalloc (the preload decision at every process start), libexec/jemalloc-buildpack/
# (runtime/lib/: the preload rules that exec.d/jemalloc sources, as the classic profile.d shim
# does, and jemalloc-check's parts; the same place relative to bin/ as in vendor/jemalloc) and
# build-info. Nothing of it changes from one build to the next with the same cache key (no time,
# no "cache hit" fact), so the layer's digest stays the same and the exporter reuses the layer of
# the previous image. The library is kept out of the layer's lib/, which the launcher would put
# on every process's LD_LIBRARY_PATH.

CNB_LAYER_NAME="jemalloc"

# Usage: cnb::layer_dir LAYERS_DIR
cnb::layer_dir() {
	echo "$1/${CNB_LAYER_NAME}"
}

# Usage: cnb::layer_toml LAYERS_DIR
cnb::layer_toml() {
	echo "$1/${CNB_LAYER_NAME}.toml"
}

# Usage: cnb::runtime_prefix LAYER_DIR
# Prints jemalloc's --prefix for a build into LAYER_DIR: its tree/, where the library,
# jemalloc-config and jeprof are at launch too (the app image has the layers at the paths the
# build had them), so that jemalloc-config's --prefix and --libdir name the layer.
cnb::runtime_prefix() {
	echo "$1/tree"
}

# Usage: cnb::layer_cache_key LAYER_TOML
# Prints the cache_key recorded in the layer's metadata by an earlier build (restored by the
# lifecycle, without its [types] table), or nothing when there is none or it is not a key.
cnb::layer_cache_key() {
	local layer_toml="$1" key=""
	if [[ -f "${layer_toml}" ]]; then
		key="$(sed -n -E 's/^[[:space:]]*cache_key[[:space:]]*=[[:space:]]*"([0-9a-f]{64})"[[:space:]]*$/\1/p' "${layer_toml}" | head -n 1)"
	fi
	echo "${key}"
}

# Usage: cnb::reusable_layer LAYER_DIR LAYER_TOML CACHE_KEY SHORT_KEY
# Succeeds when the layer restored from the cache holds the build of CACHE_KEY and its files
# match its manifest. A damaged layer is reported and removed; one for other settings is removed.
cnb::reusable_layer() {
	local layer_dir="$1" layer_toml="$2" cache_key="$3" short_key="$4" damage
	if [[ ! -d "${layer_dir}" ]]; then
		return 1
	fi
	if [[ "$(cnb::layer_cache_key "${layer_toml}")" != "${cache_key}" ]]; then
		rm -rf "${layer_dir}"
		return 1
	fi
	damage="$(cache::damage "${layer_dir}")"
	if [[ -n "${damage}" ]]; then
		output::detail "Cached build ${short_key} is damaged (${damage}); rebuilding"
		rm -rf "${layer_dir}"
		return 1
	fi
	return 0
}

# Usage: cnb::store_build TREE SCRATCH_DIR CACHE_KEY DESCRIPTION LAYER_DIR
# Makes LAYER_DIR the cache entry of the tree just built: tree/ and its manifest, written by
# cache::store (in SCRATCH_DIR) exactly as the classic cache holds them.
cnb::store_build() {
	local tree="$1" scratch_dir="$2" cache_key="$3" description="$4" layer_dir="$5"
	mkdir -p "$(cache::builds_dir "${scratch_dir}/cache")"
	if ! cache::store "${tree}" "${scratch_dir}/cache" "${cache_key}" "${description}" 2>"${scratch_dir}/store-errors"; then
		failure::check_space
		output::error "Could not assemble the jemalloc layer in ${scratch_dir}: $(tail -n 1 "${scratch_dir}/store-errors")" \
			"Build again; if it fails the same way, report it to the buildpack's maintainers with this build log."
	fi
	rm -rf "${layer_dir}"
	mkdir -p "${layer_dir%/*}"
	mv "$(cache::builds_dir "${scratch_dir}/cache")/${cache_key}" "${layer_dir}"
}

# Usage: cnb::install_runtime BUILDPACK_DIR LAYER_DIR
# (Re)writes what the layer needs at launch beside the verified tree: bin/, exec.d/jemalloc and
# libexec/jemalloc-buildpack/ (INSTALL_RUNTIME_LIBEXEC), from this buildpack's files (they may be newer than the cached tree).
cnb::install_runtime() {
	local buildpack_dir="$1" layer_dir="$2" script name
	if [[ ! -f "${buildpack_dir}/runtime/exec.d/jemalloc" || ! -f "${buildpack_dir}/runtime/lib/preload-rules.sh" ]]; then
		output::error \
			"This buildpack is incomplete: runtime/exec.d/jemalloc or runtime/lib/preload-rules.sh is missing." \
			"Use a released version of the buildpack."
	fi
	# share/ held the rules (as share/jemalloc-preload.sh) before libexec/: a layer restored
	# from an older build may still have it.
	rm -rf "${layer_dir:?}/bin" "${layer_dir}/exec.d" "${layer_dir}/libexec" "${layer_dir}/share"
	# shellcheck disable=SC2154 # INSTALL_RUNTIME_LIBEXEC: lib/install.sh, sourced first
	mkdir -p "${layer_dir}/bin" "${layer_dir}/exec.d" "${layer_dir}/${INSTALL_RUNTIME_LIBEXEC}"
	for script in "${layer_dir}/tree/bin/"*; do
		name="${script##*/}"
		if [[ -f "${script}" ]]; then
			ln -s "../tree/bin/${name}" "${layer_dir}/bin/${name}"
		fi
	done
	cp -R --preserve=mode,timestamps "${buildpack_dir}/runtime/bin/." "${layer_dir}/bin/"
	cp --preserve=mode,timestamps "${buildpack_dir}/runtime/exec.d/jemalloc" "${layer_dir}/exec.d/jemalloc"
	cp -R --preserve=mode,timestamps "${buildpack_dir}/runtime/lib/." "${layer_dir}/${INSTALL_RUNTIME_LIBEXEC}/"
	if [[ ! -f "${layer_dir}/tree/lib/libjemalloc.so" ]]; then
		output::error "The jemalloc layer has no tree/lib/libjemalloc.so; the cached build may be damaged." \
			"Clear the build cache and build again."
	fi
}

# Usage: cnb::write_layer_toml LAYER_TOML KEY VALUE [KEY VALUE ...]
# Writes the layer's content metadata (buildpack.md, "Layer Content Metadata (TOML)"): a launch
# layer (in the app image) that is also cached (restored for the next build), not a build layer
# (later buildpacks compile with the stack's allocator), and the pairs as [metadata] strings.
cnb::write_layer_toml() {
	local layer_toml="$1" value
	shift
	{
		printf '[types]\nlaunch = true\nbuild = false\ncache = true\n\n[metadata]\n'
		while (($# >= 2)); do
			value="${2//[[:cntrl:]]/ }"
			value="${value//\\/\\\\}"
			value="${value//\"/\\\"}"
			printf '%s = "%s"\n' "$1" "${value}"
			shift 2
		done
	} >"${layer_toml}.tmp"
	mv "${layer_toml}.tmp" "${layer_toml}"
}
