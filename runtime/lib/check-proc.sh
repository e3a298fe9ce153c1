#!/usr/bin/env bash
# Results go to the caller's variables through namerefs, which shellcheck takes for unused:
# shellcheck disable=SC2034
#
# jemalloc-check's reading of /proc: what a process has mapped, its threads,
# its name and size, and which processes the dyno runs. Sourced by
# runtime/bin/jemalloc-check (installed beside the preload rules, in
# libexec/jemalloc-buildpack/). bash 4.4 and no external command: results go
# to the variables the caller names (namerefs), whose names must not be the
# callee's own locals (hence the proc_*_out names of these). Files are read
# as bytes (LC_ALL=C): in a UTF-8 locale, bash's read takes the newline after
# a name that ends inside a multibyte sequence into the name.

# The figures that a process on jemalloc publishes with JEMALLOC_METRICS=true
# (proc::read_metrics), non-negative integers: a valid file has all of the
# needed ones, and may lack optional ones (older jemalloc releases have no
# retained or dirty), which are then unknown.
PROC_METRICS_NEEDED=(interval samples first_at first_allocated first_resident at allocated resident)
PROC_METRICS_OPTIONAL=(active retained dirty metadata peak_resident)

# Usage: proc::mapped_jemalloc PID MAPPED_VAR ERROR_VAR
# Sets MAPPED_VAR to the first file mapped into process PID whose name
# contains "libjemalloc" (empty when none), and ERROR_VAR to why its map
# cannot be read (empty when it can). Returns 1 when it cannot be read.
proc::mapped_jemalloc() {
	local LC_ALL=C proc_pid=$1 proc_line
	local -n proc_mapped_out=$2 proc_error_out=$3
	local -a proc_lines=()
	proc_mapped_out=
	proc_error_out=
	if ! { mapfile -t proc_lines <"/proc/$proc_pid/maps"; } 2>/dev/null; then
		if [[ -e /proc/$proc_pid ]]; then
			proc_error_out="cannot read /proc/$proc_pid/maps"
		else
			proc_error_out="no such process"
		fi
		return 1
	fi
	# Line by line: a strip over the whole map joined into one string costs
	# bash time quadratic in its length (minutes for 10,000 lines), a match on
	# one short line does not. A file's path starts at its line's first '/'
	# (address, permissions, offset, device and inode hold none; a line
	# without one is no file, such as a named anonymous mapping).
	for proc_line in "${proc_lines[@]}"; do
		if [[ $proc_line == *libjemalloc* && $proc_line == */* ]]; then
			proc_mapped_out=/${proc_line#*/}
			return 0
		fi
	done
	return 0
}

# Usage: proc::background_thread PID RESULT_VAR
# Sets RESULT_VAR to yes when one of process PID's threads is jemalloc's
# background thread (named jemalloc_bg_thd by jemalloc 5.2 and later), which
# returns freed memory to the kernel while the process idles; no otherwise.
proc::background_thread() {
	local LC_ALL=C proc_pid=$1 proc_task proc_name
	local -n proc_bg_out=$2
	proc_bg_out=no
	for proc_task in "/proc/$proc_pid/task/"*/comm; do
		proc_name=
		{ IFS= read -r proc_name <"$proc_task"; } 2>/dev/null || :
		if [[ $proc_name == jemalloc_bg_thd ]]; then
			proc_bg_out=yes
			return 0
		fi
	done
}

# Usage: proc::all_pids RESULT_ARRAY
# Sets RESULT_ARRAY to every process in /proc but PID 1, kernel threads,
# exited (zombie) processes, this check and its descendants, in PID order.
proc::all_pids() {
	local LC_ALL=C proc_entry proc_pid proc_line proc_has_memory proc_ppid proc_changed
	local -n proc_result_out=$1
	local -A proc_parent=() proc_excluded=()
	local -a proc_lines=() proc_candidates=() proc_ordered=()
	for proc_entry in /proc/[0-9]*; do
		proc_pid=${proc_entry#/proc/}
		proc_has_memory='' proc_ppid=''
		if { mapfile -t proc_lines <"$proc_entry/status"; } 2>/dev/null; then
			for proc_line in "${proc_lines[@]}"; do
				case $proc_line in
					PPid:*) proc_ppid=${proc_line#PPid:} ;;
					VmSize:*) proc_has_memory=1 ;;
					*) ;;
				esac
			done
		fi
		proc_ppid=${proc_ppid//[[:space:]]/}
		# Kernel threads and exited (zombie) processes have no memory of their own.
		if [[ -z $proc_has_memory || $proc_pid == 1 ]]; then
			continue
		fi
		proc_parent[$proc_pid]=$proc_ppid
		proc_candidates+=("$proc_pid")
	done
	# This check and whatever it started (descendants, at any depth).
	proc_excluded[$$]=1
	proc_changed=1
	while [[ -n $proc_changed ]]; do
		proc_changed=
		for proc_pid in "${proc_candidates[@]}"; do
			if [[ -z ${proc_excluded[$proc_pid]+x} && -n ${proc_parent[$proc_pid]} && -n ${proc_excluded[${proc_parent[$proc_pid]}]+x} ]]; then
				proc_excluded[$proc_pid]=1
				proc_changed=1
			fi
		done
	done
	# An indexed array lists its indices in numeric order: PID order, no sort(1).
	for proc_pid in "${proc_candidates[@]}"; do
		if [[ -z ${proc_excluded[$proc_pid]+x} ]]; then
			proc_ordered[proc_pid]=$proc_pid
		fi
	done
	proc_result_out=("${proc_ordered[@]}")
}

# Usage: proc::start_time PID RESULT_VAR
# Sets RESULT_VAR to when process PID started (field 22 of /proc/PID/stat,
# clock ticks since boot), empty when it cannot be read: a PID is reused,
# with its start time it names one process.
proc::start_time() {
	local LC_ALL=C proc_pid=$1 proc_stat='' proc_after=' ([^ ]+ ){19}([0-9]+)( |$)'
	local -n proc_start_out=$2
	proc_start_out=
	# The whole file (-d ''), and the fields after the last ')': field 2, the
	# name in parentheses, may hold spaces, parentheses and newlines.
	{ IFS= read -r -d '' proc_stat <"/proc/$proc_pid/stat"; } 2>/dev/null || :
	if [[ $proc_stat == *')'* && ${proc_stat##*')'} =~ ^$proc_after ]]; then
		proc_start_out=${BASH_REMATCH[2]}
	fi
}

# Usage: proc::read_metrics DIR PID RESULT_ASSOC NOW
# Sets RESULT_ASSOC to the figures that process PID publishes in DIR/PID with
# JEMALLOC_METRICS on (src/metrics.c replaces the file at every interval),
# keyed by their names, or empties it when there is no valid file for PID at
# NOW (epoch seconds). The file is key=value lines, values non-negative
# decimal integers:
#   format=1, pid, starttime (field 22 of /proc/PID/stat), interval (seconds
#   between samples), samples (so far, 1 or more); the baseline (the first
#   sample, one interval after the start or fork): first_at (epoch seconds), first_allocated and
#   first_resident; the latest sample: at, then allocated, active, resident,
#   retained, dirty, metadata and peak_resident (bytes).
# Unknown keys are ignored; PROC_METRICS_OPTIONAL's may be missing (unknown).
# Valid is: format 1, PID's own pid and start time (else the file is a dead
# process's whose PID was reused), and a latest sample at most two intervals
# and 10 s old (else its writer is gone or stuck). The figures are extra: no
# directory, no file, no reading it, garbage, all mean none, never an error.
# That PID maps libjemalloc, the last condition, is the caller's to know.
# shellcheck disable=SC2004 # RESULT_ASSOC is associative: its keys are no arithmetic
proc::read_metrics() {
	local LC_ALL=C proc_file=$1/$2 proc_pid=$2 proc_now=$4 proc_line proc_key proc_value proc_start
	local -n proc_metrics_out=$3
	local -a proc_lines=()
	local -A proc_read=()
	proc_metrics_out=()
	# A regular file only (a FIFO would hang the check), and its first 200
	# lines only: the writer's are 16, whatever a later format adds.
	if [[ ! -f $proc_file ]] || ! { mapfile -t -n 200 proc_lines <"$proc_file"; } 2>/dev/null; then
		return 0
	fi
	for proc_line in "${proc_lines[@]}"; do
		proc_key=${proc_line%%=*}
		proc_value=${proc_line#*=}
		# Unknown keys are ignored, a value that is no number is missing: 18
		# digits at most (bash's arithmetic is 64-bit), read as decimal (10#:
		# a leading 0 is no octal), the first of a key's lines kept.
		if [[ $proc_line == *=* && $proc_key =~ ^[a-z_][a-z0-9_]*$ && $proc_value =~ ^[0-9]{1,18}$ &&
			-z ${proc_read[$proc_key]+x} ]]; then
			proc_read[$proc_key]=$((10#$proc_value))
		fi
	done
	for proc_key in format pid starttime "${PROC_METRICS_NEEDED[@]}"; do
		if [[ -z ${proc_read[$proc_key]+x} ]]; then
			return 0
		fi
	done
	proc::start_time "$proc_pid" proc_start
	if ((proc_read[format] != 1 || proc_read[pid] != proc_pid)) || [[ ${proc_read[starttime]} != "$proc_start" ]] ||
		((proc_now - proc_read[at] > 2 * proc_read[interval] + 10)); then
		return 0
	fi
	for proc_key in "${PROC_METRICS_NEEDED[@]}" "${PROC_METRICS_OPTIONAL[@]}"; do
		if [[ -n ${proc_read[$proc_key]+x} ]]; then
			proc_metrics_out[$proc_key]=${proc_read[$proc_key]}
		fi
	done
}

# Usage: proc::inspect_process PID RESULT_ASSOC METRICS_DIR NOW
# Sets the keys of associative array RESULT_ASSOC for process PID: mapped (as
# proc::mapped_jemalloc), error (why it cannot be read, or empty), comm, rss
# (kB, empty when unknown), bg (yes/no; empty without jemalloc) and the
# figures it publishes in METRICS_DIR (proc::read_metrics at NOW; each key of
# PROC_METRICS_NEEDED and PROC_METRICS_OPTIONAL, empty when unknown), only
# where jemalloc is mapped: a file is no process's without it.
# shellcheck disable=SC2004 # RESULT_ASSOC is associative: its keys are no arithmetic
proc::inspect_process() {
	local LC_ALL=C proc_pid=$1 proc_line proc_value='' proc_mapped proc_error proc_bg='' proc_key
	local -n proc_info_out=$2
	local -a proc_lines=()
	local -A proc_metrics=()
	proc_info_out=([mapped]='' [error]='' [comm]='' [rss]='' [bg]='')
	for proc_key in "${PROC_METRICS_NEEDED[@]}" "${PROC_METRICS_OPTIONAL[@]}"; do
		proc_info_out[$proc_key]=
	done
	proc::mapped_jemalloc "$proc_pid" proc_mapped proc_error || :
	proc_info_out[mapped]=$proc_mapped
	proc_info_out[error]=$proc_error
	if [[ $proc_error == "no such process" ]]; then
		return 0
	fi
	{ IFS= read -r proc_value <"/proc/$proc_pid/comm"; } 2>/dev/null || :
	proc_info_out[comm]=$proc_value
	if [[ -n $proc_mapped ]]; then
		proc::background_thread "$proc_pid" proc_bg
		proc_info_out[bg]=$proc_bg
		proc::read_metrics "$3" "$proc_pid" proc_metrics "$4"
		for proc_key in "${!proc_metrics[@]}"; do
			proc_info_out[$proc_key]=${proc_metrics[$proc_key]}
		done
	fi
	if { mapfile -t proc_lines <"/proc/$proc_pid/status"; } 2>/dev/null; then
		for proc_line in "${proc_lines[@]}"; do
			if [[ $proc_line =~ ^VmRSS:[[:space:]]*([0-9]+) ]]; then
				proc_info_out[rss]=${BASH_REMATCH[1]}
			fi
		done
	fi
}
