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
#   - helpers are all named __jemalloc_bp_* and are unset at the end;
#   - warnings are one line on stderr, and a failing stderr is ignored.
#
# Settings (Heroku config vars):
#   JEMALLOC_ENABLED        true/1/yes/on (any case) preloads jemalloc;
#                           unset/empty/false/0/no/off keeps it off.
#   JEMALLOC_PROCESS_TYPES  optional list such as "worker,clock" (commas
#                           and/or spaces): preload only for these process
#                           types, taken from $DYNO ("worker.2" -> "worker").
#                           Unset or empty: every process type.

# Give every helper a value first, so that a stray variable of the same name
# inherited from the environment cannot steer the logic below. The one
# exception is __jemalloc_bp_cnb_dir, which the Cloud Native Buildpack's exec.d
# program (runtime/exec.d/jemalloc) sets before it sources this file, to apply
# the same rules in a CNB container: the build's tree in its layer, in place of
# /app/vendor/jemalloc. A dyno has no such variable.
__jemalloc_bp_dir=${__jemalloc_bp_cnb_dir:-/app/vendor/jemalloc}
__jemalloc_bp_lib=$__jemalloc_bp_dir/lib/libjemalloc.so
__jemalloc_bp_on=
__jemalloc_bp_val=
__jemalloc_bp_type=
__jemalloc_bp_rest=
__jemalloc_bp_item=
__jemalloc_bp_listed=
__jemalloc_bp_match=
__jemalloc_bp_new=

# The jemalloc.sh wrapper ("jemalloc.sh COMMAND") preloads jemalloc for one
# command, so it must be on PATH whatever JEMALLOC_ENABLED says. Prepend it
# only when it is not already an element, so a second sourcing is a no-op.
if [ -d "$__jemalloc_bp_dir/bin" ]; then
  case ":${PATH:-}:" in
    *":$__jemalloc_bp_dir/bin:"*) ;;
    # An unset or empty PATH means "the shell's default search path";
    # replacing it by our directory alone would hide every system command.
    ::) PATH=$__jemalloc_bp_dir/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
        export PATH ;;
    *) PATH=$__jemalloc_bp_dir/bin:$PATH
       export PATH ;;
  esac
fi

# JEMALLOC_ENABLED, with surrounding spaces tolerated (a config var pasted
# with a trailing blank should not silently turn the feature off).
__jemalloc_bp_val=${JEMALLOC_ENABLED:-}
__jemalloc_bp_val=${__jemalloc_bp_val#"${__jemalloc_bp_val%%[! ]*}"}
__jemalloc_bp_val=${__jemalloc_bp_val%"${__jemalloc_bp_val##*[! ]}"}
case $__jemalloc_bp_val in
  [Tt][Rr][Uu][Ee] | 1 | [Yy][Ee][Ss] | [Oo][Nn])
    __jemalloc_bp_on=1 ;;
  '' | [Ff][Aa][Ll][Ss][Ee] | 0 | [Nn][Oo] | [Oo][Ff][Ff])
    ;;
  *)
    # A typo must not enable an allocator swap by accident, but it must not
    # go unnoticed either: off, with one line in the logs.
    printf " !     jemalloc: JEMALLOC_ENABLED='%s' is not understood (use true or false); jemalloc is not preloaded\n" \
      "${JEMALLOC_ENABLED:-}" >&2 || :
    ;;
esac

# JEMALLOC_PROCESS_TYPES: walk the list token by token (separators are
# commas and spaces) and look for this dyno's process type. A list made
# only of separators counts as empty, i.e. as "every process type".
if [ -n "$__jemalloc_bp_on" ] && [ -n "${JEMALLOC_PROCESS_TYPES:-}" ]; then
  # "web.1" -> "web", "run.1234" -> "run"; on Heroku Fir DYNO is
  # "web-12a34b56d-e78f9" (the type, then two generated parts) -> "web".
  # Without DYNO the type is empty, which matches no token: a restricted
  # preload stays off.
  __jemalloc_bp_type=${DYNO:-}
  case $__jemalloc_bp_type in
    *.*) __jemalloc_bp_type=${__jemalloc_bp_type%%.*} ;;
    ?*-?*-?*) __jemalloc_bp_type=${__jemalloc_bp_type%-*}
              __jemalloc_bp_type=${__jemalloc_bp_type%-*} ;;
  esac
  __jemalloc_bp_rest=$JEMALLOC_PROCESS_TYPES
  while [ -n "$__jemalloc_bp_rest" ]; do
    # Drop leading separators, then cut the next token off the front.
    __jemalloc_bp_rest=${__jemalloc_bp_rest#"${__jemalloc_bp_rest%%[!, ]*}"}
    __jemalloc_bp_item=${__jemalloc_bp_rest%%[, ]*}
    __jemalloc_bp_rest=${__jemalloc_bp_rest#"$__jemalloc_bp_item"}
    if [ -n "$__jemalloc_bp_item" ]; then
      __jemalloc_bp_listed=1
      if [ "$__jemalloc_bp_item" = "$__jemalloc_bp_type" ]; then
        __jemalloc_bp_match=1
      fi
    fi
  done
  if [ -n "$__jemalloc_bp_listed" ] && [ -z "$__jemalloc_bp_match" ]; then
    __jemalloc_bp_on=
  fi
fi

if [ -n "$__jemalloc_bp_on" ]; then
  if [ ! -e "$__jemalloc_bp_lib" ]; then
    # A preload path that does not exist makes ld.so print an error on
    # every exec, so leave LD_PRELOAD alone and say why, once.
    printf ' !     jemalloc: %s is missing, so jemalloc is not preloaded; the jemalloc buildpack must run before the build that uses it (heroku buildpacks:add --index 1 <jemalloc buildpack>), then redeploy\n' \
      "$__jemalloc_bp_lib" >&2 || :
  else
    # Rebuild LD_PRELOAD with our library first and every other entry after
    # it, in order. ld.so accepts ':' and ' ' as separators; we write ':'
    # only, drop empty entries, and drop any earlier copy of our library
    # (libjemalloc.so, .so.2, ...) so that sourcing twice changes nothing.
    __jemalloc_bp_new=$__jemalloc_bp_lib
    __jemalloc_bp_rest=${LD_PRELOAD:-}
    while [ -n "$__jemalloc_bp_rest" ]; do
      __jemalloc_bp_item=${__jemalloc_bp_rest%%[: ]*}
      __jemalloc_bp_rest=${__jemalloc_bp_rest#"$__jemalloc_bp_item"}
      __jemalloc_bp_rest=${__jemalloc_bp_rest#[: ]}
      case $__jemalloc_bp_item in
        '' | "$__jemalloc_bp_dir"/lib/libjemalloc*) ;;
        *) __jemalloc_bp_new=$__jemalloc_bp_new:$__jemalloc_bp_item ;;
      esac
    done
    LD_PRELOAD=$__jemalloc_bp_new
    export LD_PRELOAD
    # MALLOC_ARENA_MAX is glibc malloc's knob (jemalloc itself ignores it;
    # it reads MALLOC_CONF): it caps memory growth in whatever still runs on
    # glibc malloc, e.g. static or setuid programs that skip LD_PRELOAD.
    # A value the app set itself, even an empty one, wins.
    if [ -z "${MALLOC_ARENA_MAX+x}" ]; then
      MALLOC_ARENA_MAX=2
      export MALLOC_ARENA_MAX
    fi
  fi
fi

unset __jemalloc_bp_dir __jemalloc_bp_lib __jemalloc_bp_on __jemalloc_bp_val \
  __jemalloc_bp_type __jemalloc_bp_rest __jemalloc_bp_item \
  __jemalloc_bp_listed __jemalloc_bp_match __jemalloc_bp_new \
  __jemalloc_bp_cnb_dir
