/*
 * What the fork helper (src/background_thread_after_fork.c) does to real forked processes, as
 * the stack tests see it. Built in the stack's build image, run in a dyno with jemalloc
 * preloaded; it finds mallctl at run time, so it links against nothing but libc.
 *
 *   fork_probe race N          N children, each with a thread that forks grandchildren while
 *                              the child's main thread allocates through its restart; prints
 *                              "hung=H of G grandchildren" (a grandchild that has not exited
 *                              5 s after its fork is hung, and is killed)
 *   fork_probe idle MB         a child that allocates MB megabytes in 1 KiB-64 KiB blocks at
 *                              once after its fork, frees them, then idles; prints its RSS
 *                              ("rss_kb before=... peak=... t<ms>=...") every 100 ms for 4 s
 *   fork_probe work OPS        a child that runs OPS malloc/free pairs right after its fork;
 *                              prints "ns_per_op=..."
 *   fork_probe choice on|off   a child that sets background_thread itself right after its
 *                              fork, then allocates for 600 ms; prints "background_thread=yes|no"
 *   fork_probe thread OPS      a child that runs OPS malloc/free pairs within a millisecond or
 *                              so of its fork, then sleeps 50 ms; prints "background_thread=yes|no"
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef int (*mallctl_t)(const char *, void *, size_t *, void *, size_t);
static mallctl_t mallctl_fn;

static void
fail(const char *what)
{
	fprintf(stderr, "fork_probe: %s\n", what);
	exit(2);
}

static double
now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static void
sleep_ms(long ms)
{
	struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};

	while (nanosleep(&t, &t) != 0 && errno == EINTR) {
	}
}

/* Whether this process runs jemalloc's background thread, as the kernel lists its threads. */
static bool
has_background_thread(void)
{
	DIR *tasks = opendir("/proc/self/task");
	struct dirent *entry;
	bool found = false;

	if (tasks == NULL) {
		fail("cannot list /proc/self/task");
	}
	while (!found && (entry = readdir(tasks)) != NULL) {
		char path[300], name[32] = "";
		FILE *comm;

		if (entry->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", entry->d_name);
		if ((comm = fopen(path, "r")) != NULL) {
			found = fgets(name, sizeof(name), comm) != NULL && strncmp(name, "jemalloc_bg_thd", 15) == 0;
			fclose(comm);
		}
	}
	closedir(tasks);
	return found;
}

static long
rss_kb(void)
{
	long pages = 0, resident = 0;
	FILE *statm = fopen("/proc/self/statm", "r");

	if (statm == NULL || fscanf(statm, "%ld %ld", &pages, &resident) != 2) {
		fail("cannot read /proc/self/statm");
	}
	fclose(statm);
	return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

/* The child's exit status, or -1 when it is still running after TIMEOUT_MS (then killed). */
static int
wait_bounded(pid_t pid, long timeout_ms)
{
	double deadline = now_ms() + timeout_ms;
	int status;

	for (;;) {
		pid_t done = waitpid(pid, &status, WNOHANG);
		if (done == pid) {
			return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		}
		if (done < 0) {
			fail("waitpid failed");
		}
		if (now_ms() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			return -1;
		}
		sleep_ms(1);
	}
}

static void
churn(int count, size_t size)
{
	for (int i = 0; i < count; i++) {
		void *volatile block = malloc(size + (size_t)(i % 7) * 16);
		if (block == NULL) {
			fail("out of memory");
		}
		free(block);
	}
}

/* race */

#define MAX_GRANDCHILDREN 16

static volatile bool allocating;
static int grandchildren, hung;

static void *
fork_grandchildren(void *unused)
{
	pid_t pids[MAX_GRANDCHILDREN];
	int count = 0;

	(void)unused;
	/* Back to back, reaped at the end: each fork's prepare handlers, which take jemalloc's
	 * locks, run as often as possible while the other thread allocates and restarts. */
	while (__atomic_load_n(&allocating, __ATOMIC_ACQUIRE) && count < MAX_GRANDCHILDREN) {
		pid_t pid = fork();
		if (pid == 0) {
			/* What the hang blocked: the grandchild's own allocations and fork handlers. */
			churn(64, 256);
			_exit(0);
		}
		if (pid < 0) {
			fail("fork failed");
		}
		pids[count++] = pid;
	}
	for (int i = 0; i < count; i++) {
		if (wait_bounded(pids[i], 5000) < 0) {
			hung++;
		}
	}
	grandchildren = count;
	return NULL;
}

static int
race_child(void)
{
	pthread_t forker;

	__atomic_store_n(&allocating, true, __ATOMIC_RELEASE);
	if (pthread_create(&forker, NULL, fork_grandchildren, NULL) != 0) {
		fail("pthread_create failed");
	}
	/* Through the helper's restart, whatever brings it (it shows as the background thread),
	 * and a little beyond, with pauses so that the other thread's forks fall before, during
	 * and after it; for 2 s at most. */
	double deadline = now_ms() + 2000;
	for (int after = 0; after < 10 && now_ms() < deadline;) {
		churn(40, 512);
		usleep(50);
		if (after > 0 || has_background_thread()) {
			after++;
		}
	}
	__atomic_store_n(&allocating, false, __ATOMIC_RELEASE);
	pthread_join(forker, NULL);
	/* The counts go back through the exit status: at most MAX_GRANDCHILDREN each. */
	return (hung > 0 ? 128 : 0) | grandchildren;
}

static int
race(int children)
{
	int total = 0, total_hung = 0, lost = 0;

	for (int i = 0; i < children; i++) {
		pid_t pid = fork();
		if (pid == 0) {
			_exit(race_child());
		}
		int status = wait_bounded(pid, 30000);
		if (status < 0) {
			lost++;
			continue;
		}
		total += status & 127;
		total_hung += (status & 128) ? 1 : 0;
	}
	printf("hung=%d of %d grandchildren in %d children (%d children hung)\n", total_hung, total,
	       children, lost);
	return total_hung == 0 && lost == 0 ? 0 : 1;
}

/* idle */

static int
idle(long megabytes)
{
	pid_t pid = fork();

	if (pid == 0) {
		long before = rss_kb(), peak;
		size_t total = (size_t)megabytes << 20, done = 0, count = 0;
		void **blocks = calloc(total / 1024 + 1, sizeof(void *));
		double start;

		while (done < total) {
			size_t size = (size_t)1024 << (count % 7); /* 1 KiB to 64 KiB */
			blocks[count] = malloc(size);
			memset(blocks[count], 1, size);
			done += size;
			count++;
		}
		peak = rss_kb();
		for (size_t i = 0; i < count; i++) {
			free(blocks[i]);
		}
		free(blocks);
		printf("rss_kb before=%ld peak=%ld", before, peak);
		start = now_ms();
		for (int step = 0; step <= 40; step++) {
			sleep_ms((long)(start + step * 100 - now_ms()) > 0 ? (long)(start + step * 100 - now_ms()) : 0);
			printf(" t%d=%ld", step * 100, rss_kb());
		}
		printf("\n");
		fflush(stdout);
		_exit(0);
	}
	return wait_bounded(pid, 30000) == 0 ? 0 : 1;
}

/* work */

static int
work(int operations)
{
	pid_t pid = fork();

	if (pid == 0) {
		double start = now_ms();
		churn(operations, 48);
		printf("ns_per_op=%.2f\n", (now_ms() - start) * 1e6 / operations);
		fflush(stdout);
		_exit(0);
	}
	return wait_bounded(pid, 60000) == 0 ? 0 : 1;
}

/* choice and thread */

static int
in_child_report(bool set, bool value, int operations, long settle_ms, bool keep_allocating)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (set && mallctl_fn("background_thread", NULL, NULL, &value, sizeof(value)) != 0) {
			fail("mallctl background_thread failed");
		}
		double deadline = now_ms() + settle_ms;
		churn(operations, 64);
		while (now_ms() < deadline) {
			if (keep_allocating) {
				churn(100, 64);
			}
			sleep_ms(5);
		}
		printf("background_thread=%s\n", has_background_thread() ? "yes" : "no");
		fflush(stdout);
		_exit(0);
	}
	return wait_bounded(pid, 30000) == 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	if (argc != 3) {
		fail("usage: fork_probe race|idle|work|choice|thread ARG");
	}
	mallctl_fn = (mallctl_t)dlsym(RTLD_DEFAULT, "mallctl");
	if (mallctl_fn == NULL) {
		fail("no mallctl: jemalloc is not preloaded");
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(argv[1], "race") == 0) {
		return race(atoi(argv[2]));
	} else if (strcmp(argv[1], "idle") == 0) {
		return idle(atol(argv[2]));
	} else if (strcmp(argv[1], "work") == 0) {
		return work(atoi(argv[2]));
	} else if (strcmp(argv[1], "choice") == 0) {
		return in_child_report(true, strcmp(argv[2], "on") == 0, 5000, 600, true);
	} else if (strcmp(argv[1], "thread") == 0) {
		return in_child_report(false, false, atoi(argv[2]), 50, false);
	}
	fail("unknown command");
	return 2;
}
