/*
 * latency - round-trip latency distribution (p50/p99) of one ioctl.
 * Not a test: numbers only.
 *
 *   latency kevent DEVPATH N     WAIT on an empty O_NONBLOCK queue, and
 *                                ADD+REMOVE of one timer (timed per pair)
 *   latency null PATH N          one ioctl on a file served by nullfuse
 *   latency eventfd N            a ping-pong between two threads over two
 *                                eventfds (one round trip = two wakeups)
 *
 * Prints lines "NAME p50_us p99_us" (the caller formats the table). Pinning
 * is done by the caller (taskset).
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "kevent.h"

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *name, double *s, int n)
{
	qsort(s, (size_t)n, sizeof(*s), cmp);
	printf("%s %.1f %.1f\n", name, s[n / 2], s[(int)(n * 0.99)]);
}

struct req {
	struct kevent_user_control c;
	struct ukevent uk[1];
} __attribute__((packed));

static int bench_kevent(const char *dev, int n)
{
	int fd = open(dev, O_RDWR | O_NONBLOCK), i;
	double *s = calloc((size_t)n, sizeof(double)), t;
	struct req r;

	if (fd < 0 || !s) {
		perror(dev);
		return 1;
	}
	memset(&r, 0, sizeof(r));
	for (i = -n / 10; i < n; i++) {	/* the first tenth warms up */
		r.c.cmd = KEVENT_CTL_WAIT;
		r.c.num = 1;
		r.c.timeout = 0;
		t = now_us();
		ioctl(fd, KEVENT_USER_WAIT, &r);
		if (i >= 0)
			s[i] = now_us() - t;
	}
	report("wait", s, n);
	for (i = -n / 10; i < n; i++) {
		r.c.num = 1;
		r.uk[0].type = KEVENT_TIMER;
		r.uk[0].id.raw[0] = 1000000;
		r.uk[0].event = KEVENT_TIMER_FIRED;
		t = now_us();
		r.c.cmd = KEVENT_CTL_ADD;
		r.uk[0].ret_flags = 0;
		ioctl(fd, KEVENT_USER_CTL, &r);
		r.c.cmd = KEVENT_CTL_REMOVE;
		r.c.num = 1;
		r.uk[0].ret_flags = 0;
		ioctl(fd, KEVENT_USER_CTL, &r);
		if (i >= 0)
			s[i] = now_us() - t;
	}
	report("add_remove", s, n);
	close(fd);
	return 0;
}

static int bench_null(const char *path, int n)
{
	int fd = open(path, O_RDWR), i;
	double *s = calloc((size_t)n, sizeof(double)), t;
	struct kevent_user_control c = { KEVENT_CTL_WAIT, 0, 0 };

	if (fd < 0 || !s) {
		perror(path);
		return 1;
	}
	for (i = -n / 10; i < n; i++) {
		t = now_us();
		ioctl(fd, KEVENT_USER_WAIT, &c);
		if (i >= 0)
			s[i] = now_us() - t;
	}
	report("null", s, n);
	close(fd);
	return 0;
}

static int efd_a, efd_b, pp_n;

static void *ponger(void *unused)
{
	uint64_t v;
	int i;

	(void)unused;
	for (i = 0; i < pp_n; i++) {
		if (read(efd_a, &v, 8) != 8)
			break;
		v = 1;
		if (write(efd_b, &v, 8) != 8)
			break;
	}
	return NULL;
}

static int bench_eventfd(int n)
{
	double *s = calloc((size_t)n + n / 10, sizeof(double)), t;
	pthread_t th;
	uint64_t v;
	int i;

	efd_a = eventfd(0, EFD_CLOEXEC);
	efd_b = eventfd(0, EFD_CLOEXEC);
	pp_n = n + n / 10;
	pthread_create(&th, NULL, ponger, NULL);
	for (i = -n / 10; i < n; i++) {
		v = 1;
		t = now_us();
		if (write(efd_a, &v, 8) != 8 || read(efd_b, &v, 8) != 8)
			return 1;
		if (i >= 0)
			s[i] = now_us() - t;
	}
	pthread_join(th, NULL);
	report("eventfd", s, n);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "kevent") == 0)
		return bench_kevent(argv[2], atoi(argv[3]));
	if (argc >= 4 && strcmp(argv[1], "null") == 0)
		return bench_null(argv[2], atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "eventfd") == 0)
		return bench_eventfd(atoi(argv[2]));
	fprintf(stderr, "usage: see latency.c\n");
	return 2;
}
