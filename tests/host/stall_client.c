/*
 * stall_client - the clients of tests/host/stall.sh.
 *
 *   stall_client stuck DEV FILE   ADD whose ukevent array lies on a page of
 *                                 FILE (mapped; on hangfs it never arrives);
 *                                 the 12-byte header is on an ordinary page
 *                                 just before it. Prints "result R errno E"
 *                                 when the ioctl returns.
 *   stall_client uffd DEV SECS    the same with a userfaultfd page nobody
 *                                 serves (needs root or
 *                                 vm.unprivileged_userfaultfd); exits 77
 *                                 when userfaultfd is refused. The page is
 *                                 released after SECS s (uffd closed).
 *   stall_client rt DEV N         N ADD/WAIT round trips on one queue, each
 *                                 checked exactly (ADD of a ready-at-once
 *                                 ONESHOT timer of 1 ms ... then WAIT);
 *                                 prints "rt OK N" or the first mismatch.
 *   stall_client add DEV          one ADD of a never-firing timer; prints
 *                                 "result R errno E".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kevent.h"

static void put_timer(unsigned char *at, unsigned period, unsigned flags, unsigned u0)
{
	struct ukevent uk;

	memset(&uk, 0, sizeof(uk));
	uk.id.raw[0] = period;
	uk.type = KEVENT_TIMER;
	uk.event = KEVENT_TIMER_FIRED;
	uk.req_flags = flags;
	uk.user[0] = u0;
	memcpy(at, &uk, sizeof(uk));
}

static void put_hdr(unsigned char *at, unsigned cmd, unsigned num, unsigned timeout)
{
	struct kevent_user_control c = { .cmd = cmd, .num = num, .timeout = timeout };

	memcpy(at, &c, sizeof(c));
}

static int stuck_on(const char *dev, unsigned char *second)
{
	/* The header: the last 12 bytes of the ordinary page before. */
	unsigned char *arg = second - 12;
	int q = open(dev, O_RDWR), r;

	if (q < 0) {
		printf("open failed errno %d\n", errno);
		return 1;
	}
	put_hdr(arg, KEVENT_CTL_ADD, 1, 0);
	printf("calling\n");
	fflush(stdout);
	r = ioctl(q, KEVENT_USER_CTL, arg);
	printf("result %d errno %d\n", r, r < 0 ? errno : 0);
	fflush(stdout);
	return 0;
}

static unsigned char *two_pages(long pg)
{
	unsigned char *p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static int mode_stuck(const char *dev, const char *file)
{
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *p = two_pages(pg);
	int fd = open(file, O_RDWR);

	if (fd < 0 || mmap(p + pg, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
		perror("map the file");
		return 1;
	}
	return stuck_on(dev, p + pg);
}

static int closer_fd, closer_secs;

static void *closer(void *unused)
{
	(void)unused;
	sleep((unsigned)closer_secs);
	close(closer_fd);
	return NULL;
}

static int mode_uffd(const char *dev, int secs)
{
	pthread_t t;
	long pg = sysconf(_SC_PAGESIZE);
	unsigned char *p = two_pages(pg);
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg;
	int uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (uffd < 0 || ioctl(uffd, UFFDIO_API, &api) != 0) {
		printf("userfaultfd refused errno %d\n", errno);
		return 77;
	}
	/* The second page becomes missing and registered. */
	madvise(p + pg, pg, MADV_DONTNEED);
	memset(&reg, 0, sizeof(reg));
	reg.range.start = (unsigned long)(p + pg);
	reg.range.len = pg;
	reg.mode = UFFDIO_REGISTER_MODE_MISSING;
	if (ioctl(uffd, UFFDIO_REGISTER, &reg) != 0) {
		printf("UFFDIO_REGISTER refused errno %d\n", errno);
		return 77;
	}
	/* Nobody serves the fault; after `secs` a thread closes the uffd,
	 * which wakes the fault (the page is then an ordinary one). */
	closer_fd = uffd;
	closer_secs = secs;
	if (pthread_create(&t, NULL, closer, NULL) != 0)
		return 1;
	return stuck_on(dev, p + pg);
}

static int mode_rt(const char *dev, int n)
{
	unsigned char b[12 + 40 * 2];
	int q = open(dev, O_RDWR), i, r;

	if (q < 0) {
		printf("open failed errno %d\n", errno);
		return 1;
	}
	for (i = 0; i < n; i++) {
		struct ukevent out;
		struct kevent_user_control h;

		put_hdr(b, KEVENT_CTL_ADD, 1, 0);
		put_timer(b + 12, 1, KEVENT_REQ_ONESHOT, (unsigned)i);
		r = ioctl(q, KEVENT_USER_CTL, b);
		memcpy(&h, b, 12);
		if (r != 0 || h.num != 0) {
			printf("rt ADD %d: result %d num %u errno %d\n", i, r, h.num, errno);
			return 1;
		}
		put_hdr(b, KEVENT_CTL_WAIT, 2, 0);
		r = ioctl(q, KEVENT_USER_WAIT, b);
		memcpy(&h, b, 12);
		memcpy(&out, b + 12, 40);
		if (r != 1 || h.num != 1 || out.user[0] != (unsigned)i ||
		    out.ret_flags != KEVENT_RET_DONE) {
			printf("rt WAIT %d: result %d num %u user %u ret_flags %#x errno %d\n",
			       i, r, h.num, out.user[0], out.ret_flags, errno);
			return 1;
		}
	}
	printf("rt OK %d\n", n);
	return 0;
}

static int mode_add(const char *dev)
{
	unsigned char b[12 + 40];
	int q = open(dev, O_RDWR), r;

	if (q < 0) {
		printf("result -1 errno %d\n", errno);
		return 0;
	}
	put_hdr(b, KEVENT_CTL_ADD, 1, 0);
	put_timer(b + 12, 1000000, 0, 1);
	r = ioctl(q, KEVENT_USER_CTL, b);
	printf("result %d errno %d\n", r, r < 0 ? errno : 0);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 4 && strcmp(argv[1], "stuck") == 0)
		return mode_stuck(argv[2], argv[3]);
	if (argc >= 4 && strcmp(argv[1], "uffd") == 0)
		return mode_uffd(argv[2], atoi(argv[3]));
	if (argc >= 4 && strcmp(argv[1], "rt") == 0)
		return mode_rt(argv[2], atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[1], "add") == 0)
		return mode_add(argv[2]);
	fprintf(stderr, "usage: see the header of stall_client.c\n");
	return 2;
}
