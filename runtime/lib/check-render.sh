#!/usr/bin/env bash
# Results go to the caller's variables through namerefs, which shellcheck takes for unused:
# shellcheck disable=SC2034
#
# jemalloc-check's output: the answer as text for people and as one JSON
# object. Sourced by runtime/bin/jemalloc-check (installed beside the preload
# rules, in libexec/jemalloc-buildpack/). Every function is given what it
# prints: values as arguments, or the names of the caller's arrays (namerefs,
# whose names must not be the callee's own locals: hence the render_* names).
#
# The answer (an associative array) has the keys:
#   active           true/false
#   reason, hint     "on: ..."/"off: ...", and what to do (empty: none)
#   mode             shell (about this shell) or processes (PIDs, --all)
#   library          this buildpack's library path, library_exists true/false,
#                    library_target (the symlink's target, or empty) and
#                    library_file (its real file, or empty)
#   mapped, bg       the libjemalloc file mapped in this check (or empty), and
#                    whether its background thread runs (yes/no/empty)
#   version          the version in build-info (or empty), library_version the
#                    one the library reports (or empty)
#   process_type     DYNO's process type (or empty)
#   after_fork       JEMALLOC_BACKGROUND_THREAD_AFTER_FORK as the rules read
#                    it: on, off or invalid (on, as by default), or absent
#                    when the build has no fork helper (build-info with no
#                    default_malloc_conf); after_fork_value its value
#                    without surrounding spaces
# The processes (an associative array) have the key count, and for each
# process N from 0 the keys N,pid N,comm N,mapped N,rss (kB) N,error N,bg
# and N,NAME for each figure NAME of PROC_METRICS_NEEDED and
# PROC_METRICS_OPTIONAL (empty when unknown: as proc::inspect_process has
# them): one value per key, as a name or a path may hold any byte but NUL, so
# no separator could be told from data.
#
# What is printed is made safe here, whatever bytes the values hold: JSON
# escapes and replaces what is not UTF-8 (render::json_string), text replaces
# control characters and bytes that are not UTF-8 (render::printable), so an
# answer stays valid JSON, or one line per fact and per process.

# The settings shown, in this order: their values come from the environment.
RENDER_SETTINGS=(JEMALLOC_ENABLED JEMALLOC_PROCESS_TYPES JEMALLOC_BACKGROUND_THREAD_AFTER_FORK DYNO MALLOC_CONF
	MALLOC_ARENA_MAX)

# Usage: render::pieces VALUE RESULT_ARRAY
# Sets RESULT_ARRAY to VALUE cut into pieces of at most a few hundred bytes,
# in order, never inside a UTF-8 sequence (a cut moves past up to 3
# continuation bytes: a fourth could belong to no sequence before it). bash
# copies a whole string to take one byte of it (${value:i:1}), so a walk
# byte by byte over a long value is quadratic; over its pieces it is not, and
# halving pieces until they are short costs O(n log n).
render::pieces() {
	local LC_ALL=C piece half i more=1
	local -n render_pieces=$2
	local -a next=()
	render_pieces=("$1")
	while ((more)); do
		more=0
		next=()
		for piece in "${render_pieces[@]}"; do
			if ((${#piece} <= 256)); then
				next+=("$piece")
				continue
			fi
			half=$((${#piece} / 2))
			for ((i = 0; i < 3; i++)); do
				if [[ ${piece:half:1} != [$'\x80'-$'\xbf'] ]]; then
					break
				fi
				half=$((half + 1))
			done
			next+=("${piece:0:half}" "${piece:half}")
			more=1
		done
		render_pieces=("${next[@]}")
	done
}

# Usage: render::join ARRAY RESULT_VAR
# Sets RESULT_VAR to the elements of ARRAY joined, in one copy: appending to
# a string copies it, so a string built by appending to it is quadratic.
render::join() {
	local -n render_parts=$1 render_joined=$2
	printf -v render_joined '%s' "${render_parts[@]}"
}

# Usage: render::valid_utf8 VALUE REPLACEMENT RESULT_VAR
# Sets RESULT_VAR to VALUE with every byte that is not part of a well-formed
# UTF-8 sequence replaced by REPLACEMENT, so that output stays valid UTF-8
# whatever bytes a variable or a process name holds. ASCII-only values are
# returned at once; a run of ASCII is taken whole, then one sequence or bad
# byte. The sequences are those of RFC 3629 (Unicode's table 3-7): no
# overlong forms, no surrogates, nothing above U+10FFFF.
render::valid_utf8() {
	local LC_ALL=C value=$1 replacement=$2 out piece ascii length c=$'[\x80-\xbf]'
	local -a pieces=() outs=()
	local -n render_utf8=$3
	if [[ $value != *[$'\x80'-$'\xff']* ]]; then
		render_utf8=$value
		return 0
	fi
	render::pieces "$value" pieces
	for piece in "${pieces[@]}"; do
		out=
		while [[ -n $piece ]]; do
			ascii=${piece%%[$'\x80'-$'\xff']*}
			out+=$ascii
			piece=${piece:${#ascii}}
			if [[ -z $piece ]]; then
				break
			fi
			length=1
			if [[ ${piece:0:2} == [$'\xc2'-$'\xdf']$c ]]; then
				length=2
			elif [[ ${piece:0:3} == $'\xe0'[$'\xa0'-$'\xbf']$c || ${piece:0:3} == [$'\xe1'-$'\xec\xee\xef']$c$c ||
				${piece:0:3} == $'\xed'[$'\x80'-$'\x9f']$c ]]; then
				length=3
			elif [[ ${piece:0:4} == $'\xf0'[$'\x90'-$'\xbf']$c$c || ${piece:0:4} == [$'\xf1'-$'\xf3']$c$c$c ||
				${piece:0:4} == $'\xf4'[$'\x80'-$'\x8f']$c$c ]]; then
				length=4
			fi
			if ((length > 1)); then
				out+=${piece:0:length}
			else
				out+=$replacement
			fi
			piece=${piece:length}
		done
		outs+=("$out")
	done
	render::join outs out
	render_utf8=$out
}

# Usage: render::json_string VALUE RESULT_VAR
# Sets RESULT_VAR to VALUE as a JSON string: quoted, with backslash, double
# quote and control characters escaped. Bytes are taken one by one (LC_ALL=C,
# piece by piece: render::pieces): UTF-8 text passes through unchanged, and
# bytes that are not UTF-8 become \ufffd (render::valid_utf8), so the output
# is always valid JSON in UTF-8.
render::json_string() {
	local LC_ALL=C value=$1 escaped piece char code i utf8
	local bs=\\ dq='"'
	local -a pieces=() outs=()
	local -n render_json=$2
	# Printable ASCII without a quote or a backslash, as most values are.
	if [[ $value != *[^\ -~]* && $value != *["$bs$dq"]* ]]; then
		render_json="\"$value\""
		return 0
	fi
	render::pieces "$value" pieces
	for piece in "${pieces[@]}"; do
		piece=${piece//"$bs"/"$bs$bs"}
		piece=${piece//"$dq"/"$bs$dq"}
		if [[ $piece == *[[:cntrl:]]* ]]; then
			escaped=
			for ((i = 0; i < ${#piece}; i++)); do
				char=${piece:i:1}
				case $char in
					$'\n') escaped+='\n' ;;
					$'\t') escaped+='\t' ;;
					$'\r') escaped+='\r' ;;
					[[:cntrl:]])
						printf -v code '\\u%04x' "'$char"
						escaped+=$code
						;;
					*) escaped+=$char ;;
				esac
			done
			piece=$escaped
		fi
		outs+=("$piece")
	done
	render::join outs escaped
	render::valid_utf8 "$escaped" '\ufffd' utf8
	render_json="\"$utf8\""
}

# Usage: render::printable VALUE RESULT_VAR
# Sets RESULT_VAR to VALUE for a terminal or a log line: every control
# character (C0, DEL and C1: newlines, tabs, escape sequences) and every byte
# that is not part of well-formed UTF-8 becomes '?', so that what is printed
# stays on its line, in its column, and is valid UTF-8.
render::printable() {
	local LC_ALL=C value=$1 piece shown
	local -a pieces=() outs=()
	local -n render_printable=$2
	if [[ $value != *[^\ -~]* ]]; then
		render_printable=$value
		return 0
	fi
	render::pieces "$value" pieces
	for piece in "${pieces[@]}"; do
		piece=${piece//[[:cntrl:]]/?}
		# C1 is U+0080-U+009F: \xc2 then \x80-\x9f, well-formed wherever it stands.
		outs+=("${piece//$'\xc2'[$'\x80'-$'\x9f']/?}")
	done
	render::join outs shown
	render::valid_utf8 "$shown" '?' shown
	render_printable=$shown
}

# Usage: render::json_optional VALUE RESULT_VAR
# Sets RESULT_VAR to VALUE as a JSON string, or null when VALUE is empty.
render::json_optional() {
	if [[ -n $1 ]]; then
		render::json_string "$1" "$2"
	else
		local -n render_optional=$2
		render_optional=null
	fi
}

# Usage: render::json_nullable NAME RESULT_VAR
# Sets RESULT_VAR to the value of variable NAME as a JSON string, or null when unset.
render::json_nullable() {
	if [[ -n ${!1+x} ]]; then
		render::json_string "${!1}" "$2"
	else
		local -n render_nullable=$2
		render_nullable=null
	fi
}

# Usage: render::json_bg YES_NO_OR_EMPTY RESULT_VAR
# Sets RESULT_VAR to true, false or null (no jemalloc in the process).
render::json_bg() {
	local -n render_bg=$2
	case $1 in
		yes) render_bg=true ;;
		no) render_bg=false ;;
		*) render_bg=null ;;
	esac
}

# Usage: render::json_memory PROCESSES_ASSOC N RESULT_VAR
# Sets RESULT_VAR to what process N's figures say about its memory
# (render::memory) as a JSON object, or null when it publishes none.
render::json_memory() {
	local -n render_json_memory=$3
	local -A render_facts=()
	local render_advice
	render::memory "$1" "$2" render_facts
	if [[ -z ${render_facts[verdict]:-} ]]; then
		render_json_memory=null
		return 0
	fi
	render::json_string "${render_facts[advice]}" render_advice
	render_json_memory="{\"verdict\":\"${render_facts[verdict]}\",\"live_bytes\":${render_facts[live]}"
	render_json_memory+=",\"overhead_bytes\":${render_facts[overhead]},\"growth_bytes\":${render_facts[growth]}"
	render_json_memory+=",\"live_growth_bytes\":${render_facts[live_growth]},\"since_seconds\":${render_facts[since]}"
	render_json_memory+=",\"samples\":${render_facts[samples]},\"interval_seconds\":${render_facts[interval]}"
	render_json_memory+=",\"dirty_bytes\":${render_facts[dirty]:-null},\"retained_bytes\":${render_facts[retained]:-null}"
	render_json_memory+=",\"advice\":$render_advice}"
}

# Usage: render::json ANSWER_ASSOC PROCESSES_ASSOC BUILD_ASSOC BUILD_KEYS_ARRAY
# Prints the answer as one JSON object: ANSWER and PROCESSES (see the top of
# this file), and the build-info pairs BUILD in BUILD_KEYS order.
render::json() {
	local -n render_answer=$1 render_rows=$2 render_build=$3 render_build_keys=$4
	local i name sep json
	local out='{'
	out+="\"active\":${render_answer[active]}"
	render::json_string "${render_answer[reason]}" json
	out+=",\"reason\":$json"
	render::json_optional "${render_answer[hint]}" json
	out+=",\"hint\":$json"
	out+=",\"mode\":\"${render_answer[mode]}\""
	render::json_nullable LD_PRELOAD json
	out+=",\"ld_preload\":$json"
	render::json_string "${render_answer[library]}" json
	out+=",\"library\":$json"
	out+=",\"library_exists\":${render_answer[library_exists]}"
	render::json_optional "${render_answer[library_file]}" json
	out+=",\"library_file\":$json"
	render::json_optional "${render_answer[mapped]}" json
	out+=",\"mapped\":$json"
	render::json_bg "${render_answer[bg]}" json
	out+=",\"background_thread\":$json"
	render::json_optional "${render_answer[version]}" json
	out+=",\"version\":$json"
	render::json_optional "${render_answer[library_version]}" json
	out+=",\"library_version\":$json"
	out+=",\"build\":{"
	sep=''
	for name in "${render_build_keys[@]}"; do
		render::json_string "${render_build[$name]}" json
		out+="$sep\"$name\":$json"
		sep=,
	done
	out+="},\"settings\":{"
	sep=''
	for name in "${RENDER_SETTINGS[@]}"; do
		render::json_nullable "$name" json
		out+="$sep\"$name\":$json"
		sep=,
	done
	render::json_optional "${render_answer[process_type]}" json
	out+=",\"process_type\":$json"
	out+=",\"background_thread_after_fork\":\"${render_answer[after_fork]}\"},\"processes\":["
	sep=''
	for ((i = 0; i < ${render_rows[count]:-0}; i++)); do
		out+="$sep{\"pid\":${render_rows["$i,pid"]}"
		if [[ ${render_rows["$i,error"]} == "no such process" ]]; then
			out+=",\"exists\":false,\"comm\":null"
		else
			render::json_string "${render_rows["$i,comm"]}" json
			out+=",\"exists\":true,\"comm\":$json"
		fi
		if [[ -n ${render_rows["$i,mapped"]} ]]; then out+=',"jemalloc":true'; else out+=',"jemalloc":false'; fi
		render::json_optional "${render_rows["$i,mapped"]}" json
		out+=",\"mapped\":$json"
		render::json_bg "${render_rows["$i,bg"]}" json
		out+=",\"background_thread\":$json"
		out+=",\"rss_kb\":${render_rows["$i,rss"]:-null}"
		out+=",\"allocated_bytes\":${render_rows["$i,allocated"]:-null}"
		out+=",\"resident_bytes\":${render_rows["$i,resident"]:-null}"
		render::json_memory "$2" "$i" json
		out+=",\"memory\":$json"
		render::json_optional "${render_rows["$i,error"]}" json
		out+=",\"error\":$json}"
		sep=,
	done
	out+=']}'
	printf '%s\n' "$out"
}

# Usage: render::shell_word NAME RESULT_VAR
# Sets RESULT_VAR to NAME=VALUE for people: (unset), '' when empty, quoted
# as the shell would need it otherwise.
render::shell_word() {
	local name=$1 quoted plain='^[A-Za-z0-9_.,:/=+@%-]+$' sq="'"
	local -n render_word=$2
	if [[ -z ${!name+x} ]]; then
		render_word="$name=(unset)"
	elif [[ ${!name} =~ $plain ]]; then
		render_word="$name=${!name}"
	elif [[ ${!name} != *[[:cntrl:]]* && ${!name} != *"$sq"* ]]; then
		render_word="$name='${!name}'"
	else
		printf -v quoted '%q' "${!name}"
		render_word="$name=$quoted"
	fi
}

# Usage: render::fact LABEL VALUE
# Prints one fact of the answer about this shell: LABEL, then VALUE made
# printable (render::printable), on one line.
render::fact() {
	local line
	render::printable "$2" line
	printf '  %-11s %s\n' "$1" "$line"
}

# Usage: render::purging_words YES_OR_NO RESULT_VAR
# Sets RESULT_VAR to what the background thread state means for a process, for people.
render::purging_words() {
	local -n render_purging=$2
	if [[ $1 == yes ]]; then
		render_purging="background thread running: freed memory goes back to the kernel while idle"
	else
		render_purging="no background thread: freed memory goes back only while the process allocates"
	fi
}

# Usage: render::after_fork_words STATE TRIMMED RESULT_VAR
# Sets RESULT_VAR to what STATE (on, off or invalid: the rules' reading of
# JEMALLOC_BACKGROUND_THREAD_AFTER_FORK, whose value without its surrounding
# spaces is TRIMMED) means for forked children, for people.
render::after_fork_words() {
	local -n render_fork=$3
	case $1 in
		off)
			render_fork="off: forked children run without the background thread (JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=$2)"
			;;
		absent)
			render_fork="not in this build: forked children run without the background thread (the fork helper comes with the memory tuning of jemalloc 5.1 and later, not JEMALLOC_TUNING=none)"
			;;
		invalid)
			render_fork="on, as by default: JEMALLOC_BACKGROUND_THREAD_AFTER_FORK='${JEMALLOC_BACKGROUND_THREAD_AFTER_FORK-}' is not understood (use true or false); forked children get the background thread back"
			;;
		*)
			render_fork="on: forked children get the background thread back"
			if [[ -z $2 ]]; then render_fork+=" (the default)"; fi
			;;
	esac
}

# Usage: render::shell ANSWER_ASSOC BUILD_ASSOC
# Prints the answer about this shell, for people: ANSWER (see the top of this
# file) and the build-info pairs BUILD.
render::shell() {
	local -n render_answer=$1 render_build=$2
	local name word about='' words='' text
	local version=${render_answer[version]} library_version=${render_answer[library_version]}
	render::printable "jemalloc is ${render_answer[reason]}" text
	printf '%s\n' "$text"
	if [[ -n $version ]]; then
		about="jemalloc $version"
		if [[ -n ${render_build[stack]:-} ]]; then about+=", built for ${render_build[stack]}"; fi
		if [[ -n $library_version && $library_version != "$version" && $library_version != "$version"-* ]]; then
			about+="; the library reports $library_version"
		fi
	elif [[ -n $library_version ]]; then
		about="jemalloc $library_version, as the library reports; no build-info"
	elif [[ ${render_answer[library_exists]} == true ]]; then
		about="no build-info"
	fi
	if [[ ${render_answer[library_exists]} == false ]]; then
		about+="${about:+; }missing"
	fi
	render::fact library "${render_answer[library]}${render_answer[library_target]:+ -> ${render_answer[library_target]}}${about:+ ($about)}"
	render::fact mapped "${render_answer[mapped]:-(none)}"
	if [[ -n ${render_answer[bg]} ]]; then
		render::purging_words "${render_answer[bg]}" text
		render::fact purging "$text"
	fi
	render::after_fork_words "${render_answer[after_fork]}" "${render_answer[after_fork_value]}" text
	render::fact after-fork "$text"
	render::shell_word LD_PRELOAD word
	render::fact LD_PRELOAD "${word#LD_PRELOAD=}"
	for name in "${RENDER_SETTINGS[@]}"; do
		render::shell_word "$name" word
		words+=${words:+ }$word
	done
	render::fact settings "$words"
	# The options compiled into the library; a key of MALLOC_CONF overrides its namesake here.
	if [[ -n ${render_build[default_malloc_conf]+x} ]]; then
		render::fact built-in "${render_build[default_malloc_conf]:-(none: the stock jemalloc defaults)}"
	fi
	if [[ -n ${render_answer[hint]} ]]; then
		render::fact hint "${render_answer[hint]}"
	fi
}

# Usage: render::megabytes KB RESULT_VAR
# Sets RESULT_VAR to KB as "12.3 MB", or "-" when KB is empty.
render::megabytes() {
	local -n render_size=$2
	if [[ -z $1 ]]; then
		render_size=-
	else
		render_size="$(($1 / 1024)).$(($1 % 1024 * 10 / 1024)) MB"
	fi
}

# Usage: render::bytes BYTES RESULT_VAR
# Sets RESULT_VAR to BYTES as render::megabytes shows kB: "12.3 MB", or "-"
# when BYTES is empty.
render::bytes() {
	if [[ -n $1 ]]; then
		render::megabytes "$(($1 / 1024))" "$2"
	else
		render::megabytes '' "$2"
	fi
}

# Usage: render::change WHAT BYTES RESULT_VAR
# Sets RESULT_VAR to "WHAT grew 12.3 MB", or "WHAT shrank 1.0 MB" when BYTES
# is negative.
render::change() {
	local -n render_change=$3
	local size
	if (($2 < 0)); then
		render::bytes "$((-$2))" size
		render_change="$1 shrank $size"
	else
		render::bytes "$2" size
		render_change="$1 grew $size"
	fi
}

# Usage: render::duration SECONDS RESULT_VAR
# Sets RESULT_VAR to SECONDS for people: "45 s", "35 min", "5 h 12 min", "3 d 4 h".
render::duration() {
	local seconds=$1
	local -n render_duration=$2
	if ((seconds < 120)); then
		render_duration="$seconds s"
	elif ((seconds < 7200)); then
		render_duration="$((seconds / 60)) min"
	elif ((seconds < 172800)); then
		render_duration="$((seconds / 3600)) h $((seconds % 3600 / 60)) min"
	else
		render_duration="$((seconds / 86400)) d $((seconds % 86400 / 3600)) h"
	fi
}

# Usage: render::memory PROCESSES_ASSOC N RESULT_ASSOC
# Sets RESULT_ASSOC to what process N's figures (see the top of this file)
# say about its memory, leak or bloat, or empties it when it publishes none:
# live (bytes allocated: the app's data), overhead (resident beyond them:
# pages jemalloc keeps after the app freed them, fragmentation, its
# metadata), growth and live_growth (of resident and of live since the
# baseline, the first sample, one interval after the process's start or
# fork; negative when they shrank), since
# (seconds from the baseline to the latest sample), samples, interval, dirty
# and retained (empty when unknown), advice (one sentence), and verdict:
#   steady     resident grew less than 8 MiB or a tenth of its baseline
#              (noise), and jemalloc's overhead is under 8 MiB or under the
#              live data
#   live data  it grew, and the app's data makes at least half of the growth:
#              a leak or a bigger working set, which only the app can give back
#   overhead   it grew mostly by jemalloc's keeping, or it holds at least as
#              much overhead as live data (at least 8 MiB) without growing
render::memory() {
	local -n render_figures=$1 render_memory=$3
	local i=$2 allocated resident first_resident growth live_growth overhead since threshold verdict advice dirty
	render_memory=()
	allocated=${render_figures["$i,allocated"]}
	resident=${render_figures["$i,resident"]}
	if [[ -z $allocated || -z $resident ]]; then
		return 0
	fi
	first_resident=${render_figures["$i,first_resident"]}
	growth=$((resident - first_resident))
	live_growth=$((allocated - ${render_figures["$i,first_allocated"]}))
	# Never negative, whatever a file says: resident below allocated (which
	# jemalloc's own counts do not give), a realtime clock set back to before
	# the baseline.
	overhead=$((resident > allocated ? resident - allocated : 0))
	since=$((${render_figures["$i,at"]} - ${render_figures["$i,first_at"]}))
	if ((since < 0)); then since=0; fi
	threshold=$((first_resident / 10 > 8388608 ? first_resident / 10 : 8388608))
	if ((growth < threshold && (overhead < 8388608 || overhead < allocated))); then
		verdict=steady
		advice="Nothing to change: resident has not grown much since the first sample, and most of it is live data."
	elif ((growth >= threshold && 2 * live_growth >= growth)); then
		verdict="live data"
		advice="The app holds more memory (a leak or a bigger working set), which no allocator setting gives back: profile the heap (JEMALLOC_PROFILING=true, then jeprof)."
	else
		verdict=overhead
		dirty=${render_figures["$i,dirty"]}
		# Dirty pages are freed memory that a shorter decay returns; an
		# overhead that is mostly not dirty is pages each still holding a few
		# live objects, which no decay setting returns. No full stop after a
		# setting: it would end up in what is pasted.
		if [[ -n $dirty ]] && ((2 * dirty < overhead)); then
			render::bytes "$dirty" dirty
			advice="jemalloc's pages are fragmented: most of them hold a few live objects each (only $dirty dirty pages to return), so a decay setting will not help; long-lived objects allocated among short-lived ones do this, and restarting the worker, or keeping fewer of them, gives it back."
		else
			if [[ -n $dirty ]]; then render::bytes "$dirty" dirty; fi
			advice="jemalloc holds memory the app has freed${dirty:+ (dirty pages $dirty)}: return it sooner with heroku config:set MALLOC_CONF=dirty_decay_ms:250,muzzy_decay_ms:0"
		fi
	fi
	render_memory=([verdict]=$verdict [advice]=$advice [live]=$allocated [overhead]=$overhead [growth]=$growth
		[live_growth]=$live_growth [since]=$since [samples]=${render_figures["$i,samples"]}
		[interval]=${render_figures["$i,interval"]} [dirty]=${render_figures["$i,dirty"]}
		[retained]=${render_figures["$i,retained"]})
}

# Usage: render::memory_line PROCESSES_ASSOC N
# Prints process N's memory line, for people (render::memory), if it has figures.
render::memory_line() {
	local -n render_process=$1
	local i=$2 name resident live overhead since grew live_grew line
	local -A render_facts=()
	render::memory "$1" "$i" render_facts
	if [[ -z ${render_facts[verdict]:-} ]]; then
		return 0
	fi
	render::printable "${render_process["$i,comm"]:--}" name
	render::bytes "${render_process["$i,resident"]}" resident
	render::bytes "${render_facts[live]}" live
	render::bytes "${render_facts[overhead]}" overhead
	render::duration "${render_facts[since]}" since
	render::change resident "${render_facts[growth]}" grew
	render::change "live data" "${render_facts[live_growth]}" live_grew
	line="memory ${render_process["$i,pid"]} ($name): resident $resident = $live live data + $overhead jemalloc overhead;"
	line+=" in the $since since its first sample, $grew and $live_grew; verdict: ${render_facts[verdict]}."
	if [[ ${render_facts[verdict]} != steady ]]; then
		line+=" ${render_facts[advice]}"
	fi
	printf '%s\n' "$line"
}

# Usage: render::table CELLS_ASSOC ROWS COLUMNS
# Prints the cells of CELLS (keys ROW,COLUMN, from 0,0) as ROWS lines of
# COLUMNS aligned columns, the last one not padded.
render::table() {
	local -n render_cells=$1
	local rows=$2 columns=$3 row column cell line
	local -a widths=()
	for ((row = 0; row < rows; row++)); do
		for ((column = 0; column < columns; column++)); do
			cell=${render_cells["$row,$column"]}
			if ((${#cell} > ${widths[column]:-0})); then
				widths[column]=${#cell}
			fi
		done
	done
	for ((row = 0; row < rows; row++)); do
		line=' '
		for ((column = 0; column < columns - 1; column++)); do
			printf -v cell ' %-*s ' "${widths[column]}" "${render_cells["$row,$column"]}"
			line+=$cell
		done
		printf '%s %s\n' "$line" "${render_cells["$row,$((columns - 1))"]}"
	done
}

# Usage: render::processes ANSWER_ASSOC PROCESSES_ASSOC
# Prints the answer about processes, for people: a headline, a table of
# PROCESSES (see the top of this file), one line each, then a memory line for
# each process that publishes figures (render::memory_line), or one that says
# how to get them when processes have jemalloc but none publishes any.
render::processes() {
	local -n render_answer=$1 render_rows=$2
	local i row count=${render_rows[count]:-0} column mapped text with=0 figures=0
	local -a header=(PID JEMALLOC "BG THREAD" RSS LIVE RESIDENT COMMAND MAPPED)
	local -A cells=()
	render::printable "jemalloc is ${render_answer[reason]}" text
	printf '%s\n' "$text"
	if ((count == 0)); then
		return 0
	fi
	for column in "${!header[@]}"; do
		cells["0,$column"]=${header[column]}
	done
	for ((i = 0; i < count; i++)); do
		row=$((i + 1))
		mapped=${render_rows["$i,mapped"]}
		cells["$row,0"]=${render_rows["$i,pid"]}
		cells["$row,1"]=no
		if [[ -n $mapped ]]; then
			cells["$row,1"]=yes
			with=$((with + 1))
		fi
		if [[ -n ${render_rows["$i,allocated"]} ]]; then figures=$((figures + 1)); fi
		cells["$row,2"]=${render_rows["$i,bg"]:--}
		render::megabytes "${render_rows["$i,rss"]}" text
		cells["$row,3"]=$text
		render::bytes "${render_rows["$i,allocated"]}" text
		cells["$row,4"]=$text
		render::bytes "${render_rows["$i,resident"]}" text
		cells["$row,5"]=$text
		render::printable "${render_rows["$i,comm"]:--}" text
		cells["$row,6"]=$text
		if [[ -n ${render_rows["$i,error"]} ]]; then mapped="(${render_rows["$i,error"]})"; fi
		render::printable "${mapped:--}" text
		cells["$row,7"]=$text
	done
	render::table cells "$((count + 1))" "${#header[@]}"
	for ((i = 0; i < count; i++)); do
		render::memory_line "$2" "$i"
	done
	if ((with > 0 && figures == 0)); then
		printf '%s\n' "memory: no figures yet (with JEMALLOC_METRICS=true a process publishes them one interval after it starts, 60 s by default; without it, set it and restart the dyno)"
	fi
}
