#!/usr/bin/env bash
# The build report: bin/compile records facts about a successful build in the cache dir
# (not the slug), and bin/report prints them as YAML for Heroku's build metrics.

# Usage: report::file CACHE_DIR
report::file() {
	echo "$1/jemalloc/last-build-report"
}

# Usage: report::clear CACHE_DIR
# Forgets the previous build's report, so a failed build is not described by an older one.
report::clear() {
	rm -f "$(report::file "$1")"
}

# Usage: report::write CACHE_DIR KEY VALUE [KEY VALUE ...]
# Stores the pairs as KEY<TAB>VALUE lines, replacing the file in one rename.
report::write() {
	local report_file
	report_file="$(report::file "$1")"
	shift
	mkdir -p "${report_file%/*}"
	while (($# >= 2)); do
		printf '%s\t%s\n' "$1" "${2//[[:cntrl:]]/ }"
		shift 2
	done >"${report_file}.tmp"
	mv "${report_file}.tmp" "${report_file}"
}

# Usage: report::yaml_value VALUE
# Prints VALUE as a YAML scalar: booleans and whole numbers bare, anything else double-quoted.
report::yaml_value() {
	local value="$1"
	if [[ "${value}" =~ ^(true|false|0|[1-9][0-9]*)$ ]]; then
		echo "${value}"
	else
		value="${value//\\/\\\\}"
		value="${value//\"/\\\"}"
		echo "\"${value}\""
	fi
}

# Usage: report::print CACHE_DIR
# Prints the last build's report as "key: value" lines; nothing if there is none.
report::print() {
	local report_file key value
	report_file="$(report::file "$1")"
	if [[ ! -f "${report_file}" ]]; then
		return 0
	fi
	while IFS=$'\t' read -r key value; do
		if [[ "${key}" =~ ^[a-z_][a-z0-9_]*$ ]]; then
			echo "${key}: $(report::yaml_value "${value}")"
		fi
	done <"${report_file}"
}
