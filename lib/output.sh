#!/usr/bin/env bash
# Build output in Heroku's conventions: "-----> " starts a step, seven spaces indent its
# details, and problems go to stderr as lines prefixed " !     " so they stand out in the log.
# Every line is cleaned on its way out: secrets registered with output::hide are masked and
# control characters cannot reach the log (see output::clean).

# Exit status of output::error. It differs from what a failing command usually returns, so
# that the ERR trap (lib/failure.sh) can tell an explained failure from an unexpected one.
OUTPUT_ERROR_STATUS=97
# Strings never printed as they are (credentials of JEMALLOC_SOURCE_URL, see output::hide).
OUTPUT_SECRETS=()
# output::error keeps its first line (the failure_reason of bin/report) here, and, when it is
# set, in this file too: output::error may run in a subshell, whose variables are lost.
OUTPUT_REASON=""
OUTPUT_REASON_FILE=""

# Usage: output::hide SECRET [SECRET ...]
# Registers strings that no later line may show; each is printed as *** instead.
output::hide() {
	local secret
	for secret in "$@"; do
		if [[ -n "${secret}" ]]; then
			OUTPUT_SECRETS+=("${secret}")
		fi
	done
}

# Most characters a log line shows; the rest is cut (a 100 KB value is no use in a log).
OUTPUT_MAX_LINE=1000

# Usage: output::clean TEXT
# Prints TEXT as one log line: registered secrets masked, tabs as spaces, any other control
# character (an escape sequence, a carriage return, a newline) as '?', cut to OUTPUT_MAX_LINE.
output::clean() {
	local LC_ALL=C text="$1" secret
	for secret in "${OUTPUT_SECRETS[@]}"; do
		text="${text//"${secret}"/***}"
	done
	if ((${#text} > OUTPUT_MAX_LINE)); then
		text="${text:0:OUTPUT_MAX_LINE}... (${#text} characters in all)"
	fi
	text="${text//$'\t'/ }"
	printf '%s\n' "${text//[[:cntrl:]]/?}"
}

# Usage: output::printable VALUE [MAX_CHARACTERS]
# Prints a config value for quoting in a message: cut to MAX_CHARACTERS (default 100) with a
# note of its full length, control characters shown as \xNN escapes.
output::printable() {
	local LC_ALL=C value="$1" max="${2:-100}" suffix="" shown="" char code i
	if ((${#value} > max)); then
		suffix="... (${#value} bytes in all)"
		value="${value:0:max}"
	fi
	if [[ "${value}" == *[[:cntrl:]]* ]]; then
		for ((i = 0; i < ${#value}; i++)); do
			char="${value:i:1}"
			if [[ "${char}" == [[:cntrl:]] ]]; then
				printf -v code '\\x%02x' "'${char}"
				shown+="${code}"
			else
				shown+="${char}"
			fi
		done
		value="${shown}"
	fi
	printf '%s\n' "${value}${suffix}"
}

# Usage: output::step "Installing jemalloc"
output::step() {
	echo "-----> $(output::clean "$*")"
}

# Usage: output::detail "Built in 42 s"
output::detail() {
	echo "       $(output::clean "$*")"
}

# Usage: output::warning "line" ["line" ...]
output::warning() {
	local line
	for line in "$@"; do
		echo " !     $(output::clean "${line}")"
	done >&2
}

# Usage: output::error "what went wrong" ["how to fix it" ...]
# Never returns: the build stops with exit status OUTPUT_ERROR_STATUS.
output::error() {
	local line
	for line in "$@"; do
		echo " !     $(output::clean "${line}")"
	done >&2
	# shellcheck disable=SC2034 # read by failure::reason
	OUTPUT_REASON="$(output::clean "$1")"
	if [[ -n "${OUTPUT_REASON_FILE}" ]]; then
		{ output::clean "$1" >"${OUTPUT_REASON_FILE}"; } 2>/dev/null || :
	fi
	exit "${OUTPUT_ERROR_STATUS}"
}
