#!/usr/bin/env bash
# The app's config vars, read only from ENV_DIR/<NAME> files: at build time Heroku passes
# config vars as files, and anything in the build's environment belongs to someone else.

# Usage: config::value ENV_DIR NAME
# Prints the value with surrounding whitespace (including newlines) removed; nothing if unset.
# A value holding a NUL byte fails the build: no part of it can be trusted, and bash could not
# even hold it.
config::value() {
	local env_dir="$1" name="$2" value="" bytes without_nul
	if [[ -f "${env_dir}/${name}" ]]; then
		bytes="$(wc -c <"${env_dir}/${name}")"
		without_nul="$(tr -d '\000' <"${env_dir}/${name}" | wc -c)"
		if ((bytes != without_nul)); then
			output::error \
				"${name} contains a NUL byte ($((bytes - without_nul)) of its ${bytes} bytes), so it cannot be read." \
				"Set it again without it, or remove it: heroku config:unset ${name}"
		fi
		value="$(<"${env_dir}/${name}")"
	fi
	value="${value#"${value%%[![:space:]]*}"}"
	value="${value%"${value##*[![:space:]]}"}"
	printf '%s\n' "${value}"
}

# Usage: config::requested_version ENV_DIR
# Prints JEMALLOC_VERSION as given (empty when unset); versions::select judges it.
config::requested_version() {
	config::value "$1" JEMALLOC_VERSION
}

# Usage: config::checksum ENV_DIR
# Prints JEMALLOC_CHECKSUM in lowercase, or nothing when unset.
config::checksum() {
	local checksum
	checksum="$(config::value "$1" JEMALLOC_CHECKSUM)"
	if [[ -n "${checksum}" && ! "${checksum}" =~ ^[0-9a-fA-F]{64}$ ]]; then
		output::error \
			"JEMALLOC_CHECKSUM '$(output::printable "${checksum}")' is not a SHA-256 checksum (64 hexadecimal digits)." \
			"Set the SHA-256 of the jemalloc source tarball, as printed by 'sha256sum jemalloc-X.Y.Z.tar.bz2':" \
			"  heroku config:set JEMALLOC_CHECKSUM=<64 hex digits>" \
			"or remove it to use the pinned checksum: heroku config:unset JEMALLOC_CHECKSUM"
	fi
	printf '%s\n' "${checksum,,}"
}

# Usage: config::source_url ENV_DIR
# Prints JEMALLOC_SOURCE_URL, or nothing when unset. Only schemes curl handles as plain file
# transfers are accepted, so that a typo cannot turn into some other protocol.
config::source_url() {
	local url
	url="$(config::value "$1" JEMALLOC_SOURCE_URL)"
	if [[ -z "${url}" ]]; then
		return 0
	fi
	if [[ ! "${url,,}" =~ ^(https?|file)://[^[:space:][:cntrl:]]+$ ]]; then
		output::error \
			"JEMALLOC_SOURCE_URL '$(download::redact_url "${url}")' is not an http://, https:// or file:// URL without spaces." \
			"Point it at the jemalloc source tarball, for example:" \
			"  heroku config:set JEMALLOC_SOURCE_URL=https://mirror.example.com/jemalloc-5.3.0.tar.bz2" \
			"or remove it to download from GitHub: heroku config:unset JEMALLOC_SOURCE_URL"
	fi
	printf '%s\n' "${url}"
}

# Usage: config::download_timeout ENV_DIR
# Prints the seconds allowed per download attempt (JEMALLOC_DOWNLOAD_TIMEOUT, default 60).
config::download_timeout() {
	local timeout
	timeout="$(config::value "$1" JEMALLOC_DOWNLOAD_TIMEOUT)"
	if [[ -z "${timeout}" ]]; then
		echo 60
		return 0
	fi
	# Nine digits at most keeps the number far from bash's integer limits.
	if [[ ! "${timeout}" =~ ^0*[1-9][0-9]{0,8}$ ]]; then
		output::error \
			"JEMALLOC_DOWNLOAD_TIMEOUT '$(output::printable "${timeout}")' is not a positive whole number of seconds." \
			"Set the seconds allowed per download attempt, for example: heroku config:set JEMALLOC_DOWNLOAD_TIMEOUT=120" \
			"or remove it to use the default of 60: heroku config:unset JEMALLOC_DOWNLOAD_TIMEOUT"
	fi
	echo "$((10#${timeout}))"
}

# Usage: config::profiling ENV_DIR
# Prints "true" or "false" from JEMALLOC_PROFILING.
config::profiling() {
	local profiling
	profiling="$(config::value "$1" JEMALLOC_PROFILING)"
	case "${profiling,,}" in
		true | 1 | yes | on) echo true ;;
		false | 0 | no | off | "") echo false ;;
		*)
			output::error \
				"JEMALLOC_PROFILING '$(output::printable "${profiling}")' is neither on nor off." \
				"Use true/1/yes/on to build with heap profiling, false/0/no/off to build without:" \
				"  heroku config:set JEMALLOC_PROFILING=true"
			;;
	esac
}

# Usage: config::tuning ENV_DIR
# Prints "memory" (the default: jemalloc built with the buildpack's memory-oriented defaults)
# or "none" (jemalloc's own defaults) from JEMALLOC_TUNING.
config::tuning() {
	local tuning
	tuning="$(config::value "$1" JEMALLOC_TUNING)"
	case "${tuning,,}" in
		memory | "") echo memory ;;
		none) echo none ;;
		*)
			output::error \
				"JEMALLOC_TUNING '$(output::printable "${tuning}")' is neither memory nor none." \
				"Use memory (the default) for the buildpack's memory-oriented defaults, none for jemalloc's own:" \
				"  heroku config:set JEMALLOC_TUNING=none"
			;;
	esac
}
