/*
 * Keeps jemalloc's background thread running in processes made by fork().
 *
 * jemalloc stops its background threads in the child of a fork (see
 * background_thread_postfork_child in jemalloc's src/background_thread.c): threads do not
 * survive fork(), and jemalloc only marks them stopped. The child then purges freed memory only
 * while it allocates, so a forked worker that goes idle (puma in cluster mode, Celery's prefork
 * pool, gunicorn, unicorn, resque-pool) keeps its dirty pages for as long as it idles, and the
 * buildpack's background_thread:true does nothing in exactly the processes it is meant for.
 *
 * lib/build.sh links this file into libjemalloc.so when it compiles the memory tuning in. Its
 * constructor registers fork handlers: before a fork it notes whether the background thread is
 * on; in a child that lives on (see RESTART_DELAY_MS) it switches the thread back on through
 * jemalloc's documented "background_thread" mallctl. A parent without background threads
 * (MALLOC_CONF=background_thread:false) gives children without them, as before.
 *
 * Most forked children exec another program at once (a shell running a command), and any
 * thread started in them, even one that only sleeps, made a bash loop of external commands
 * about 25% slower (measured). So the child starts nothing: it installs an allocation hook
 * (jemalloc's "experimental.hooks" interface, 5.1 and later), and the first allocation or free
 * at least RESTART_DELAY_MS after the fork switches the background thread on and removes the
 * hook. A child that execs before then never pays for it. Releases without the interface (5.0)
 * keep jemalloc's behaviour.
 *
 * Set JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false in the environment to keep jemalloc's own
 * behaviour (no background thread in forked children).
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESTART_DELAY_MS 200

/* jemalloc's public control interface; this object is linked into the same library. */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
int mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
		 size_t newlen);

/* The layout of jemalloc's hooks_t (include/jemalloc/internal/hook.h, the same in 5.1 to 5.3). */
typedef void (*alloc_hook_t)(void *extra, int type, void *result, uintptr_t result_raw,
			     uintptr_t args_raw[3]);
typedef void (*dalloc_hook_t)(void *extra, int type, void *address, uintptr_t args_raw[3]);
typedef void (*expand_hook_t)(void *extra, int type, void *address, size_t old_usize,
			      size_t new_usize, uintptr_t result_raw, uintptr_t args_raw[4]);
struct jemalloc_hooks {
	alloc_hook_t alloc_hook;
	dalloc_hook_t dalloc_hook;
	expand_hook_t expand_hook;
	void *extra;
};

static size_t background_thread_mib[1];
static size_t background_thread_miblen;
/* Whether the process that forks has (or is about to get) jemalloc's background thread. */
static bool was_on_at_fork;
static bool restart_pending;
static void *installed_hook;
static struct timespec forked_at;

static long long
milliseconds_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - then->tv_sec) * 1000LL + (now.tv_nsec - then->tv_nsec) / 1000000;
}

static bool
background_thread_on(void)
{
	bool on = false;
	size_t length = sizeof(on);

	/* Looked up at the first fork, not at start: the first mallctl call sets up jemalloc's
	 * statistics, which every exec'd command would pay for. */
	if (background_thread_miblen == 0) {
		background_thread_miblen = sizeof(background_thread_mib) / sizeof(background_thread_mib[0]);
		if (mallctlnametomib("background_thread", background_thread_mib, &background_thread_miblen) != 0) {
			background_thread_miblen = 0;
			return false;
		}
	}
	return mallctlbymib(background_thread_mib, background_thread_miblen, &on, &length, NULL,
			    0) == 0 && on;
}

/* Runs inside jemalloc's allocation functions; jemalloc keeps it from running re-entrantly. */
static void
restart_when_due(void)
{
	bool on = true;
	void *hook;

	if (!__atomic_load_n(&restart_pending, __ATOMIC_ACQUIRE) ||
	    milliseconds_since(&forked_at) < RESTART_DELAY_MS ||
	    !__atomic_exchange_n(&restart_pending, false, __ATOMIC_ACQ_REL)) {
		return;
	}
	/* On failure the process runs as jemalloc leaves it: purging while it allocates. */
	(void)mallctlbymib(background_thread_mib, background_thread_miblen, NULL, NULL, &on,
			   sizeof(on));
	hook = installed_hook;
	installed_hook = NULL;
	(void)mallctl("experimental.hooks.remove", NULL, NULL, &hook, sizeof(hook));
}

static void
on_alloc(void *extra, int type, void *result, uintptr_t result_raw, uintptr_t args_raw[3])
{
	(void)extra, (void)type, (void)result, (void)result_raw, (void)args_raw;
	restart_when_due();
}

static void
on_dalloc(void *extra, int type, void *address, uintptr_t args_raw[3])
{
	(void)extra, (void)type, (void)address, (void)args_raw;
	restart_when_due();
}

static void
note_background_thread_before_fork(void)
{
	was_on_at_fork = __atomic_load_n(&restart_pending, __ATOMIC_ACQUIRE) || background_thread_on();
}

static void
restart_background_thread_in_child(void)
{
	struct jemalloc_hooks hooks = {on_alloc, on_dalloc, NULL, NULL};
	size_t length = sizeof(installed_hook);

	/* The parent's hook, if it had one, is copied into the child: it stays and serves here. */
	if (!was_on_at_fork) {
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &forked_at);
	if (installed_hook == NULL &&
	    mallctl("experimental.hooks.install", &installed_hook, &length, &hooks, sizeof(hooks)) != 0) {
		installed_hook = NULL;
		return;
	}
	__atomic_store_n(&restart_pending, true, __ATOMIC_RELEASE);
}

static bool
switched_off_by_environment(void)
{
	const char *value = getenv("JEMALLOC_BACKGROUND_THREAD_AFTER_FORK");

	if (value == NULL) {
		return false;
	}
	return strcmp(value, "false") == 0 || strcmp(value, "0") == 0 || strcmp(value, "no") == 0 ||
	       strcmp(value, "off") == 0;
}

__attribute__((constructor)) static void
register_fork_handlers(void)
{
	if (switched_off_by_environment()) {
		return;
	}
	/*
	 * jemalloc registers its own fork handlers when it initializes, which the first allocation
	 * makes sure of; these go after them. glibc runs prepare handlers in reverse order, so the
	 * state is read before jemalloc takes its locks, and child handlers in order, so the hook
	 * goes in after jemalloc has reset its state for the child.
	 */
	free(malloc(1));
	pthread_atfork(note_background_thread_before_fork, NULL, restart_background_thread_in_child);
}
