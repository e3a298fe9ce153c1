#!/usr/bin/env bash
# The build report: bin/compile records facts about the last build, successful or not, in the
# cache dir (not the slug), and bin/report prints them as YAML for Heroku's build metrics. A
# build that cannot write its cache cannot keep a report either: writing one never fails a build.

# Usage: report::file CACHE_DIR
report::file() {
	echo "$1/jemalloc/last-build-report"
}

# Usage: report::clear CACHE_DIR
# Forgets the previous build's report, so a failed build is not described by an older one.
report::clear() {
	rm -f "$(report::file "$1")" 2>/dev/null || :
}

# Usage: report::write CACHE_DIR KEY VALUE [KEY VALUE ...]
# Stores the pairs as KEY<TAB>VALUE lines (record::write). Best effort: a failure is ignored.
report::write() {
	local report_file
	report_file="$(report::file "$1")"
	shift
	record::write "${report_file}" $'\t' "$@" || :
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
