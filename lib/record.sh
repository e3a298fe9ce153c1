#!/usr/bin/env bash
# Records of facts, one KEY<SEPARATOR>VALUE line each: the slug's build-info (KEY=VALUE, read
# by jemalloc-check in the dyno) and the cache's build report (KEY<TAB>VALUE, read by bin/report).

# Usage: record::write FILE SEPARATOR KEY VALUE [KEY VALUE ...]
# Replaces FILE in one rename, so a reader never sees half a record. The new file is written
# under a name of its own first, as builds sharing a cache may write at once. Control
# characters in a value become spaces, so every fact stays on its line. Returns non-zero,
# leaving FILE as it was and no temporary file behind, when the record cannot be written.
record::write() {
	local file="$1" separator="$2" tmp
	shift 2
	tmp="$(mktemp "${file}.XXXXXXXX" 2>/dev/null)" || return 1
	if chmod 0644 "${tmp}" 2>/dev/null && while (($# >= 2)); do
		printf '%s%s%s\n' "$1" "${separator}" "${2//[[:cntrl:]]/ }"
		shift 2
	done >"${tmp}" 2>/dev/null && mv -f "${tmp}" "${file}" 2>/dev/null; then
		return 0
	fi
	rm -f "${tmp}" 2>/dev/null || :
	return 1
}
