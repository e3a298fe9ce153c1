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
 * on; in a child of such a process it switches the thread back on, through jemalloc's
 * documented "background_thread" mallctl, once the child has shown that it lives on.
 *
 * When. Most forked children exec another program at once (a shell running a command), and a
 * thread started in each of them makes a bash loop of external commands measurably slower. So
 * the child starts nothing at fork: it installs an allocation hook (jemalloc's
 * "experimental.hooks", 5.1 and later) that counts what the child allocates and frees, and the
 * restart happens at the first of RESTART_AFTER_CALLS allocations and frees,
 * RESTART_AFTER_BYTES allocated, or RESTART_MIN_CALLS and RESTART_AFTER_MS since the fork. A
 * child that execs before then never pays for a thread, and one that allocates a burst and then
 * idles gets its thread during the burst, so its freed memory goes back to the kernel while it
 * idles. While the hook is in place every allocation takes jemalloc's slow path (about 100 ns
 * instead of 10) and reads the clock; the thresholds bound that to well under a millisecond per
 * child, after which the hook is removed and the child runs as fast as any process.
 *
 * Fork safety, by construction. The restart takes jemalloc locks (through mallctl) and
 * jemalloc's hooks mutex (installing or removing a hook), and the hooks mutex is not among the
 * locks jemalloc takes at fork: a fork in one thread while another removed the hook left the
 * child with that mutex held forever. So every install and removal, and the restart, happen
 * under helper_lock, which the prepare handler takes before jemalloc's own handler runs and the
 * parent and child handlers release: no thread is inside any of them while a fork copies the
 * process. Inside an allocation the hook only tries the lock; when a fork (or a restart in
 * another thread, or this thread's own restart calling malloc) holds it, the next allocation
 * tries again.
 *
 * The app's own choice wins. mallctl and mallctlbymib are wrapped (lib/build.sh renames
 * jemalloc's own definitions, which the wrappers call): a child that sets
 * "background_thread" itself after the fork, on or off, is left as it chose.
 *
 * JEMALLOC_BACKGROUND_THREAD_AFTER_FORK=false (or 0, no, off; spaces and case ignored, as the
 * buildpack's preload rules read it in runtime/lib/preload-rules.sh) keeps jemalloc's own
 * behaviour: no background thread in forked children. Releases without the hooks interface
 * (5.0) keep jemalloc's behaviour too.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RESTART_AFTER_CALLS 1024
#define RESTART_AFTER_BYTES (4u << 20)
#define RESTART_AFTER_MS 200
#define RESTART_MIN_CALLS 32

/* jemalloc's own definitions, renamed at build time (lib/build.sh, BUILD_RENAMED_MALLCTL) so
 * that the names below can wrap them; the rest of jemalloc's control interface is used as it is. */
int real_mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
	__asm__("jemalloc_buildpack_real_mallctl");
int real_mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
		      size_t newlen) __asm__("jemalloc_buildpack_real_mallctlbymib");
int mallctlnametomib(const char *name, size_t *mibp, size_t *miblenp);
size_t malloc_usable_size(void *ptr);

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

/* Held by every install, removal and restart, and across fork (see above). */
static pthread_mutex_t helper_lock = PTHREAD_MUTEX_INITIALIZER;

/* Under helper_lock. */
static size_t background_thread_mib[1];
static size_t background_thread_miblen;
static bool was_on_at_fork;
static void *installed_hook;
static struct timespec forked_at;

/* Read by the hook without the lock. */
static bool restart_pending;
static bool app_chose;
static unsigned long calls_since_fork;
static unsigned long bytes_since_fork;

static bool
mib_is_background_thread(const size_t *mib, size_t miblen)
{
	return background_thread_miblen != 0 && miblen == background_thread_miblen &&
	       memcmp(mib, background_thread_mib, miblen * sizeof(*mib)) == 0;
}

static void
note_app_choice(void)
{
	__atomic_store_n(&app_chose, true, __ATOMIC_RELEASE);
}

int
mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen)
{
	if (newp != NULL && name != NULL && strcmp(name, "background_thread") == 0) {
		note_app_choice();
	}
	return real_mallctl(name, oldp, oldlenp, newp, newlen);
}

int
mallctlbymib(const size_t *mib, size_t miblen, void *oldp, size_t *oldlenp, void *newp,
	     size_t newlen)
{
	/* The mib is looked up before the first fork; an app that wrote the setting by mib before
	 * then made its choice in the parent, which the fork handlers read anyway. */
	if (newp != NULL && mib != NULL && mib_is_background_thread(mib, miblen)) {
		note_app_choice();
	}
	return real_mallctlbymib(mib, miblen, oldp, oldlenp, newp, newlen);
}

static long long
milliseconds_since(const struct timespec *then)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - then->tv_sec) * 1000LL + (now.tv_nsec - then->tv_nsec) / 1000000;
}

/* Under helper_lock. */
static bool
background_thread_on(void)
{
	bool on = false;
	size_t length = sizeof(on);

	/* Looked up at the first fork, not at start: the first mallctl call sets up jemalloc's
	 * statistics, which every exec'd command would pay for. */
	if (background_thread_miblen == 0) {
		size_t miblen = sizeof(background_thread_mib) / sizeof(background_thread_mib[0]);
		if (mallctlnametomib("background_thread", background_thread_mib, &miblen) != 0) {
			return false;
		}
		background_thread_miblen = miblen;
	}
	return real_mallctlbymib(background_thread_mib, background_thread_miblen, &on, &length,
				 NULL, 0) == 0 &&
	       on;
}

/* Under helper_lock. */
static void
restart(void)
{
	bool on = true;
	void *hook = installed_hook;

	__atomic_store_n(&restart_pending, false, __ATOMIC_RELEASE);
	/* On failure the process runs as jemalloc leaves it: purging while it allocates. */
	if (!__atomic_load_n(&app_chose, __ATOMIC_ACQUIRE) && !background_thread_on()) {
		(void)real_mallctlbymib(background_thread_mib, background_thread_miblen, NULL, NULL,
					&on, sizeof(on));
	}
	installed_hook = NULL;
	(void)real_mallctl("experimental.hooks.remove", NULL, NULL, &hook, sizeof(hook));
}

/* Counts one allocation or free of BYTES (0 for a free) and says whether the restart is due. */
static bool
due(size_t bytes)
{
	unsigned long seen = __atomic_add_fetch(&calls_since_fork, 1, __ATOMIC_RELAXED);
	unsigned long allocated = bytes == 0 ? __atomic_load_n(&bytes_since_fork, __ATOMIC_RELAXED)
					     : __atomic_add_fetch(&bytes_since_fork, bytes, __ATOMIC_RELAXED);

	if (seen >= RESTART_AFTER_CALLS || allocated >= RESTART_AFTER_BYTES ||
	    __atomic_load_n(&app_chose, __ATOMIC_RELAXED)) {
		return true;
	}
	/* forked_at is written in the child handler, before the hook can run. A child that only
	 * frees a little on its way out (exit) does not get a thread to die with. */
	return seen >= RESTART_MIN_CALLS && milliseconds_since(&forked_at) >= RESTART_AFTER_MS;
}

/* Runs inside jemalloc's allocation functions; jemalloc keeps it from running re-entrantly. */
static void
counted(size_t bytes)
{
	if (!__atomic_load_n(&restart_pending, __ATOMIC_ACQUIRE) || !due(bytes)) {
		return;
	}
	/* Never wait inside malloc: whoever holds the lock is a fork, which resets all this in
	 * the child, or a restart under way. */
	if (pthread_mutex_trylock(&helper_lock) != 0) {
		return;
	}
	if (__atomic_load_n(&restart_pending, __ATOMIC_ACQUIRE)) {
		restart();
	}
	pthread_mutex_unlock(&helper_lock);
}

static void
on_alloc(void *extra, int type, void *result, uintptr_t result_raw, uintptr_t args_raw[3])
{
	(void)extra, (void)type, (void)result_raw, (void)args_raw;
	counted(result == NULL ? 0 : malloc_usable_size(result));
}

static void
on_dalloc(void *extra, int type, void *address, uintptr_t args_raw[3])
{
	(void)extra, (void)type, (void)address, (void)args_raw;
	counted(0);
}

static void
on_expand(void *extra, int type, void *address, size_t old_usize, size_t new_usize,
	  uintptr_t result_raw, uintptr_t args_raw[4])
{
	(void)extra, (void)type, (void)address, (void)result_raw, (void)args_raw;
	counted(new_usize > old_usize ? new_usize - old_usize : 0);
}

static void
before_fork(void)
{
	pthread_mutex_lock(&helper_lock);
	/* A process still waiting for its own restart will have the thread, unless the app chose
	 * otherwise since: so will its child. */
	if (__atomic_load_n(&app_chose, __ATOMIC_ACQUIRE)) {
		was_on_at_fork = background_thread_on();
	} else {
		was_on_at_fork = __atomic_load_n(&restart_pending, __ATOMIC_ACQUIRE) ||
				 background_thread_on();
	}
}

static void
after_fork_in_parent(void)
{
	pthread_mutex_unlock(&helper_lock);
}

static void
after_fork_in_child(void)
{
	struct jemalloc_hooks hooks = {on_alloc, on_dalloc, on_expand, NULL};
	size_t length = sizeof(installed_hook);

	/* The forking thread holds helper_lock here, as it did in the parent. */
	__atomic_store_n(&app_chose, false, __ATOMIC_RELEASE);
	__atomic_store_n(&calls_since_fork, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&bytes_since_fork, 0, __ATOMIC_RELAXED);
	if (was_on_at_fork) {
		clock_gettime(CLOCK_MONOTONIC, &forked_at);
		/* A parent that was waiting for its restart passes its hook on: it serves here. */
		if (installed_hook != NULL ||
		    real_mallctl("experimental.hooks.install", &installed_hook, &length, &hooks,
				 sizeof(hooks)) == 0) {
			__atomic_store_n(&restart_pending, true, __ATOMIC_RELEASE);
		} else {
			installed_hook = NULL;
		}
	}
	pthread_mutex_unlock(&helper_lock);
}

/* JEMALLOC_BACKGROUND_THREAD_AFTER_FORK, read as the preload rules read it: surrounding
 * spaces and case ignored; false/0/no/off switch the restart off, anything else leaves it on. */
static bool
switched_off_by_environment(void)
{
	static const char *const off[] = {"false", "0", "no", "off"};
	const char *value = getenv("JEMALLOC_BACKGROUND_THREAD_AFTER_FORK");
	size_t length;

	if (value == NULL) {
		return false;
	}
	while (*value == ' ') {
		value++;
	}
	length = strlen(value);
	while (length > 0 && value[length - 1] == ' ') {
		length--;
	}
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
		if (strlen(off[i]) == length && strncasecmp(value, off[i], length) == 0) {
			return true;
		}
	}
	return false;
}

__attribute__((constructor)) static void
register_fork_handlers(void)
{
	if (switched_off_by_environment()) {
		return;
	}
	/*
	 * jemalloc registers its own fork handlers when it initializes, which the first allocation
	 * makes sure of; these go after them. glibc runs prepare handlers in reverse order, so
	 * helper_lock is taken and the state read before jemalloc takes its locks, and child
	 * handlers in order, so the hook goes in after jemalloc has reset its state for the child.
	 */
	free(malloc(1));
	pthread_atfork(before_fork, after_fork_in_parent, after_fork_in_child);
}
