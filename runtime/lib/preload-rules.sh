# shellcheck shell=sh
#
# jemalloc buildpack: the preload rules, the one implementation of them.
#
# Installed as vendor/jemalloc/libexec/jemalloc-buildpack/preload-rules.sh (in
# the Cloud Native Buildpack's layer: <layer>/libexec/jemalloc-buildpack/) and
# sourced by everything that applies or explains them: the profile.d shim
# (.profile.d/jemalloc.sh), the CNB exec.d program, the jemalloc.sh wrapper and
# jemalloc-check. Sourcing it only defines functions and
# __jemalloc_rules_slug_prefix.
#
# The shim sources it inside the dyno's own shell, so it follows the shim's
# rules: POSIX sh and builtins only (no external command, no subshell, no
# `local`), every test inside `if`/`case`/`while` (`set -e` safe), every
# expansion defaulted (`set -u` safe), no `set`/IFS change and no unquoted
# expansion. Every function returns 0 and gives its results in the variables
# its comment names; every name is __jemalloc_rules_*, and
# __jemalloc_rules_forget unsets them all, functions included.

# Where a classic slug has the build at run time (bin/compile installs it
# there). jemalloc.sh and jemalloc-check take it from here; the shim spells it
# once more, as it must find this file before it can read it.
__jemalloc_rules_slug_prefix=/app/vendor/jemalloc

# Usage: __jemalloc_rules_read_enabled VALUE
# Reads VALUE as JEMALLOC_ENABLED: surrounding spaces are ignored (a config var
# pasted with a trailing blank must not silently turn the feature off), case
# too. Sets __jemalloc_rules_value to the trimmed value and
# __jemalloc_rules_enabled to on (true/1/yes/on), off (''/false/0/no/off) or
# invalid (anything else: off too, but worth a warning).
__jemalloc_rules_read_enabled() {
	__jemalloc_rules_value=${1:-}
	__jemalloc_rules_value=${__jemalloc_rules_value#"${__jemalloc_rules_value%%[! ]*}"}
	__jemalloc_rules_value=${__jemalloc_rules_value%"${__jemalloc_rules_value##*[! ]}"}
	case $__jemalloc_rules_value in
		[Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn]) __jemalloc_rules_enabled=on ;;
		'' | [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff]) __jemalloc_rules_enabled=off ;;
		*) __jemalloc_rules_enabled=invalid ;;
	esac
}

# Usage: __jemalloc_rules_read_fork_helper VALUE
# Reads VALUE as JEMALLOC_BACKGROUND_THREAD_AFTER_FORK with the parser of
# JEMALLOC_ENABLED (__jemalloc_rules_read_enabled: same values, spaces and
# case ignored), but on by default: sets __jemalloc_rules_fork_helper to on
# (unset, empty, true/1/yes/on), off (false/0/no/off) or invalid (anything
# else: on, as by default, but worth a warning), and __jemalloc_rules_value.
# src/background_thread_after_fork.c reads the variable the same way.
__jemalloc_rules_read_fork_helper() {
	__jemalloc_rules_read_enabled "${1:-}"
	__jemalloc_rules_fork_helper=$__jemalloc_rules_enabled
	if [ -z "$__jemalloc_rules_value" ]; then
		__jemalloc_rules_fork_helper=on
	fi
}

# Usage: __jemalloc_rules_read_metrics VALUE
# Reads VALUE as JEMALLOC_METRICS (spaces and case ignored): sets
# __jemalloc_rules_metrics to off (unset, empty, false/0/no/off), the interval
# in seconds (true/yes/on: 60; a whole number from 1 to 3600: that number,
# leading zeros allowed) or invalid (anything else: off too, but worth a
# warning), and __jemalloc_rules_value. src/metrics.c reads the variable the
# same way.
__jemalloc_rules_read_metrics() {
	__jemalloc_rules_read_enabled "${1:-}"
	__jemalloc_rules_metrics=invalid
	case $__jemalloc_rules_value in
		'' | [Ff][Aa][Ll][Ss][Ee] | [Nn][Oo] | [Oo][Ff][Ff]) __jemalloc_rules_metrics=off ;;
		[Tt][Rr][Uu][Ee] | [Yy][Ee][Ss] | [Oo][Nn]) __jemalloc_rules_metrics=60 ;;
		*[!0-9]*) ;;
		*)
			# Digits only: drop leading zeros, then at most four digits, 1 to 3600.
			__jemalloc_rules_item=${__jemalloc_rules_value#"${__jemalloc_rules_value%%[!0]*}"}
			case $__jemalloc_rules_item in
				'') __jemalloc_rules_metrics=off ;;
				? | ?? | ??? | ????)
					if [ "$__jemalloc_rules_item" -le 3600 ]; then
						__jemalloc_rules_metrics=$__jemalloc_rules_item
					fi
					;;
				*) ;;
			esac
			;;
	esac
}

# Usage: __jemalloc_rules_read_type DYNO
# Sets __jemalloc_rules_type to the process type in DYNO: "web.1" -> "web",
# "run.1234" -> "run"; on Heroku Fir DYNO is "web-12a34b56d-e78f9" (the type,
# then two generated parts) -> "web". Empty when DYNO is.
__jemalloc_rules_read_type() {
	__jemalloc_rules_type=${1:-}
	case $__jemalloc_rules_type in
		*.*) __jemalloc_rules_type=${__jemalloc_rules_type%%.*} ;;
		?*-?*-?*)
			__jemalloc_rules_type=${__jemalloc_rules_type%-*}
			__jemalloc_rules_type=${__jemalloc_rules_type%-*}
			;;
		*) ;; # no DYNO, or a name without a generated part: the type as it is
	esac
}

# Usage: __jemalloc_rules_match_types LIST TYPE
# Walks LIST as JEMALLOC_PROCESS_TYPES (tokens separated by commas and/or
# spaces) looking for TYPE. Sets __jemalloc_rules_types to the tokens joined by
# commas (empty when LIST holds none: "every process type") and
# __jemalloc_rules_listed to yes when TYPE is one of them, no otherwise. An
# empty TYPE matches no token.
__jemalloc_rules_match_types() {
	__jemalloc_rules_types=
	__jemalloc_rules_listed=no
	__jemalloc_rules_rest=${1:-}
	while [ -n "$__jemalloc_rules_rest" ]; do
		# Drop leading separators, then cut the next token off the front.
		__jemalloc_rules_rest=${__jemalloc_rules_rest#"${__jemalloc_rules_rest%%[!, ]*}"}
		__jemalloc_rules_item=${__jemalloc_rules_rest%%[, ]*}
		__jemalloc_rules_rest=${__jemalloc_rules_rest#"$__jemalloc_rules_item"}
		if [ -n "$__jemalloc_rules_item" ]; then
			__jemalloc_rules_types=${__jemalloc_rules_types:+$__jemalloc_rules_types,}$__jemalloc_rules_item
			if [ "$__jemalloc_rules_item" = "${2:-}" ]; then
				__jemalloc_rules_listed=yes
			fi
		fi
	done
}

# Usage: __jemalloc_rules_decide ENABLED PROCESS_TYPES DYNO
# The decision, from the values of JEMALLOC_ENABLED, JEMALLOC_PROCESS_TYPES and
# DYNO: sets __jemalloc_rules_on to yes when jemalloc is to be preloaded, no
# otherwise, and every result of the three functions above. Whether the
# library exists is the caller's to check.
__jemalloc_rules_decide() {
	__jemalloc_rules_read_enabled "${1:-}"
	__jemalloc_rules_read_type "${3:-}"
	__jemalloc_rules_match_types "${2:-}" "$__jemalloc_rules_type"
	__jemalloc_rules_on=no
	if [ "$__jemalloc_rules_enabled" = on ]; then
		if [ -z "$__jemalloc_rules_types" ] || [ "$__jemalloc_rules_listed" = yes ]; then
			__jemalloc_rules_on=yes
		fi
	fi
}

# Usage: __jemalloc_rules_build_preload LIBRARY PRELOAD [LIBDIR...]
# Sets __jemalloc_rules_preload to PRELOAD (an LD_PRELOAD value) rebuilt with
# LIBRARY first and every other entry after it, in order. ld.so accepts ':'
# and ' ' as separators; the result has ':' only, no empty entry, and no
# earlier copy of a jemalloc library (libjemalloc.so, .so.2, ...) of any
# LIBDIR, so that applying the rules twice changes nothing.
__jemalloc_rules_build_preload() {
	__jemalloc_rules_preload=${1:-}
	__jemalloc_rules_rest=${2:-}
	if [ "$#" -ge 2 ]; then
		shift 2
	else
		shift "$#"
	fi
	while [ -n "$__jemalloc_rules_rest" ]; do
		__jemalloc_rules_item=${__jemalloc_rules_rest%%[: ]*}
		__jemalloc_rules_rest=${__jemalloc_rules_rest#"$__jemalloc_rules_item"}
		__jemalloc_rules_rest=${__jemalloc_rules_rest#[: ]}
		__jemalloc_rules_keep=$__jemalloc_rules_item
		for __jemalloc_rules_dir in "$@"; do
			case $__jemalloc_rules_item in
				"$__jemalloc_rules_dir"/libjemalloc*) __jemalloc_rules_keep= ;;
				*) ;;
			esac
		done
		if [ -n "$__jemalloc_rules_keep" ]; then
			__jemalloc_rules_preload=$__jemalloc_rules_preload:$__jemalloc_rules_item
		fi
	done
}

# Usage: __jemalloc_rules_find_library PRELOAD LIBDIR
# Sets __jemalloc_rules_has to yes when an entry of PRELOAD (separated by ':'
# or ' ', as ld.so reads it) is a jemalloc library of LIBDIR, under any of its
# names; no otherwise.
__jemalloc_rules_find_library() {
	__jemalloc_rules_has=no
	__jemalloc_rules_rest=${1:-}
	while [ -n "$__jemalloc_rules_rest" ]; do
		__jemalloc_rules_item=${__jemalloc_rules_rest%%[: ]*}
		__jemalloc_rules_rest=${__jemalloc_rules_rest#"$__jemalloc_rules_item"}
		__jemalloc_rules_rest=${__jemalloc_rules_rest#[: ]}
		case $__jemalloc_rules_item in
			"${2:-}"/libjemalloc*) __jemalloc_rules_has=yes ;;
			*) ;;
		esac
	done
}

# Usage: __jemalloc_rules_apply PREFIX
# Applies the rules to this shell's environment, for the build installed at
# PREFIX (PREFIX/lib/libjemalloc.so): when jemalloc is on, LD_PRELOAD rebuilt
# with it first and MALLOC_ARENA_MAX=2 when unset, both exported. A value of
# JEMALLOC_ENABLED it does not understand, and a library that is not there,
# leave the environment alone with one line on stderr (a failing stderr is
# ignored).
__jemalloc_rules_apply() {
	__jemalloc_rules_decide "${JEMALLOC_ENABLED:-}" "${JEMALLOC_PROCESS_TYPES:-}" "${DYNO:-}"
	if [ "$__jemalloc_rules_enabled" = invalid ]; then
		# A typo must not enable an allocator swap by accident, but it must not
		# go unnoticed either: off, with one line in the logs.
		printf " !     jemalloc: JEMALLOC_ENABLED='%s' is not understood (use true or false); jemalloc is not preloaded\n" \
			"${JEMALLOC_ENABLED:-}" >&2 || :
	fi
	if [ "$__jemalloc_rules_on" = yes ]; then
		if [ ! -e "${1:-}/lib/libjemalloc.so" ]; then
			# A preload path that does not exist makes ld.so print an error on
			# every exec, so leave LD_PRELOAD alone and say why, once.
			printf ' !     jemalloc: %s is missing, so jemalloc is not preloaded; the jemalloc buildpack must run before the build that uses it (heroku buildpacks:add --index 1 <jemalloc buildpack>), then redeploy\n' \
				"${1:-}/lib/libjemalloc.so" >&2 || :
		else
			__jemalloc_rules_build_preload "${1:-}/lib/libjemalloc.so" "${LD_PRELOAD:-}" "${1:-}/lib"
			LD_PRELOAD=$__jemalloc_rules_preload
			export LD_PRELOAD
			__jemalloc_rules_arena_max
			__jemalloc_rules_read_fork_helper "${JEMALLOC_BACKGROUND_THREAD_AFTER_FORK:-}"
			if [ "$__jemalloc_rules_fork_helper" = invalid ]; then
				printf " !     jemalloc: JEMALLOC_BACKGROUND_THREAD_AFTER_FORK='%s' is not understood (use true or false); forked children get the background thread back, as by default\n" \
					"${JEMALLOC_BACKGROUND_THREAD_AFTER_FORK:-}" >&2 || :
			fi
			__jemalloc_rules_read_metrics "${JEMALLOC_METRICS:-}"
			if [ "$__jemalloc_rules_metrics" = invalid ]; then
				printf " !     jemalloc: JEMALLOC_METRICS='%s' is not understood (use true, false or a number of seconds from 1 to 3600); no allocator figures are logged\n" \
					"${JEMALLOC_METRICS:-}" >&2 || :
			fi
		fi
	fi
}

# Usage: __jemalloc_rules_arena_max
# Sets and exports MALLOC_ARENA_MAX=2 unless the app set it, even to ''.
# MALLOC_ARENA_MAX is glibc malloc's knob (jemalloc itself ignores it; it reads
# MALLOC_CONF): it caps memory growth in whatever still runs on glibc malloc,
# e.g. static or setuid programs that skip LD_PRELOAD.
__jemalloc_rules_arena_max() {
	if [ -z "${MALLOC_ARENA_MAX+x}" ]; then
		MALLOC_ARENA_MAX=2
		export MALLOC_ARENA_MAX
	fi
}

# Usage: __jemalloc_rules_forget
# Unsets every variable and function of this file, this one included, so a
# shell that sourced it is left as it was.
__jemalloc_rules_forget() {
	unset -v __jemalloc_rules_slug_prefix __jemalloc_rules_value __jemalloc_rules_enabled __jemalloc_rules_type \
		__jemalloc_rules_types __jemalloc_rules_listed __jemalloc_rules_rest \
		__jemalloc_rules_item __jemalloc_rules_on __jemalloc_rules_preload \
		__jemalloc_rules_keep __jemalloc_rules_dir __jemalloc_rules_has __jemalloc_rules_fork_helper \
		__jemalloc_rules_metrics
	unset -f __jemalloc_rules_read_enabled __jemalloc_rules_read_fork_helper __jemalloc_rules_read_metrics \
		__jemalloc_rules_read_type \
		__jemalloc_rules_match_types __jemalloc_rules_decide \
		__jemalloc_rules_build_preload __jemalloc_rules_find_library \
		__jemalloc_rules_apply __jemalloc_rules_arena_max __jemalloc_rules_forget
}
