/*
 * bench - round-trip cost of the kevent ioctls against a running daemon.
 * Not a test: it prints numbers and never fails on timing.
 *
 *   bench DEVPATH [ITERATIONS]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <sys/ioctl.h>
#include "kevent.h"

struct req {
	struct kevent_user_control c;
	struct ukevent uk[64];
} __attribute__((packed));

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/kevent";
	int n = argc > 2 ? atoi(argv[2]) : 20000;
	struct req r;
	double t0, t;
	int fd, i, j;

	fd = open(dev, O_RDWR | O_NONBLOCK);
	if (fd < 0) {
		perror(dev);
		return 1;
	}
	memset(&r, 0, sizeof(r));

	/* An empty non-blocking WAIT: the cheapest full round trip. */
	t0 = now();
	for (i = 0; i < n; i++) {
		r.c.cmd = KEVENT_CTL_WAIT;
		r.c.num = 1;
		r.c.timeout = 0;
		ioctl(fd, KEVENT_USER_WAIT, &r);
	}
	t = now() - t0;
	printf("empty WAIT (O_NONBLOCK): %8.1f us/ioctl  %8.0f ioctls/s\n", t / n * 1e6, n / t);

	/* ADD + REMOVE of one timer. */
	t0 = now();
	for (i = 0; i < n; i++) {
		r.c.cmd = i & 1 ? KEVENT_CTL_REMOVE : KEVENT_CTL_ADD;
		r.c.num = 1;
		r.uk[0].type = KEVENT_TIMER;
		r.uk[0].id.raw[0] = 1000000;
		r.uk[0].event = KEVENT_TIMER_FIRED;
		r.uk[0].ret_flags = 0;
		ioctl(fd, KEVENT_USER_CTL, &r);
	}
	t = now() - t0;
	printf("ADD/REMOVE 1 timer:      %8.1f us/ioctl  %8.0f ioctls/s\n", t / n * 1e6, n / t);

	/* Batches of 64. */
	t0 = now();
	for (i = 0; i < n / 64; i++) {
		r.c.cmd = i & 1 ? KEVENT_CTL_REMOVE : KEVENT_CTL_ADD;
		r.c.num = 64;
		for (j = 0; j < 64; j++) {
			r.uk[j].type = KEVENT_TIMER;
			r.uk[j].id.raw[0] = 1000000;
			r.uk[j].event = KEVENT_TIMER_FIRED;
			r.uk[j].user[0] = j;
			r.uk[j].ret_flags = 0;
		}
		ioctl(fd, KEVENT_USER_CTL, &r);
	}
	t = now() - t0;
	printf("ADD/REMOVE 64 timers:    %8.1f us/ukevent\n", t / (n / 64 * 64) * 1e6);
	close(fd);
	return 0;
}
