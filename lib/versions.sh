#!/usr/bin/env bash
# The jemalloc releases this buildpack offers, read from data/releases.tsv
# (columns: version, released, upstream_tarball, sha256_of_upstream_tarball, soname).

VERSIONS_TABLE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/data/releases.tsv"
VERSIONS_UPSTREAM_BASE_URL="https://github.com/jemalloc/jemalloc/releases/download"

# Usage: versions::all
# Prints the listed versions, oldest first.
versions::all() {
	awk -F'\t' 'NR > 1 && $1 != "" { print $1 }' "${VERSIONS_TABLE}" | sort -V
}

# Usage: versions::newest
versions::newest() {
	versions::all | tail -n 1
}

# Usage: versions::all_joined
# Prints the listed versions on one line, for error messages.
versions::all_joined() {
	versions::all | paste -s -d ' ' - | sed 's/ /, /g'
}

# Usage: versions::column VERSION COLUMN_NUMBER
# Prints that column of the version's row, or nothing when the version is not listed.
versions::column() {
	local version="$1" column="$2"
	awk -F'\t' -v version="${version}" -v column="${column}" \
		'NR > 1 && $1 == version { print $column; exit }' "${VERSIONS_TABLE}"
}

# Usage: versions::is_listed VERSION
versions::is_listed() {
	local version="$1"
	[[ -n "$(versions::column "${version}" 1)" ]]
}

# Usage: versions::select REQUESTED_VERSION CHECKSUM_OVERRIDE
# Prints the version to build: the requested one, or the newest listed one when none was
# requested. Fails for malformed versions, and for unlisted ones unless a checksum was given,
# because an unlisted release can only be trusted against a checksum the app owner supplies.
# Prints to stdout nothing but the version: callers capture it.
versions::select() {
	local requested="$1" checksum_override="$2"

	if [[ -z "${requested}" ]]; then
		versions::newest
		return 0
	fi

	if [[ ! "${requested}" =~ ^[0-9]{1,6}\.[0-9]{1,6}\.[0-9]{1,6}$ ]]; then
		output::error \
			"JEMALLOC_VERSION '$(output::printable "${requested}")' is not a version number." \
			"Available versions: $(versions::all_joined)" \
			"Set one of them, for example: heroku config:set JEMALLOC_VERSION=$(versions::newest)" \
			"or unset it to get the newest: heroku config:unset JEMALLOC_VERSION"
	fi

	if ! versions::is_listed "${requested}"; then
		if [[ -z "${checksum_override}" ]]; then
			output::error \
				"jemalloc ${requested} (from JEMALLOC_VERSION) is not a release this buildpack lists." \
				"Available versions: $(versions::all_joined)" \
				"Pick one of them, for example: heroku config:set JEMALLOC_VERSION=$(versions::newest)" \
				"An unlisted release can be built by setting the SHA-256 of its source tarball:" \
				"  heroku config:set JEMALLOC_CHECKSUM=<sha256 of jemalloc-${requested}.tar.bz2>" \
				"(and JEMALLOC_SOURCE_URL=<url of the tarball> if it is not published on GitHub)."
		fi
	fi

	echo "${requested}"
}

# Usage: versions::source_checksum VERSION CHECKSUM_OVERRIDE
# Prints the SHA-256 the downloaded source must have: the override if given, else the pinned one.
versions::source_checksum() {
	local version="$1" checksum_override="$2" pinned
	if [[ -n "${checksum_override}" ]]; then
		echo "${checksum_override}"
		return 0
	fi
	pinned="$(versions::column "${version}" 4)"
	if [[ -z "${pinned}" ]]; then
		output::error \
			"There is no pinned checksum for jemalloc ${version}, so its source cannot be verified." \
			"Set the SHA-256 of its source tarball: heroku config:set JEMALLOC_CHECKSUM=<sha256>"
	fi
	echo "${pinned}"
}

# Usage: versions::upstream_url VERSION
# Prints where jemalloc publishes the release tarball.
versions::upstream_url() {
	local version="$1" tarball
	tarball="$(versions::column "${version}" 3)"
	echo "${VERSIONS_UPSTREAM_BASE_URL}/${version}/${tarball:-jemalloc-${version}.tar.bz2}"
}
