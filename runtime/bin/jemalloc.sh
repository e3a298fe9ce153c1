#!/usr/bin/env bash
#
# jemalloc.sh COMMAND [ARGS...]
#
# Runs one command with jemalloc preloaded, whatever JEMALLOC_ENABLED and
# JEMALLOC_PROCESS_TYPES say (e.g. `jemalloc.sh bundle exec sidekiq` in a
# Procfile, or to try jemalloc in a one-off dyno).
#
# Unlike the jemalloc.sh that ships with jemalloc itself, this one ADDS the
# library in front of the existing LD_PRELOAD instead of replacing it, so
# other preloaded libraries keep working.
set -euo pipefail

# Helper variables are named _jm_* so that they cannot clobber a variable the
# app exported: the command we exec inherits the whole environment.

usage() {
	printf 'Usage: %s COMMAND [ARGS...]\n' "${0##*/}"
	printf 'Runs COMMAND with jemalloc preloaded (added first to LD_PRELOAD).\n'
}

case "${1-}" in
	-h | --help)
		usage
		exit 0
		;;
	--) shift ;;
	*) ;; # the command itself
esac
if [[ "$#" -eq 0 ]]; then
	usage >&2
	exit 2
fi

# Find the library next to this script's real location (bin/../lib), so the
# wrapper works through symlinks and outside /app (e.g. in tests). readlink -f
# is coreutils; if it is unavailable fall back to the path we were run by.
_jm_self=$(readlink -f -- "${BASH_SOURCE[0]}" 2>/dev/null) || _jm_self=
if [[ -z "$_jm_self" ]]; then
	_jm_self=${BASH_SOURCE[0]}
fi
case "$_jm_self" in
	*/*) _jm_bindir=${_jm_self%/*} ;;
	*) _jm_bindir=. ;;
esac
_jm_libdir=$(CDPATH='' cd -P -- "$_jm_bindir/../lib" 2>/dev/null && pwd -P) || _jm_libdir=$_jm_bindir/../lib
# In the Cloud Native Buildpack's layer the build is beside bin/, in tree/.
if [[ ! -e "$_jm_libdir/libjemalloc.so" ]] && [[ -d "$_jm_bindir/../exec.d" ]]; then
	_jm_libdir=$(CDPATH='' cd -P -- "$_jm_bindir/../tree/lib" 2>/dev/null && pwd -P) || _jm_libdir=$_jm_bindir/../tree/lib
fi
_jm_lib=$_jm_libdir/libjemalloc.so

# A missing library is a broken build: refuse to run the command without the
# allocator it was explicitly asked to run with, rather than hide the problem.
if [[ ! -e "$_jm_lib" ]]; then
	printf " !     jemalloc.sh: %s not found; the jemalloc build is missing (the jemalloc buildpack must run before the app's build), not running '%s'\n" \
		"$_jm_lib" "$1" >&2
	exit 1
fi

# The preload rules, shared with the profile.d shim: bin/../libexec/, in the
# classic slug and in the Cloud Native Buildpack's layer alike.
_jm_rules=$_jm_bindir/../libexec/jemalloc-buildpack/preload-rules.sh
if [[ ! -r "$_jm_rules" ]]; then
	printf " !     jemalloc.sh: %s not found; the jemalloc buildpack's install is incomplete (rebuild the app), not running '%s'\n" \
		"$_jm_rules" "$1" >&2
	exit 1
fi
# shellcheck source=runtime/lib/preload-rules.sh
. "$_jm_rules"

# Our library first, then every other entry in order, without earlier copies
# of our library (here or at /app, where the profile.d shim puts it), so it
# is never listed twice.
__jemalloc_rules_build_preload "$_jm_lib" "${LD_PRELOAD:-}" "$_jm_libdir" "$__jemalloc_rules_slug_prefix/lib"
export LD_PRELOAD=$__jemalloc_rules_preload

# Same default as the profile.d shim: only when the app has not set it.
__jemalloc_rules_arena_max
__jemalloc_rules_forget

exec "$@"
