#!/usr/bin/env bash
# Built trees kept in CACHE_DIR between builds of an app, so that an unchanged app does not
# download and compile jemalloc again. Entries are CACHE_DIR/jemalloc/builds/<key>/ holding
# tree/ and a manifest of every file's SHA-256 and every symlink's target: an entry is only
# used after the tree has been checked against its manifest.

CACHE_MAX_ENTRIES=3
CACHE_MANIFEST_HEADER="# jemalloc buildpack cache manifest v1"
CACHE_MANIFEST_FOOTER="# end of manifest"
# The entry being written by this process, removed by cache::discard_partial if the build fails.
CACHE_PARTIAL_ENTRY=""

# Usage: cache::builds_dir CACHE_DIR
cache::builds_dir() {
	echo "$1/jemalloc/builds"
}

# Usage: cache::stack_name
# Prints the stack: $STACK, which Heroku sets during builds, else the OS's ID-VERSION_ID.
cache::stack_name() {
	if [[ -n "${STACK:-}" ]]; then
		echo "${STACK}"
		return 0
	fi
	local id="" version_id=""
	if [[ -r /etc/os-release ]]; then
		id="$(sed -n -E 's/^ID="?([^"]*)"?$/\1/p' /etc/os-release)"
		version_id="$(sed -n -E 's/^VERSION_ID="?([^"]*)"?$/\1/p' /etc/os-release)"
	fi
	echo "${id:-unknown}-${version_id:-unknown}"
}

# Usage: cache::key STACK ARCH VERSION SOURCE_SHA256 CONFIGURE_OPTIONS RECIPE_FILE...
# Prints the key of a build: a SHA-256 over everything that changes the built library.
cache::key() {
	local stack="$1" arch="$2" version="$3" source_sha256="$4" configure_options="$5"
	shift 5
	local recipe_sha256 key
	recipe_sha256="$(cat "$@" | sha256sum)"
	key="$(printf 'stack=%s\narch=%s\nversion=%s\nsource_sha256=%s\nconfigure_options=%s\nrecipe_sha256=%s\n' \
		"${stack}" "${arch}" "${version}" "${source_sha256}" "${configure_options}" "${recipe_sha256%% *}" |
		sha256sum)"
	echo "${key%% *}"
}

# Usage: cache::short_key KEY
cache::short_key() {
	echo "${1:0:12}"
}

# Usage: cache::prepare CACHE_DIR
# Creates the cache directory and removes entries that an interrupted build left half-written.
cache::prepare() {
	local builds_dir
	builds_dir="$(cache::builds_dir "$1")"
	mkdir -p "${builds_dir}"
	find "${builds_dir}" -mindepth 1 -maxdepth 1 -name '.partial-*' -exec rm -rf {} +
}

# Usage: cache::describe_tree TREE
# Prints the manifest records of TREE, sorted by path: "file<TAB>mode<TAB>sha256<TAB>path"
# and "link<TAB>target<TAB>path". A file that cannot be read is recorded as unreadable.
cache::describe_tree() {
	local tree="$1" path sum
	while IFS= read -r path; do
		if [[ -L "${tree}/${path}" ]]; then
			printf 'link\t%s\t%s\n' "$(readlink "${tree}/${path}")" "${path}"
		elif [[ -f "${tree}/${path}" ]]; then
			sum="$(sha256sum <"${tree}/${path}" 2>/dev/null)" || sum="unreadable"
			printf 'file\t%s\t%s\t%s\n' "$(stat -c '%a' "${tree}/${path}")" "${sum%% *}" "${path}"
		else
			printf 'other\t%s\n' "${path}"
		fi
	done < <(find "${tree}" -mindepth 1 ! -type d -printf '%P\n' | LC_ALL=C sort)
}

# Usage: cache::damage ENTRY_DIR
# Prints why the entry cannot be used (nothing when it matches its manifest).
cache::damage() {
	local entry="$1" manifest="$1/manifest" current
	if [[ ! -d "${entry}/tree" ]]; then
		echo "no build tree"
		return 0
	fi
	if [[ ! -f "${manifest}" ]]; then
		echo "no manifest"
		return 0
	fi
	if [[ "$(head -n 1 "${manifest}")" != "${CACHE_MANIFEST_HEADER}" ||
		"$(tail -n 1 "${manifest}")" != "${CACHE_MANIFEST_FOOTER}" ]]; then
		echo "manifest incomplete"
		return 0
	fi
	if ! current="$(cache::describe_tree "${entry}/tree")"; then
		echo "build tree cannot be read"
		return 0
	fi
	if [[ -z "${current}" ]]; then
		echo "build tree is empty"
		return 0
	fi
	# Compare record by record, keyed on the path (the last field).
	awk -F'\t' '
		FNR == NR { if ($0 !~ /^#/) expected[$NF] = $0; next }
		{ found[$NF] = $0 }
		END {
			for (path in expected) {
				if (!(path in found)) { print path " is missing"; exit }
				if (expected[path] == found[path]) continue
				split(expected[path], want, "\t"); split(found[path], have, "\t")
				if (want[1] != have[1]) print path " is no longer a " want[1]
				else if (want[1] == "link") print path " points to " have[2] " instead of " want[2]
				else if (want[3] != have[3]) print path " has the wrong checksum"
				else print path " has mode " have[2] " instead of " want[2]
				exit
			}
			for (path in found) {
				if (!(path in expected)) { print path " is not in the manifest"; exit }
			}
		}' "${manifest}" - <<<"${current}"
}

# Usage: cache::store TREE CACHE_DIR KEY DESCRIPTION
# Adds TREE to the cache as entry KEY. The entry is assembled under a .partial- name with its
# manifest written last, then renamed into place, so an interrupted build never leaves an
# entry that looks complete. DESCRIPTION (e.g. the configure flags) is kept in the manifest.
cache::store() {
	local tree="$1" cache_dir="$2" key="$3" description="$4" builds_dir entry
	builds_dir="$(cache::builds_dir "${cache_dir}")"
	entry="${builds_dir}/${key}"
	CACHE_PARTIAL_ENTRY="${builds_dir}/.partial-${key}-$$"
	rm -rf "${CACHE_PARTIAL_ENTRY}"
	mkdir -p "${CACHE_PARTIAL_ENTRY}"
	cp -a "${tree}" "${CACHE_PARTIAL_ENTRY}/tree"
	{
		echo "${CACHE_MANIFEST_HEADER}"
		echo "# ${description}"
		cache::describe_tree "${CACHE_PARTIAL_ENTRY}/tree"
		echo "${CACHE_MANIFEST_FOOTER}"
	} >"${CACHE_PARTIAL_ENTRY}/manifest.tmp"
	mv "${CACHE_PARTIAL_ENTRY}/manifest.tmp" "${CACHE_PARTIAL_ENTRY}/manifest"
	rm -rf "${entry}"
	mv "${CACHE_PARTIAL_ENTRY}" "${entry}"
	CACHE_PARTIAL_ENTRY=""
}

# Usage: cache::discard_partial
# Removes the entry this process was writing, if any (used when the build fails).
cache::discard_partial() {
	if [[ -n "${CACHE_PARTIAL_ENTRY}" ]]; then
		rm -rf "${CACHE_PARTIAL_ENTRY}"
		CACHE_PARTIAL_ENTRY=""
	fi
}

# Usage: cache::remove_entry ENTRY_DIR
cache::remove_entry() {
	rm -rf "$1"
}

# Usage: cache::mark_used ENTRY_DIR
# Entries are evicted least recently used first, by the entry directory's modification time.
cache::mark_used() {
	touch "$1"
}

# Usage: cache::evict CACHE_DIR
# Keeps only the CACHE_MAX_ENTRIES most recently used entries.
cache::evict() {
	local builds_dir entry
	builds_dir="$(cache::builds_dir "$1")"
	while IFS= read -r entry; do
		rm -rf "${builds_dir:?}/${entry}"
	done < <(find "${builds_dir}" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@\t%f\n' |
		sort -rn | tail -n +$((CACHE_MAX_ENTRIES + 1)) | cut -f 2)
}
