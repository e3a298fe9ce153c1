# shellcheck shell=sh
#
# jemalloc buildpack: runtime shim, installed as /app/.profile.d/jemalloc.sh.
#
# The dyno's shell sources every /app/.profile.d/*.sh before it runs the
# Procfile command, so this file runs inside *that* shell, possibly with
# `set -eu` active, possibly twice, under bash or dash. A mistake here would
# break every process of the app, hence the rules this file follows:
#   - POSIX sh only, and builtins only: no external command, no subshell
#     (it must cost no more than a few milliseconds per dyno start);
#   - every test sits in `if`/`case`/`while`, so nothing can trip `set -e`,
#     and every expansion has a default, so nothing can trip `set -u`;
#   - no `set`/`shopt` and no IFS: lists are split with parameter expansion,
#     and no expansion is left unquoted, so IFS and globbing never matter;
#   - idempotent: sourcing it again gives the same environment;
#   - its helpers are named __jemalloc_bp_*, those of the rules file it
#     sources __jemalloc_rules_*; all of them, variables and functions, are
#     unset at the end;
#   - warnings are one line on stderr, and a failing stderr is ignored;
#   - a missing install never stops the dyno: one warning, nothing changed.
#
# The rules themselves (what the settings below mean, how LD_PRELOAD is
# rebuilt) live in one file shared with the CNB exec.d program, jemalloc.sh
# and jemalloc-check: /app/vendor/jemalloc/libexec/jemalloc-buildpack/
# preload-rules.sh (runtime/lib/preload-rules.sh in the buildpack), which
# follows the rules above. This file only finds it and applies it.
#
# Settings (Heroku config vars):
#   JEMALLOC_ENABLED        true/1/yes/on (any case) preloads jemalloc;
#                           unset/empty/false/0/no/off keeps it off.
#   JEMALLOC_PROCESS_TYPES  optional list such as "worker,clock" (commas
#                           and/or spaces): preload only for these process
#                           types, taken from $DYNO ("worker.2" -> "worker").
#                           Unset or empty: every process type.
# When on, LD_PRELOAD gets /app/vendor/jemalloc/lib/libjemalloc.so first (the
# app's own entries after it) and MALLOC_ARENA_MAX=2 when the app has not set it.

# Give every helper a value first, so that a stray variable of the same name
# inherited from the environment cannot steer the logic below.
__jemalloc_bp_dir=/app/vendor/jemalloc
__jemalloc_bp_rules=$__jemalloc_bp_dir/libexec/jemalloc-buildpack/preload-rules.sh

# The jemalloc.sh wrapper ("jemalloc.sh COMMAND") preloads jemalloc for one
# command, so it must be on PATH whatever JEMALLOC_ENABLED says. Prepend it
# only when it is not already an element, so a second sourcing is a no-op.
if [ -d "$__jemalloc_bp_dir/bin" ]; then
	case ":${PATH:-}:" in
		*":$__jemalloc_bp_dir/bin:"*) ;;
		# An unset or empty PATH means "the shell's default search path";
		# replacing it by our directory alone would hide every system command.
		::)
			PATH=$__jemalloc_bp_dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
			export PATH
			;;
		*)
			PATH=$__jemalloc_bp_dir/bin:$PATH
			export PATH
			;;
	esac
fi

# `.` of a file that is not there is fatal to a non-interactive POSIX shell,
# so look first. Without the rules nothing can be decided: jemalloc stays off,
# and an app that asks for it (any JEMALLOC_ENABLED) hears why, once. A dyno
# with nothing set stays silent, as with a missing library.
if [ -r "$__jemalloc_bp_rules" ]; then
	# shellcheck source=runtime/lib/preload-rules.sh
	. "$__jemalloc_bp_rules"
	__jemalloc_rules_apply "$__jemalloc_bp_dir"
	__jemalloc_rules_forget
elif [ -n "${JEMALLOC_ENABLED:-}" ]; then
	printf ' !     jemalloc: %s is missing, so jemalloc is not preloaded; the jemalloc buildpack must run before the build that uses it (heroku buildpacks:add --index 1 <jemalloc buildpack>), then redeploy\n' \
		"$__jemalloc_bp_rules" >&2 || :
fi

unset __jemalloc_bp_dir __jemalloc_bp_rules
