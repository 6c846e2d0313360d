/*
 * lat - latency of one ioctl round trip, p50 and p99, for scripts/bench.
 * Not a test: it prints numbers and never fails on timing.
 *
 *   lat wait|addrm|echo DEVPATH [ITERATIONS [CPU]]
 *
 *   wait   WAIT on an empty O_NONBLOCK queue (nothing is ever ready)
 *   addrm  ADD of a timer, then REMOVE of it: each ioctl is one sample
 *   echo   a 64-byte _IOWR('k', 9) ioctl, for a null server that echoes it
 *
 * After 1000 warm-up calls, ITERATIONS (default 20000) calls in 5 rounds;
 * prints "P50 P99" in microseconds: the median of the rounds' medians and
 * the median of the rounds' 99th percentiles. CPU >= 0 pins the caller.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "kevent.h"

#define ROUNDS 5

struct req {
	struct kevent_user_control c;
	struct ukevent uk[1];
} __attribute__((packed));

struct echo {
	unsigned char b[64];
};
#define ECHO_IOC _IOWR('k', 9, struct echo)

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

static int one(const char *what, int fd, long i)
{
	struct req r;
	struct echo e;

	if (!strcmp(what, "echo")) {
		memset(&e, (int)(i & 0x7f), sizeof(e));
		if (ioctl(fd, ECHO_IOC, &e) < 0 || e.b[63] != (unsigned char)(i & 0x7f))
			return -1;
		return 0;
	}
	memset(&r, 0, sizeof(r));
	if (!strcmp(what, "wait")) {
		r.c.cmd = KEVENT_CTL_WAIT;
		r.c.num = 1;
		return ioctl(fd, KEVENT_USER_WAIT, &r) == 0 ? 0 : -1;
	}
	r.c.cmd = i & 1 ? KEVENT_CTL_REMOVE : KEVENT_CTL_ADD;
	r.c.num = 1;
	r.uk[0].type = KEVENT_TIMER;
	r.uk[0].id.raw[0] = 1000000;
	r.uk[0].event = KEVENT_TIMER_FIRED;
	return ioctl(fd, KEVENT_USER_CTL, &r) >= 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *what, *dev;
	long n, per, i, r;
	int fd, cpu;
	double *t, p50[ROUNDS], p99[ROUNDS], t0;

	if (argc < 3) {
		fprintf(stderr, "usage: lat wait|addrm|echo DEVPATH [ITERATIONS [CPU]]\n");
		return 2;
	}
	what = argv[1];
	dev = argv[2];
	n = argc > 3 ? atol(argv[3]) : 20000;
	cpu = argc > 4 ? atoi(argv[4]) : -1;
	per = n / ROUNDS;
	if (per < 10) {
		fprintf(stderr, "lat: too few iterations\n");
		return 2;
	}
	if (cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			perror("sched_setaffinity");
			return 1;
		}
	}
	fd = open(dev, O_RDWR | O_NONBLOCK);
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	for (i = 0; i < 1000; i++) {
		if (one(what, fd, i)) {
			perror("warm-up ioctl");
			return 1;
		}
	}
	t = malloc(per * sizeof(*t));
	if (!t)
		return 1;
	for (r = 0; r < ROUNDS; r++) {
		for (i = 0; i < per; i++) {
			t0 = now_us();
			if (one(what, fd, i)) {
				perror("ioctl");
				return 1;
			}
			t[i] = now_us() - t0;
		}
		qsort(t, per, sizeof(*t), cmp);
		p50[r] = t[per / 2];
		p99[r] = t[per * 99 / 100];
	}
	qsort(p50, ROUNDS, sizeof(double), cmp);
	qsort(p99, ROUNDS, sizeof(double), cmp);
	printf("%.1f %.1f\n", p50[ROUNDS / 2], p99[ROUNDS / 2]);
	close(fd);
	return 0;
}
