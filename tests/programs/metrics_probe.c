/*
 * A process with a known memory story, for the JEMALLOC_METRICS tests (tests/test_metrics.py).
 * Run with jemalloc preloaded; each subcommand prints "ready pid=P allocated=B" (B: what
 * jemalloc's own stats.allocated says in this process, through mallctl) once its memory is in
 * place, then lives SECONDS more:
 *   keep MB SECONDS      holds MB of live data (4 KiB blocks, written)
 *   fragment SECONDS     allocates 200 MB of 1 KiB objects, then frees 90% of them, scattered
 *                        (a seeded shuffle), and holds the rest
 *   grow SECONDS         adds 4 MB of live data every 100 ms for SECONDS (then "ready", and 5 s more)
 *   fork MB SECONDS      holds 20 MB, forks a child that holds MB more; both print "ready"
 *   threads SECONDS      lists its threads' names (comm) on one line, then lives on
 */
#define _GNU_SOURCE /* RTLD_DEFAULT */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef int (*mallctl_t)(const char *, void *, size_t *, void *, size_t);

static size_t
allocated_in_process(void)
{
	mallctl_t mallctl = (mallctl_t)dlsym(RTLD_DEFAULT, "mallctl");
	uint64_t epoch = 1;
	size_t length = sizeof(epoch), allocated = 0, allocated_length = sizeof(allocated);

	if (mallctl == NULL) {
		fprintf(stderr, "metrics_probe: jemalloc is not preloaded (no mallctl)\n");
		exit(2);
	}
	mallctl("epoch", &epoch, &length, &epoch, sizeof(epoch));
	mallctl("stats.allocated", &allocated, &allocated_length, NULL, 0);
	return allocated;
}

static void
ready(void)
{
	printf("ready pid=%d allocated=%zu\n", (int)getpid(), allocated_in_process());
	fflush(stdout);
}

static void
hold(size_t megabytes)
{
	for (size_t i = 0; i < megabytes * 256; i++) {
		char *block = malloc(4096);
		if (block == NULL) {
			exit(3);
		}
		memset(block, 1, 4096);
	}
}

static void
nap_ms(long milliseconds)
{
	struct timespec pause = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
	nanosleep(&pause, NULL);
}

static void
fragment(void)
{
	size_t count = 200u * 1024, kept = count / 10;
	char **objects = malloc(count * sizeof(*objects));
	uint32_t state = 12345;

	for (size_t i = 0; i < count; i++) {
		objects[i] = malloc(1024);
		memset(objects[i], 1, 1024);
	}
	/* Fisher-Yates with a fixed seed: the 10% kept are scattered over every page. */
	for (size_t i = count - 1; i > 0; i--) {
		state = state * 1103515245u + 12345u;
		size_t j = (state >> 8) % (i + 1);
		char *swap = objects[i];
		objects[i] = objects[j];
		objects[j] = swap;
	}
	for (size_t i = kept; i < count; i++) {
		free(objects[i]);
	}
}

static void
threads(void)
{
	DIR *tasks = opendir("/proc/self/task");
	struct dirent *entry;
	char path[300], name[64];

	printf("threads");
	while ((entry = readdir(tasks)) != NULL) {
		if (entry->d_name[0] == '.') {
			continue;
		}
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", entry->d_name);
		FILE *comm = fopen(path, "r");
		if (comm != NULL && fgets(name, sizeof(name), comm) != NULL) {
			name[strcspn(name, "\n")] = '\0';
			printf(" %s", name);
		}
		if (comm != NULL) {
			fclose(comm);
		}
	}
	printf("\n");
	closedir(tasks);
}

int
main(int argc, char **argv)
{
	if (argc == 4 && strcmp(argv[1], "keep") == 0) {
		hold((size_t)atol(argv[2]));
		ready();
		sleep((unsigned)atoi(argv[3]));
	} else if (argc == 3 && strcmp(argv[1], "fragment") == 0) {
		fragment();
		ready();
		sleep((unsigned)atoi(argv[2]));
	} else if (argc == 3 && strcmp(argv[1], "grow") == 0) {
		for (long elapsed = 0; elapsed < atol(argv[2]) * 1000; elapsed += 100) {
			hold(4);
			nap_ms(100);
		}
		ready();
		sleep(5);
	} else if (argc == 4 && strcmp(argv[1], "fork") == 0) {
		hold(20);
		fflush(stdout);
		pid_t child = fork();
		if (child == 0) {
			hold((size_t)atol(argv[2]));
		}
		ready();
		sleep((unsigned)atoi(argv[3]));
		if (child > 0) {
			waitpid(child, NULL, 0);
		}
	} else if (argc == 3 && strcmp(argv[1], "threads") == 0) {
		nap_ms(300);
		threads();
		fflush(stdout);
		sleep((unsigned)atoi(argv[2]));
	} else {
		fprintf(stderr, "usage: metrics_probe keep MB SECONDS | fragment SECONDS | grow SECONDS | "
				"fork MB SECONDS | threads SECONDS\n");
		return 2;
	}
	return 0;
}
