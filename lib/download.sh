#!/usr/bin/env bash
# Fetching the jemalloc source and proving it is the expected tarball before anything uses it.

DOWNLOAD_MAX_ATTEMPTS=3

# Usage: download::redact_url URL
# Prints the URL as logs and reports may show it: credentials before the host and the values
# of the query string hidden, so that a mirror's password or a signed URL's signature (e.g.
# X-Amz-Signature, token=) stays out of them. Nothing up to the last '@' before the query is
# shown, as a password may hold '@', '/' or ':' unencoded; a URL with an '@' in its query
# or fragment is shown as its scheme alone. Cut to 200 characters, control characters escaped.
download::redact_url() {
	local url="$1" scheme="" rest head tail query="" param shown
	if [[ "${url}" =~ ^([A-Za-z][A-Za-z0-9+.-]*://)(.*)$ ]]; then
		scheme="${BASH_REMATCH[1]}"
		rest="${BASH_REMATCH[2]}"
	else
		rest="${url}"
	fi
	head="${rest%%[?#]*}"
	tail="${rest:${#head}}"
	if [[ "${tail}" == *@* ]]; then
		output::printable "${scheme}***" 200
		return 0
	fi
	if [[ "${head}" == *@* ]]; then
		head="***@${head##*@}"
	fi
	if [[ "${tail}" == \?* ]]; then
		rest="${tail%%#*}"
		tail="${tail:${#rest}}"
		rest="${rest#\?}"
		while [[ -n "${rest}" ]]; do
			param="${rest%%&*}"
			rest="${rest:${#param}}"
			rest="${rest#&}"
			if [[ "${param}" =~ ^[A-Za-z0-9_.-]+= ]]; then
				query+="${query:+&}${param%%=*}=***"
			elif [[ -n "${param}" ]]; then
				query+="${query:+&}***"
			fi
		done
		query="?${query}"
	fi
	shown="${scheme}${head}${query}"
	if [[ -n "${tail}" ]]; then
		shown+="#***"
	fi
	output::printable "${shown}" 200
}

# Usage: download::hide_url_secrets URL
# Registers the secrets a URL may carry (its user:password, its password alone and decoded,
# its query values and fragment) with output::hide, so that no line of output shows them even
# where a tool quotes part of the URL. Short values that cannot be secrets (a query value such
# as "host" or "3600") are left alone, or they would be masked everywhere in the log.
download::hide_url_secrets() {
	local url="$1" rest head tail userinfo password param value
	rest="${url#*://}"
	head="${rest%%[?#]*}"
	tail="${rest:${#head}}"
	if [[ "${tail}" == *@* ]]; then
		output::hide "${rest%@*}"
	fi
	if [[ "${head}" == *@* ]]; then
		userinfo="${head%@*}"
		password="${userinfo#*:}"
		if [[ "${password}" == "${userinfo}" ]]; then
			password=""
		fi
		output::hide "${userinfo}"
		if ((${#password} >= 3)); then
			output::hide "${password}" "$(download::percent_decode "${password}")"
		fi
	fi
	tail="${tail#[?#]}"
	while [[ -n "${tail}" ]]; do
		param="${tail%%[&#]*}"
		tail="${tail:${#param}}"
		tail="${tail#[&#]}"
		value="${param#*=}"
		if ((${#value} >= 8)); then
			output::hide "${value}" "$(download::percent_decode "${value}")"
		fi
	done
}

# Usage: download::percent_decode TEXT
# Prints TEXT with %XX escapes decoded (as curl sends a URL's password).
download::percent_decode() {
	local text="${1//\\/\\\\}"
	printf '%b\n' "${text//%/\\x}"
}

# Usage: download::is_retriable CURL_EXIT_STATUS HTTP_STATUS
# Succeeds for failures that another attempt may cure: timeouts, connection trouble, partial
# transfers, server errors and rate limiting. A 404 or a missing file will not change.
download::is_retriable() {
	local curl_status="$1" http_status="$2"
	case "${curl_status}" in
		22)
			[[ "${http_status}" =~ ^(5[0-9][0-9]|408|429)$ ]]
			;;
		5 | 6 | 7 | 16 | 18 | 28 | 35 | 52 | 55 | 56 | 92)
			return 0
			;;
		*)
			return 1
			;;
	esac
}

# Usage: download::failure_reason CURL_EXIT_STATUS HTTP_STATUS CURL_STDERR_FILE [URL]
# Prints a one-line reason for a failed attempt. curl's message is withheld when it quotes a
# piece of the URL's user:password (curl reads a malformed one as a host name, and says so).
download::failure_reason() {
	local curl_status="$1" http_status="$2" stderr_file="$3" url="${4:-}" message userinfo piece
	if [[ "${curl_status}" == 22 && "${http_status}" != 000 ]]; then
		echo "HTTP ${http_status}"
		return 0
	fi
	message="$(tail -n 1 "${stderr_file}" 2>/dev/null | sed -E 's/^curl: \([0-9]+\) //')" || message=""
	userinfo="${url#*://}"
	userinfo="${userinfo%%[?#]*}"
	if [[ "${userinfo}" == *@* ]]; then
		userinfo="${userinfo%@*}"
		while [[ -n "${userinfo}" ]]; do
			piece="${userinfo%%[@:/]*}"
			userinfo="${userinfo:${#piece}}"
			userinfo="${userinfo#[@:/]}"
			if ((${#piece} >= 2)) && [[ "${message}" == *"${piece}"* ]]; then
				message="curl exit status ${curl_status}; its message is withheld as it quotes part of the URL's credentials"
				break
			fi
		done
	fi
	echo "${message:-curl exit status ${curl_status}}"
}

# Usage: download::fetch URL OUTPUT_FILE TIMEOUT_SECONDS
# Downloads URL (http, https or file) to OUTPUT_FILE, with up to three attempts for failures
# that may be transient. Fails the build with the reason when no attempt succeeds.
download::fetch() {
	local url="$1" output_file="$2" timeout_seconds="$3"
	local stderr_file="${output_file}.curl-stderr"
	local attempt curl_status http_status reason backoff_seconds
	local connect_timeout=$((timeout_seconds < 10 ? timeout_seconds : 10))

	for ((attempt = 1; attempt <= DOWNLOAD_MAX_ATTEMPTS; attempt++)); do
		curl_status=0
		# -q ignores any ~/.curlrc; --globoff keeps [] and {} in URLs literal.
		http_status="$(curl -q --fail --location --globoff --silent --show-error \
			--proto '=http,https,file' --proto-redir '=http,https' \
			--connect-timeout "${connect_timeout}" --max-time "${timeout_seconds}" \
			--output "${output_file}" --write-out '%{http_code}' \
			"${url}" 2>"${stderr_file}")" || curl_status=$?
		if ((curl_status == 0)); then
			return 0
		fi

		reason="$(download::failure_reason "${curl_status}" "${http_status}" "${stderr_file}" "${url}")"
		if ((attempt == DOWNLOAD_MAX_ATTEMPTS)) || ! download::is_retriable "${curl_status}" "${http_status}"; then
			output::detail "Attempt ${attempt} of ${DOWNLOAD_MAX_ATTEMPTS} failed: ${reason}"
			break
		fi
		backoff_seconds="${attempt}"
		output::detail "Attempt ${attempt} of ${DOWNLOAD_MAX_ATTEMPTS} failed: ${reason}; retrying in ${backoff_seconds} s"
		sleep "${backoff_seconds}"
	done

	# Checked before the partial download is removed: a full disk, not a wrong version or URL.
	failure::check_space
	if ((curl_status == 23)); then
		rm -f "${output_file}"
		output::error \
			"Could not save the jemalloc source to ${output_file%/*}: ${reason}." \
			"Check that TMPDIR (${TMPDIR:-/tmp}) is a writable directory with free space, and build again."
	fi
	rm -f "${output_file}"
	local attempts="${attempt} attempts"
	if ((attempt == 1)); then
		attempts="1 attempt"
	fi
	local hints=(
		"Check that JEMALLOC_VERSION names a jemalloc release (heroku config:get JEMALLOC_VERSION)"
		"and, if JEMALLOC_SOURCE_URL is set, that it points to the source tarball on a server reachable"
		"from Heroku's build servers, for example:"
		"  heroku config:set JEMALLOC_SOURCE_URL=https://mirror.example.com/jemalloc-5.3.0.tar.bz2"
	)
	if ((curl_status == 28 || curl_status == 18)); then
		hints+=("If the server is just slow, allow more time per attempt: heroku config:set JEMALLOC_DOWNLOAD_TIMEOUT=180")
	fi
	output::error \
		"Could not download the jemalloc source from $(download::redact_url "${url}")" \
		"${reason} (after ${attempts})." \
		"${hints[@]}"
}

# Usage: download::verify_sha256 FILE EXPECTED_SHA256 CHECKSUM_ORIGIN URL
# Fails the build unless FILE has the expected SHA-256; nothing may unpack an unverified file.
download::verify_sha256() {
	local file="$1" expected="$2" checksum_origin="$3" url="$4" actual
	actual="$(sha256sum "${file}")"
	actual="${actual%% *}"
	if [[ "${actual}" == "${expected}" ]]; then
		return 0
	fi
	rm -f "${file}"
	local fix="Make sure the URL serves the unmodified release tarball (JEMALLOC_SOURCE_URL, if set, points to the right file)."
	if [[ "${checksum_origin}" == "config var" ]]; then
		fix="Make sure JEMALLOC_CHECKSUM is the published SHA-256 of that release tarball and JEMALLOC_SOURCE_URL (if set) serves it."
	fi
	output::error \
		"Checksum mismatch for the jemalloc source downloaded from $(download::redact_url "${url}"):" \
		"  expected SHA-256 ($([[ "${checksum_origin}" == pinned ]] && echo pinned || echo from JEMALLOC_CHECKSUM)): ${expected}" \
		"  actual SHA-256:   ${actual}" \
		"The download was discarded and nothing was built." \
		"${fix}"
}
