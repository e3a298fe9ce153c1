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
# The processes are records (fields separated by \x1f): PID, comm, mapped,
# RSS in kB, error, background thread (as proc::inspect_process has them).

# The settings shown, in this order: their values come from the environment.
RENDER_SETTINGS=(JEMALLOC_ENABLED JEMALLOC_PROCESS_TYPES DYNO MALLOC_CONF MALLOC_ARENA_MAX)

# Usage: render::valid_utf8 VALUE RESULT_VAR
# Sets RESULT_VAR to VALUE with every byte that is not part of a well-formed
# UTF-8 sequence (RFC 3629) replaced by the JSON escape \ufffd, so that JSON
# output stays valid UTF-8 whatever bytes a variable or a process name holds.
# ASCII-only values are returned at once.
render::valid_utf8() {
	local LC_ALL=C value=$1 out='' char byte next lo hi count i=0 j ok
	local -n render_utf8=$2
	if [[ $value != *[$'\x80'-$'\xff']* ]]; then
		render_utf8=$value
		return 0
	fi
	while ((i < ${#value})); do
		char=${value:i:1}
		if [[ $char != [$'\x80'-$'\xff'] ]]; then
			out+=$char
			i=$((i + 1))
			continue
		fi
		printf -v byte '%d' "'$char"
		((byte >= 0)) || byte=$((byte + 256))
		# The allowed range of the second byte, and how many bytes follow.
		lo=128 hi=191 count=0
		if ((byte >= 0xc2 && byte <= 0xdf)); then
			count=1
		elif ((byte == 0xe0)); then
			count=2 lo=160
		elif ((byte >= 0xe1 && byte <= 0xef)); then
			count=2
			if ((byte == 0xed)); then hi=159; fi
		elif ((byte == 0xf0)); then
			count=3 lo=144
		elif ((byte >= 0xf1 && byte <= 0xf3)); then
			count=3
		elif ((byte == 0xf4)); then
			count=3 hi=143
		fi
		ok=$((count > 0))
		for ((j = 1; ok && j <= count; j++)); do
			next=${value:i+j:1}
			if [[ -z $next || $next != [$'\x80'-$'\xff'] ]]; then
				ok=0
				break
			fi
			printf -v next '%d' "'$next"
			((next >= 0)) || next=$((next + 256))
			if ((j == 1 && (next < lo || next > hi))) || ((j > 1 && next > 191)); then ok=0; fi
		done
		if ((ok)); then
			out+=${value:i:count+1}
			i=$((i + count + 1))
		else
			out+='\ufffd'
			i=$((i + 1))
		fi
	done
	render_utf8=$out
}

# Usage: render::json_string VALUE RESULT_VAR
# Sets RESULT_VAR to VALUE as a JSON string: quoted, with backslash, double
# quote and control characters escaped. Bytes are taken one by one (LC_ALL=C):
# UTF-8 text passes through unchanged, and bytes that are not UTF-8 become
# \ufffd (render::valid_utf8), so the output is always valid JSON in UTF-8.
render::json_string() {
	local LC_ALL=C value=$1 escaped='' char code i utf8
	local bs=\\ dq='"'
	local -n render_json=$2
	value=${value//"$bs"/"$bs$bs"}
	value=${value//"$dq"/"$bs$dq"}
	if [[ $value == *[[:cntrl:]]* ]]; then
		for ((i = 0; i < ${#value}; i++)); do
			char=${value:i:1}
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
		value=$escaped
	fi
	render::valid_utf8 "$value" utf8
	render_json="\"$utf8\""
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

# Usage: render::json_bg YES_NO_OR_EMPTY
# Prints true, false or null (no jemalloc in the process).
render::json_bg() {
	case $1 in
		yes) printf true ;;
		no) printf false ;;
		*) printf null ;;
	esac
}

# Usage: render::json ANSWER_ASSOC ROWS_ARRAY BUILD_ASSOC BUILD_KEYS_ARRAY
# Prints the answer as one JSON object: ANSWER (see the top of this file), the
# process records ROWS, and the build-info pairs BUILD in BUILD_KEYS order.
render::json() {
	local -n render_answer=$1 render_rows=$2 render_build=$3 render_build_keys=$4
	local row fpid fcomm fmapped frss ferror fbg name sep json
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
	out+=",\"background_thread\":$(render::json_bg "${render_answer[bg]}")"
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
	out+=",\"process_type\":$json},\"processes\":["
	sep=''
	for row in "${render_rows[@]}"; do
		IFS=$'\x1f' read -r fpid fcomm fmapped frss ferror fbg <<<"$row"
		out+="$sep{\"pid\":$fpid"
		if [[ $ferror == "no such process" ]]; then
			out+=",\"exists\":false,\"comm\":null"
		else
			render::json_string "$fcomm" json
			out+=",\"exists\":true,\"comm\":$json"
		fi
		if [[ -n $fmapped ]]; then out+=',"jemalloc":true'; else out+=',"jemalloc":false'; fi
		render::json_optional "$fmapped" json
		out+=",\"mapped\":$json"
		out+=",\"background_thread\":$(render::json_bg "$fbg")"
		out+=",\"rss_kb\":${frss:-null}"
		render::json_optional "$ferror" json
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

# Usage: render::purging_words YES_OR_NO
# Prints what the background thread state means for a process, for people.
render::purging_words() {
	if [[ $1 == yes ]]; then
		printf '%s' "background thread running: freed memory goes back to the kernel while idle"
	else
		printf '%s' "no background thread: freed memory goes back only while the process allocates"
	fi
}

# Usage: render::shell ANSWER_ASSOC BUILD_ASSOC
# Prints the answer about this shell, for people: ANSWER (see the top of this
# file) and the build-info pairs BUILD.
render::shell() {
	local -n render_answer=$1 render_build=$2
	local name word about='' words=''
	local version=${render_answer[version]} library_version=${render_answer[library_version]}
	printf 'jemalloc is %s\n' "${render_answer[reason]}"
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
	printf '  %-11s %s%s%s\n' library "${render_answer[library]}" \
		"${render_answer[library_target]:+ -> ${render_answer[library_target]}}" "${about:+ ($about)}"
	printf '  %-11s %s\n' mapped "${render_answer[mapped]:-(none)}"
	if [[ -n ${render_answer[bg]} ]]; then
		printf '  %-11s %s\n' purging "$(render::purging_words "${render_answer[bg]}")"
	fi
	render::shell_word LD_PRELOAD word
	printf '  %-11s %s\n' LD_PRELOAD "${word#LD_PRELOAD=}"
	for name in "${RENDER_SETTINGS[@]}"; do
		render::shell_word "$name" word
		words+=${words:+ }$word
	done
	printf '  %-11s %s\n' settings "$words"
	# The options compiled into the library; a key of MALLOC_CONF overrides its namesake here.
	if [[ -n ${render_build[default_malloc_conf]+x} ]]; then
		printf '  %-11s %s\n' built-in "${render_build[default_malloc_conf]:-(none: the stock jemalloc defaults)}"
	fi
	if [[ -n ${render_answer[hint]} ]]; then
		printf '  %-11s %s\n' hint "${render_answer[hint]}"
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

# Usage: render::table ROWS_ARRAY
# Prints the rows of ROWS (fields separated by tabs) as aligned columns.
render::table() {
	local -n render_table=$1
	local row field i
	local -a widths=() fields=()
	for row in "${render_table[@]}"; do
		IFS=$'\t' read -r -a fields <<<"$row"
		for i in "${!fields[@]}"; do
			field=${fields[i]}
			if ((${#field} > ${widths[i]:-0})); then
				widths[i]=${#field}
			fi
		done
	done
	for row in "${render_table[@]}"; do
		IFS=$'\t' read -r -a fields <<<"$row"
		printf ' '
		for i in "${!fields[@]}"; do
			if ((i == ${#fields[@]} - 1)); then
				printf ' %s' "${fields[i]}"
			else
				printf ' %-*s ' "${widths[i]}" "${fields[i]}"
			fi
		done
		printf '\n'
	done
}

# Usage: render::processes ANSWER_ASSOC ROWS_ARRAY
# Prints the answer about processes, for people: a headline and a table of
# the process records ROWS.
render::processes() {
	local -n render_answer=$1 render_rows=$2
	local row fpid fcomm fmapped frss ferror fbg size has
	local -a lines=()
	printf 'jemalloc is %s\n' "${render_answer[reason]}"
	if ((${#render_rows[@]} > 0)); then
		lines=("PID"$'\t'"JEMALLOC"$'\t'"BG THREAD"$'\t'"RSS"$'\t'"COMMAND"$'\t'"MAPPED")
		for row in "${render_rows[@]}"; do
			IFS=$'\x1f' read -r fpid fcomm fmapped frss ferror fbg <<<"$row"
			render::megabytes "$frss" size
			fcomm=${fcomm//[[:cntrl:]]/?}
			fmapped=${fmapped//[[:cntrl:]]/?}
			has=no
			if [[ -n $fmapped ]]; then has=yes; fi
			if [[ -n $ferror ]]; then fmapped="($ferror)"; fi
			lines+=("$fpid"$'\t'"$has"$'\t'"${fbg:--}"$'\t'"$size"$'\t'"${fcomm:--}"$'\t'"${fmapped:--}")
		done
		render::table lines
	fi
}
