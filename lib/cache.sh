#!/usr/bin/env bash
# Built trees kept in CACHE_DIR between builds of an app, so that an unchanged app does not
# download and compile jemalloc again. Entries are CACHE_DIR/jemalloc/builds/<key>/ holding
# tree/ and a manifest of every file's SHA-256 and every symlink's target: an entry is only
# used after a copy of it has been checked against its manifest.
#
# The cache is an optimisation: when it cannot be written (read-only, not the build user's,
# full, a dangling symlink) the build goes on without it (cache::problem says why). Builds
# that share one CACHE_DIR keep out of each other's way: entries are written under names of
# their own (.partial-*) that their writer holds locked with flock, and created, renamed and
# evicted under the cache's lock; an entry being copied out is held with a shared lock, and
# eviction passes it by.

CACHE_MAX_ENTRIES=3
CACHE_MANIFEST_HEADER="# jemalloc buildpack cache manifest v1"
CACHE_MANIFEST_FOOTER="# end of manifest"
# How long a build waits for another one to release the cache's lock (held for a moment at a
# time) before it gives up caching.
CACHE_LOCK_WAIT_SECONDS=60
# The entry being written by this process and the descriptor that locks it, removed by
# cache::discard_partial if the build fails.
CACHE_PARTIAL_ENTRY=""
CACHE_PARTIAL_FD=""
# The descriptor holding the cache's lock, while it is held.
CACHE_LOCK_FD=""

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

# Usage: cache::problem CACHE_DIR
# Prints why this build cannot use CACHE_DIR, in words that fit "Not caching: ..."; nothing
# when it can. Creates CACHE_DIR/jemalloc/builds and proves it writable with a small file.
cache::problem() {
	local cache_dir="$1" builds_dir probe error
	builds_dir="$(cache::builds_dir "${cache_dir}")"
	if [[ -L "${cache_dir}" && ! -e "${cache_dir}" ]]; then
		echo "the cache directory ${cache_dir} is a symbolic link to $(readlink -- "${cache_dir}"), which does not exist"
		return 0
	fi
	if [[ -e "${cache_dir}" && ! -d "${cache_dir}" ]]; then
		echo "the cache directory ${cache_dir} is not a directory"
		return 0
	fi
	if ! command -v flock >/dev/null; then
		echo "flock (util-linux) is not installed; builds sharing the cache need it"
		return 0
	fi
	probe="${builds_dir}/.probe-$$-${RANDOM}"
	if ! error="$({ mkdir -p "${builds_dir}" && printf '%4096s' '' >"${probe}"; } 2>&1)"; then
		rm -f "${probe}" 2>/dev/null
		cache::explain_write_error "${cache_dir}" "${error}"
		return 0
	fi
	rm -f "${probe}"
}

# Usage: cache::explain_write_error CACHE_DIR ERROR_MESSAGES
# Prints, for "Not caching: ...", why writing into CACHE_DIR failed with ERROR_MESSAGES.
cache::explain_write_error() {
	local cache_dir="$1" error="$2"
	case "${error}" in
		*"Read-only file system"*) echo "the cache directory ${cache_dir} is on a read-only file system" ;;
		*"Permission denied"* | *"Operation not permitted"*)
			echo "the cache directory ${cache_dir} is not writable by user $(id -un 2>/dev/null || id -u)"
			;;
		*"No space left on device"* | *"Disk quota exceeded"*) echo "no space left on ${cache_dir}" ;;
		*"cache-lock-timeout"*) echo "another build held the cache's lock for more than ${CACHE_LOCK_WAIT_SECONDS} s" ;;
		*)
			error="${error##*$'\n'}"
			echo "the cache directory ${cache_dir} cannot be written (${error##*: })"
			;;
	esac
}

# Usage: cache::lock CACHE_DIR
# Takes the cache's lock, waiting up to CACHE_LOCK_WAIT_SECONDS for another build to release
# it; fails (saying cache-lock-timeout on stderr) if it cannot. cache::unlock releases it.
cache::lock() {
	local lock_file
	lock_file="$(cache::builds_dir "$1").lock"
	if ! { exec {CACHE_LOCK_FD}>>"${lock_file}"; }; then
		CACHE_LOCK_FD=""
		return 1
	fi
	if ! flock -w "${CACHE_LOCK_WAIT_SECONDS}" "${CACHE_LOCK_FD}"; then
		echo "cache-lock-timeout" >&2
		cache::unlock
		return 1
	fi
}

# Usage: cache::unlock
cache::unlock() {
	if [[ -n "${CACHE_LOCK_FD}" ]]; then
		exec {CACHE_LOCK_FD}>&-
		CACHE_LOCK_FD=""
	fi
}

# Usage: cache::prepare CACHE_DIR
# Removes what killed builds left in the cache: half-written entries that no live build holds
# locked, and evicted entries not yet deleted. Best effort: never fails the build.
cache::prepare() {
	local builds_dir leftover fd
	builds_dir="$(cache::builds_dir "$1")"
	cache::lock "$1" 2>/dev/null || return 0
	for leftover in "${builds_dir}"/.partial-* "${builds_dir}"/.trash-*; do
		if [[ ! -d "${leftover}" ]]; then
			continue
		fi
		if [[ "${leftover}" == */.partial-* ]]; then
			# Its writer holds it locked as long as it lives.
			{ exec {fd}<"${leftover}"; } 2>/dev/null || continue
			if ! flock -n "${fd}"; then
				exec {fd}<&-
				continue
			fi
			exec {fd}<&-
		fi
		rm -rf "${leftover}" 2>/dev/null || :
	done
	cache::unlock
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
	if [[ "$(head -n 1 "${manifest}")" != "${CACHE_MANIFEST_HEADER}" ]] ||
		[[ "$(tail -n 1 "${manifest}")" != "${CACHE_MANIFEST_FOOTER}" ]]; then
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
		}' "${manifest}" <(printf '%s\n' "${current}")
}

# Usage: cache::restore ENTRY_DIR DEST_DIR
# Copies the entry's tree and manifest to DEST_DIR, holding a shared lock on the entry so that
# no build evicts it meanwhile, and checks the copy against the manifest: what is installed is
# what was checked, whatever happens to the cache afterwards. Fails with status 1, printing why,
# when the entry is damaged, and with status 2 when it could not be read or copied (then the
# entry may be sound: it is left alone).
cache::restore() {
	local entry="$1" dest="$2" fd damage
	if ! { exec {fd}<"${entry}"; } 2>/dev/null; then
		echo "it cannot be opened"
		return 2
	fi
	if ! flock -s -w "${CACHE_LOCK_WAIT_SECONDS}" "${fd}"; then
		echo "another build held it locked for more than ${CACHE_LOCK_WAIT_SECONDS} s"
		return 2
	fi
	damage="$(cache::damage "${entry}")"
	if [[ -n "${damage}" ]]; then
		echo "${damage}"
		return 1
	fi
	rm -rf "${dest}"
	if ! mkdir -p "${dest}" || ! cp -a "${entry}/tree" "${dest}/tree" || ! cp "${entry}/manifest" "${dest}/manifest"; then
		echo "it could not be copied out of the cache"
		return 2
	fi
	exec {fd}<&-
	damage="$(cache::damage "${dest}")"
	if [[ -n "${damage}" ]]; then
		echo "${damage}"
		return 1
	fi
}

# Usage: cache::store TREE CACHE_DIR KEY DESCRIPTION
# Adds TREE to the cache as entry KEY. The entry is assembled under a .partial- name of its own,
# which this process holds locked, checked against the manifest written last, then renamed
# into place, so an interrupted or concurrent build never sees an entry that looks complete
# and is not. When another build stored KEY meanwhile, its entry is kept. DESCRIPTION (e.g.
# the configure flags) is kept in the manifest. Fails, with the tools' messages on stderr,
# when the cache cannot take the entry; the build then goes on without caching.
cache::store() {
	local tree="$1" cache_dir="$2" key="$3" description="$4" builds_dir entry partial
	builds_dir="$(cache::builds_dir "${cache_dir}")"
	entry="${builds_dir}/${key}"
	cache::lock "${cache_dir}" || return 1
	if ! partial="$(mktemp -d "${builds_dir}/.partial-${key:0:12}-XXXXXXXX")"; then
		cache::unlock
		return 1
	fi
	CACHE_PARTIAL_ENTRY="${partial}"
	if ! chmod 0755 "${partial}" || ! { exec {CACHE_PARTIAL_FD}<"${partial}"; } || ! flock -n "${CACHE_PARTIAL_FD}"; then
		cache::unlock
		cache::discard_partial
		return 1
	fi
	cache::unlock
	if ! cp -a "${tree}" "${partial}/tree" || ! cache::write_manifest "${partial}" "${description}" ||
		[[ -n "$(cache::damage "${partial}")" ]]; then
		cache::discard_partial
		return 1
	fi
	if ! cache::lock "${cache_dir}"; then
		cache::discard_partial
		return 1
	fi
	if [[ ! -e "${entry}" ]] && mv -T "${partial}" "${entry}"; then
		CACHE_PARTIAL_ENTRY=""
	fi
	cache::discard_partial
	cache::unlock
}

# Usage: cache::write_manifest ENTRY_DIR DESCRIPTION
# Writes ENTRY_DIR/manifest for ENTRY_DIR/tree, in full or not at all.
cache::write_manifest() {
	local entry="$1" description="$2"
	{
		echo "${CACHE_MANIFEST_HEADER}" &&
			echo "# ${description}" &&
			cache::describe_tree "${entry}/tree" &&
			echo "${CACHE_MANIFEST_FOOTER}"
	} >"${entry}/manifest.tmp" && mv "${entry}/manifest.tmp" "${entry}/manifest"
}

# Usage: cache::discard_partial
# Removes the entry this process was writing, if any, and lets go of its lock.
cache::discard_partial() {
	if [[ -n "${CACHE_PARTIAL_ENTRY}" ]]; then
		rm -rf "${CACHE_PARTIAL_ENTRY}" 2>/dev/null || :
		CACHE_PARTIAL_ENTRY=""
	fi
	if [[ -n "${CACHE_PARTIAL_FD}" ]]; then
		exec {CACHE_PARTIAL_FD}<&-
		CACHE_PARTIAL_FD=""
	fi
}

# Usage: cache::trash ENTRY_DIR
# Takes an entry out of use at once (a rename), then deletes it. Call with the lock held.
cache::trash() {
	local entry="$1" trash
	trash="${entry%/*}/.trash-${entry##*/}-$$-${RANDOM}"
	if mv -T "${entry}" "${trash}" 2>/dev/null; then
		rm -rf "${trash}" 2>/dev/null || :
	fi
}

# Usage: cache::remove_entry CACHE_DIR ENTRY_DIR
# Removes a damaged entry. Best effort: never fails the build.
cache::remove_entry() {
	cache::lock "$1" 2>/dev/null || return 0
	cache::trash "$2"
	cache::unlock
}

# Usage: cache::mark_used ENTRY_DIR
# Entries are evicted least recently used first, by the entry directory's modification time.
cache::mark_used() {
	touch "$1" 2>/dev/null || :
}

# Usage: cache::evict CACHE_DIR KEY_IN_USE
# Keeps the entry KEY_IN_USE, whatever its date says (clocks disagree, and a build must never
# evict what it is installing), and the CACHE_MAX_ENTRIES - 1 most recently used others.
# An entry that another build is copying out (locked) is passed by. Never fails the build.
cache::evict() {
	local cache_dir="$1" key_in_use="$2" builds_dir entry fd
	builds_dir="$(cache::builds_dir "${cache_dir}")"
	cache::lock "${cache_dir}" 2>/dev/null || return 0
	while IFS= read -r entry; do
		{ exec {fd}<"${builds_dir}/${entry}"; } 2>/dev/null || continue
		if flock -n "${fd}"; then
			cache::trash "${builds_dir}/${entry}"
		fi
		exec {fd}<&-
	done < <(find "${builds_dir}" -mindepth 1 -maxdepth 1 -type d ! -name '.*' ! -name "${key_in_use}" -printf '%T@\t%f\n' |
		sort -rn | tail -n +"${CACHE_MAX_ENTRIES}" | cut -f 2)
	cache::unlock
}
