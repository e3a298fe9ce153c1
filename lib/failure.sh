#!/usr/bin/env bash
# What a failing build says. The caller names each step (failure::step); an unexpected failure
# then becomes a " !     " line naming that step (failure::on_error, the ERR trap), a signal
# one saying the build was stopped (failure::on_signal), and a full disk, wherever it strikes,
# "No space left on <path>" with what to do (failure::check_space).

# What the build is doing, in words that fit "... while <step>".
FAILURE_STEP="starting"
# Directories whose filesystem filling up fails the build, as "DIR<TAB>what it is<TAB>advice".
FAILURE_SPACE_WATCH=()
# A filesystem with less free space than this (in KiB) counts as full.
FAILURE_FULL_KIB=1024
# The signal that stopped the build, if one did (for failure::reason).
FAILURE_SIGNAL=""
# A copy of the build's stderr (failure::keep_stderr): a signal may arrive while a step's
# stderr goes to a file, and what the trap says must still reach the log.
FAILURE_STDERR_FD=""

# Usage: failure::keep_stderr
# Keeps a descriptor of the current stderr for what the traps print.
failure::keep_stderr() {
	exec {FAILURE_STDERR_FD}>&2
}

# Usage: failure::step "downloading the jemalloc source"
failure::step() {
	FAILURE_STEP="$1"
}

# Usage: failure::watch_space DIR "what it is" "what to do when it is full"
failure::watch_space() {
	FAILURE_SPACE_WATCH+=("$1"$'\t'"$2"$'\t'"$3")
}

# Usage: failure::is_full DIR
# Succeeds when the filesystem holding DIR (or its nearest existing parent) has no room left:
# less than FAILURE_FULL_KIB free, or no free inodes.
failure::is_full() {
	local dir="$1" stats available block_size inodes free_inodes
	while [[ ! -e "${dir}" && "${dir}" == /?* ]]; do
		dir="${dir%/*}"
		dir="${dir:-/}"
	done
	# No here-strings in this file: before bash 5.1 they need a temporary file, and TMPDIR may
	# be the disk that is full.
	stats="$(stat -f -c '%a %S %c %d' -- "${dir}" 2>/dev/null)" || return 1
	available="${stats%% *}"
	stats="${stats#* }"
	block_size="${stats%% *}"
	stats="${stats#* }"
	inodes="${stats%% *}"
	free_inodes="${stats#* }"
	if ((available * block_size / 1024 < FAILURE_FULL_KIB)); then
		return 0
	fi
	((inodes > 0 && free_inodes == 0))
}

# Usage: failure::check_space
# Fails the build with "No space left on DIR" when a watched directory's filesystem is full;
# returns otherwise. Called where a failure may have been caused by a full disk.
failure::check_space() {
	local watched dir what advice
	for watched in "${FAILURE_SPACE_WATCH[@]}"; do
		dir="${watched%%$'\t'*}"
		advice="${watched##*$'\t'}"
		what="${watched#*$'\t'}"
		what="${what%$'\t'*}"
		if failure::is_full "${dir}"; then
			output::error \
				"No space left on ${dir} (${what}) while ${FAILURE_STEP}." \
				"${advice}"
		fi
	done
}

# Usage: trap 'failure::on_error $? "${BASH_COMMAND}"' ERR   (with set -E)
# Turns a failure that no function explained into a " !     " line naming the step. Failures
# inside a subshell are left to the shell that started it, and output::error's own exit
# status means the failure was explained already.
failure::on_error() {
	local status="$1" command="$2"
	# shellcheck disable=SC2154 # OUTPUT_ERROR_STATUS: lib/output.sh, sourced first
	if ((BASH_SUBSHELL > 0)) || [[ "${status}" == "${OUTPUT_ERROR_STATUS}" ]]; then
		return 0
	fi
	failure::check_space
	output::error \
		"The build failed unexpectedly while ${FAILURE_STEP}: '${command}' exited with status ${status}." \
		"Nothing was installed. Build again; if it fails the same way, report it to the buildpack's" \
		"maintainers with this build log."
}

# Usage: trap 'failure::on_signal TERM 143' TERM
# Says which signal stopped the build and in which step, then exits with STATUS (the EXIT
# trap then removes what the build had begun). Nothing is printed for SIGPIPE and SIGHUP:
# the log stream is gone.
failure::on_signal() {
	local name="$1" status="$2"
	FAILURE_SIGNAL="SIG${name}"
	if [[ "${name}" != PIPE && "${name}" != HUP ]]; then
		output::warning "The build was stopped by ${FAILURE_SIGNAL} while ${FAILURE_STEP}; nothing was installed." \
			2>&"${FAILURE_STDERR_FD:-2}" || :
	fi
	exit "${status}"
}

# Usage: failure::reason EXIT_STATUS
# Prints one line saying why the build failed, for bin/report: the first line of the error
# it printed, else the signal or the step.
failure::reason() {
	# shellcheck disable=SC2154 # OUTPUT_REASON: lib/output.sh, sourced first
	local status="$1" reason="${OUTPUT_REASON}"
	if [[ -z "${reason}" && -n "${OUTPUT_REASON_FILE}" && -f "${OUTPUT_REASON_FILE}" ]]; then
		reason="$(<"${OUTPUT_REASON_FILE}")" || reason=""
	fi
	if [[ -z "${reason}" && -n "${FAILURE_SIGNAL}" ]]; then
		reason="stopped by ${FAILURE_SIGNAL} while ${FAILURE_STEP}"
	fi
	echo "${reason:-failed while ${FAILURE_STEP} (exit status ${status})}"
}
