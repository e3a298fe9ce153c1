/*
 * JEMALLOC_METRICS: each process on jemalloc says, once per interval, how much of its memory is
 * live data and how much is the allocator's own (freed but not returned, fragmentation).
 *
 * lib/build.sh links this file into libjemalloc.so (5.0 and later). With JEMALLOC_METRICS off
 * (unset, empty, false/0/no/off) the constructor reads one environment variable and returns:
 * no thread, no file, no mallctl, no fork handler. On (true/yes/on: every 60 s; a whole number
 * from 1 to 3600: that many seconds; spaces and case ignored, as runtime/lib/preload-rules.sh
 * reads it, which also warns about other values), a thread of the process, named
 * jemalloc_stats, at every interval:
 *   - reads jemalloc's statistics (stats.allocated, active, resident, retained, metadata, and
 *     the dirty pages of all arenas) through mallctl;
 *   - writes one line to stderr, in the sample# style of Heroku's log-runtime-metrics, e.g.
 *     jemalloc source=web.1 pid=7 comm=puma sample#jemalloc.allocated=84.20MB ...
 *   - replaces /tmp/jemalloc-metrics/<pid>, which jemalloc-check reads (the format is in
 *     runtime/lib/check-proc.sh, proc::read_metrics): the first sample (the baseline, taken
 *     after the process has booted for one interval) and the latest.
 * A process that execs or exits within its first interval writes nothing.
 *
 * Nothing here may stop or slow the app:
 *   - the thread blocks every signal, so no signal of the app is delivered to it, and a write
 *     to a closed pipe gives it EPIPE instead of killing the process with SIGPIPE;
 *   - it never calls malloc (fixed buffers on its own small stack), and mallctl is called only
 *     from this thread, never from inside an allocation, so nothing runs inside jemalloc's locks;
 *   - every write is one write(2), whose failure (stderr closed, /tmp missing, full or
 *     read-only) is ignored; a slow disk delays only this thread;
 *   - stderr is written only while it is the file it was when the thread started: an app that
 *     closed fd 2 and got another file under that number does not get log lines in it.
 * Forked children (puma workers, Celery's prefork pool) get a thread of their own in the fork
 * handler, with a baseline one interval after the fork: their figures are their own.
 */

#define _GNU_SOURCE /* pthread_setname_np */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h> /* renameat */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define METRICS_DEFAULT_INTERVAL 60
#define METRICS_MAX_INTERVAL 3600
#define METRICS_DIRECTORY "/tmp/jemalloc-metrics"
#define METRICS_THREAD_NAME "jemalloc_stats"
#define METRICS_STACK_SIZE (256u << 10)
/* jemalloc's MALLCTL_ARENAS_ALL (5.0 and later): the merged statistics of every arena. */
#define METRICS_ARENAS_ALL "4096"

int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen);

/* One reading of jemalloc's statistics, in bytes; UNKNOWN where the release lacks a figure. */
#define UNKNOWN UINT64_MAX
struct sample {
	uint64_t allocated;
	uint64_t active;
	uint64_t resident;
	uint64_t retained;
	uint64_t metadata;
	uint64_t dirty;
};

/* Set by the constructor, before any thread of this file runs; inherited by forked children. */
static unsigned interval_seconds;
static char dyno[64];
static dev_t stderr_device;
static ino_t stderr_inode;
static bool stderr_known;

/* Whether this process has a file to take away at exit: written by the thread (and reset in
 * a forked child, before its thread starts), read by the destructor. */
static bool published;

/* JEMALLOC_METRICS as the preload rules read it: 0 for off (or not understood). */
static unsigned
interval_from_environment(void)
{
	static const char *const on[] = {"true", "yes", "on"};
	const char *value = getenv("JEMALLOC_METRICS");
	size_t length;
	unsigned seconds = 0;

	if (value == NULL) {
		return 0;
	}
	while (*value == ' ') {
		value++;
	}
	length = strlen(value);
	while (length > 0 && value[length - 1] == ' ') {
		length--;
	}
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
		if (strlen(on[i]) == length && strncasecmp(value, on[i], length) == 0) {
			return METRICS_DEFAULT_INTERVAL;
		}
	}
	if (length == 0) {
		return 0;
	}
	for (size_t i = 0; i < length; i++) {
		if (value[i] < '0' || value[i] > '9') {
			return 0;
		}
		seconds = seconds * 10 + (unsigned)(value[i] - '0');
		if (seconds > METRICS_MAX_INTERVAL) {
			return 0;
		}
	}
	return seconds;
}

static uint64_t
read_size(const char *name)
{
	size_t value = 0, length = sizeof(value);

	return mallctl(name, &value, &length, NULL, 0) == 0 ? (uint64_t)value : UNKNOWN;
}

/* Refreshes jemalloc's statistics and reads them; false when this build keeps none. */
static bool
take_sample(struct sample *sample)
{
	uint64_t epoch = 1;
	size_t length = sizeof(epoch);
	size_t page = 0, page_length = sizeof(page), dirty_pages = 0, dirty_length = sizeof(dirty_pages);

	if (mallctl("epoch", &epoch, &length, &epoch, sizeof(epoch)) != 0) {
		return false;
	}
	sample->allocated = read_size("stats.allocated");
	sample->active = read_size("stats.active");
	sample->resident = read_size("stats.resident");
	sample->retained = read_size("stats.retained");
	sample->metadata = read_size("stats.metadata");
	sample->dirty = UNKNOWN;
	if (mallctl("arenas.page", &page, &page_length, NULL, 0) == 0 &&
	    mallctl("stats.arenas." METRICS_ARENAS_ALL ".pdirty", &dirty_pages, &dirty_length, NULL,
		    0) == 0) {
		sample->dirty = (uint64_t)dirty_pages * page;
	}
	return sample->allocated != UNKNOWN && sample->resident != UNKNOWN;
}

/* A small writer into a fixed buffer: what does not fit is cut, never overflowed. */
struct text {
	char data[1024];
	size_t length;
};

static void
add(struct text *text, const char *string)
{
	while (*string != '\0' && text->length < sizeof(text->data)) {
		text->data[text->length++] = *string++;
	}
}

static void
add_number(struct text *text, uint64_t number)
{
	char digits[24];
	size_t count = 0;

	do {
		digits[count++] = (char)('0' + number % 10);
		number /= 10;
	} while (number != 0);
	while (count > 0 && text->length < sizeof(text->data)) {
		text->data[text->length++] = digits[--count];
	}
}

/* BYTES in MB (2^20 bytes, as log-runtime-metrics counts them) with two decimals. */
static void
add_megabytes(struct text *text, uint64_t bytes)
{
	uint64_t hundredths = (bytes * 100 + (1u << 19)) >> 20;

	add_number(text, hundredths / 100);
	add(text, ".");
	add(text, hundredths % 100 < 10 ? "0" : "");
	add_number(text, hundredths % 100);
	add(text, "MB");
}

static void
add_sample_figure(struct text *text, const char *name, uint64_t bytes)
{
	if (bytes == UNKNOWN) {
		return;
	}
	add(text, " sample#jemalloc.");
	add(text, name);
	add(text, "=");
	add_megabytes(text, bytes);
}

static void
add_key(struct text *text, const char *key, uint64_t value)
{
	if (value == UNKNOWN) {
		return;
	}
	add(text, key);
	add(text, "=");
	add_number(text, value);
	add(text, "\n");
}

/* Reads a short /proc/self file into BUFFER (NUL-terminated, at most SIZE - 1 bytes). */
static size_t
read_proc_file(const char *path, char *buffer, size_t size)
{
	ssize_t length;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	buffer[0] = '\0';
	if (fd < 0) {
		return 0;
	}
	length = read(fd, buffer, size - 1);
	close(fd);
	if (length < 0) {
		length = 0;
	}
	buffer[length] = '\0';
	return (size_t)length;
}

/* The command name as a logfmt value: no spaces, no '=' and nothing unprintable. */
static void
add_comm(struct text *text)
{
	char comm[32];
	size_t length = read_proc_file("/proc/self/comm", comm, sizeof(comm));

	while (length > 0 && comm[length - 1] == '\n') {
		comm[--length] = '\0';
	}
	for (size_t i = 0; i < length; i++) {
		if (comm[i] <= ' ' || comm[i] == '=' || comm[i] == '"' || comm[i] > '~') {
			comm[i] = '_';
		}
	}
	add(text, length > 0 ? comm : "unknown");
}

/* Field 22 of /proc/self/stat (clock ticks from boot to the process's start): with the pid, it
 * tells jemalloc-check that a file is this process's and not a former holder of the pid's.
 * Read relative to /proc/self, not by that path: qemu-user (arm64 under emulation) answers an
 * open of "/proc/self/stat" itself, with a start time of its own that differs from the one
 * other processes read in /proc/PID/stat. */
static uint64_t
start_time(void)
{
	char stat[1024];
	const char *field;
	uint64_t ticks = 0;
	ssize_t length = -1;
	int self = open("/proc/self", O_RDONLY | O_DIRECTORY | O_CLOEXEC), fd = -1;

	if (self >= 0) {
		fd = openat(self, "stat", O_RDONLY | O_CLOEXEC);
		close(self);
	}
	if (fd >= 0) {
		length = read(fd, stat, sizeof(stat) - 1);
		close(fd);
	}
	stat[length > 0 ? length : 0] = '\0';
	field = strrchr(stat, ')');
	if (field == NULL) {
		return UNKNOWN;
	}
	/* After "comm)" come fields 3 (state) to 21, then the start time. */
	for (int spaces = 0; *field != '\0' && spaces < 20; field++) {
		spaces += *field == ' ';
	}
	if (*field < '0' || *field > '9') {
		return UNKNOWN;
	}
	for (; *field >= '0' && *field <= '9'; field++) {
		ticks = ticks * 10 + (uint64_t)(*field - '0');
	}
	return ticks;
}

static void
log_line(const struct sample *sample)
{
	struct text line = {.length = 0};
	struct stat now;

	if (!stderr_known || fstat(STDERR_FILENO, &now) != 0 || now.st_dev != stderr_device ||
	    now.st_ino != stderr_inode) {
		return;
	}
	add(&line, "jemalloc");
	if (dyno[0] != '\0') {
		add(&line, " source=");
		add(&line, dyno);
	}
	add(&line, " pid=");
	add_number(&line, (uint64_t)getpid());
	add(&line, " comm=");
	add_comm(&line);
	add_sample_figure(&line, "allocated", sample->allocated);
	add_sample_figure(&line, "active", sample->active);
	add_sample_figure(&line, "resident", sample->resident);
	add_sample_figure(&line, "retained", sample->retained);
	add_sample_figure(&line, "dirty", sample->dirty);
	add_sample_figure(&line, "metadata", sample->metadata);
	add_sample_figure(&line, "overhead",
			  sample->resident > sample->allocated ? sample->resident - sample->allocated
							       : 0);
	if (line.length == sizeof(line.data)) {
		line.length--;
	}
	line.data[line.length++] = '\n';
	(void)!write(STDERR_FILENO, line.data, line.length);
}

/* The file's name: this process's pid, NUL-terminated. */
static void
add_pid(struct text *text)
{
	add_number(text, (uint64_t)getpid());
	text->data[text->length < sizeof(text->data) ? text->length : sizeof(text->data) - 1] = '\0';
}

/* Replaces METRICS_DIRECTORY/<pid> with the baseline and the latest sample, atomically (a
 * temporary file renamed over it), so that jemalloc-check reads one sample or the next. */
static void
publish(uint64_t started, const struct sample *first, time_t first_at, const struct sample *last,
	time_t at, uint64_t samples, uint64_t peak_resident)
{
	struct text file = {.length = 0};
	struct text name = {.length = 0}, temporary = {.length = 0};
	struct stat directory_stat;
	int directory, fd;
	bool written;

	add_key(&file, "format", 1);
	add_key(&file, "pid", (uint64_t)getpid());
	add_key(&file, "starttime", started);
	add_key(&file, "interval", interval_seconds);
	add_key(&file, "samples", samples);
	add_key(&file, "first_at", (uint64_t)first_at);
	add_key(&file, "first_allocated", first->allocated);
	add_key(&file, "first_resident", first->resident);
	add_key(&file, "at", (uint64_t)at);
	add_key(&file, "allocated", last->allocated);
	add_key(&file, "active", last->active);
	add_key(&file, "resident", last->resident);
	add_key(&file, "retained", last->retained);
	add_key(&file, "dirty", last->dirty);
	add_key(&file, "metadata", last->metadata);
	add_key(&file, "peak_resident", peak_resident);
	if (file.length == sizeof(file.data)) {
		return;
	}
	add_pid(&name);
	add(&temporary, ".");
	add(&temporary, name.data);
	add(&temporary, ".tmp");
	temporary.data[temporary.length] = '\0';

	(void)mkdir(METRICS_DIRECTORY, 0700);
	directory = open(METRICS_DIRECTORY, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (directory < 0) {
		return;
	}
	/* Only a directory of this user's: /tmp is shared. */
	if (fstat(directory, &directory_stat) != 0 || directory_stat.st_uid != geteuid()) {
		close(directory);
		return;
	}
	fd = openat(directory, temporary.data, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd >= 0) {
		written = write(fd, file.data, file.length) == (ssize_t)file.length;
		written = close(fd) == 0 && written;
		if (written && renameat(directory, temporary.data, directory, name.data) == 0) {
			__atomic_store_n(&published, true, __ATOMIC_RELAXED);
		} else {
			(void)unlinkat(directory, temporary.data, 0);
		}
	}
	close(directory);
}

/* A file left by a former process with this pid (or by this one before it exec'd) would be
 * read as this one's until the first interval is over. */
static void
unpublish(void)
{
	struct text path = {.length = 0};

	add(&path, METRICS_DIRECTORY "/");
	add_pid(&path);
	(void)unlink(path.data);
}

static void *
sample_every_interval(void *unused)
{
	struct sample first = {0}, last;
	struct timespec next;
	time_t first_at = 0;
	uint64_t samples = 0, peak_resident = 0;
	/* Once per thread: a forked child's thread reads its own. */
	uint64_t started = start_time();

	(void)unused;
	unpublish();
	clock_gettime(CLOCK_MONOTONIC, &next);
	for (;;) {
		next.tv_sec += interval_seconds;
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR) {
		}
		if (!take_sample(&last)) {
			if (samples == 0) {
				return NULL; /* a build without statistics */
			}
			continue;
		}
		/* The baseline is the first sample, one interval after the start (or the fork), so
		 * that what a process allocates as it boots is not counted as growth. */
		if (samples++ == 0) {
			first = last;
			first_at = time(NULL);
			peak_resident = first.resident;
		}
		if (last.resident > peak_resident) {
			peak_resident = last.resident;
		}
		log_line(&last);
		publish(started, &first, first_at, &last, time(NULL), samples, peak_resident);
	}
	return NULL;
}

/* Starts the thread with every signal blocked (it inherits the mask), then restores the
 * caller's mask. On failure the process runs on without figures. */
static void
start_thread(void)
{
	pthread_t thread;
	pthread_attr_t attributes;
	sigset_t all, previous;

	if (pthread_attr_init(&attributes) != 0) {
		return;
	}
	(void)pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
	(void)pthread_attr_setstacksize(&attributes, METRICS_STACK_SIZE);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &previous);
	if (pthread_create(&thread, &attributes, sample_every_interval, NULL) == 0) {
		(void)pthread_setname_np(thread, METRICS_THREAD_NAME);
	}
	pthread_sigmask(SIG_SETMASK, &previous, NULL);
	pthread_attr_destroy(&attributes);
}

/* In the child of a fork, which has no thread but the one that forked: a thread of its own,
 * after jemalloc's handler has made allocation safe again in the child. */
static void
after_fork_in_child(void)
{
	__atomic_store_n(&published, false, __ATOMIC_RELAXED);
	start_thread();
}

/* A process that ends normally takes its file with it; one that is killed leaves it, and
 * jemalloc-check tells it from a live one by the pid's start time. */
__attribute__((destructor)) static void
remove_published_file(void)
{
	if (__atomic_load_n(&published, __ATOMIC_RELAXED)) {
		unpublish();
	}
}

__attribute__((constructor)) static void
start_metrics(void)
{
	const char *value;
	struct stat stderr_stat;

	interval_seconds = interval_from_environment();
	if (interval_seconds == 0) {
		return;
	}
	value = getenv("DYNO");
	if (value != NULL) {
		size_t i;
		for (i = 0; value[i] != '\0' && i < sizeof(dyno) - 1; i++) {
			dyno[i] = value[i] <= ' ' || value[i] > '~' ? '_' : value[i];
		}
		dyno[i] = '\0';
	}
	if (fstat(STDERR_FILENO, &stderr_stat) == 0) {
		stderr_device = stderr_stat.st_dev;
		stderr_inode = stderr_stat.st_ino;
		stderr_known = true;
	}
	/* jemalloc registers its fork handlers when it initializes: this one must come after. */
	free(malloc(1));
	pthread_atfork(NULL, NULL, after_fork_in_child);
	start_thread();
}
