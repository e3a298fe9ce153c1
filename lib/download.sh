#!/usr/bin/env bash
# Fetching the jemalloc source and proving it is the expected tarball before anything uses it.

DOWNLOAD_MAX_ATTEMPTS=3

# Usage: download::redact_url URL
# Prints the URL with any user:password@ hidden, so credentials in a mirror URL stay out of logs.
download::redact_url() {
	local url="$1"
	echo "${url}" | sed -E 's#^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@#\1***@#'
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

# Usage: download::failure_reason CURL_EXIT_STATUS HTTP_STATUS CURL_STDERR_FILE
# Prints a one-line reason for a failed attempt.
download::failure_reason() {
	local curl_status="$1" http_status="$2" stderr_file="$3" message
	if [[ "${curl_status}" == 22 && "${http_status}" != 000 ]]; then
		echo "HTTP ${http_status}"
		return 0
	fi
	message="$(tail -n 1 "${stderr_file}" | sed -E 's/^curl: \([0-9]+\) //')"
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

		reason="$(download::failure_reason "${curl_status}" "${http_status}" "${stderr_file}")"
		if ((attempt == DOWNLOAD_MAX_ATTEMPTS)) || ! download::is_retriable "${curl_status}" "${http_status}"; then
			output::detail "Attempt ${attempt} of ${DOWNLOAD_MAX_ATTEMPTS} failed: ${reason}"
			break
		fi
		backoff_seconds="${attempt}"
		output::detail "Attempt ${attempt} of ${DOWNLOAD_MAX_ATTEMPTS} failed: ${reason}; retrying in ${backoff_seconds} s"
		sleep "${backoff_seconds}"
	done

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
