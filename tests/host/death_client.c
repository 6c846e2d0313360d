/*
 * death_client - the client side of tests/host/death.sh (compiled by it).
 *
 *   death_client hold DEV      two queues A and B polling each other (POLL
 *                              kevents on the daemon's own device) and a
 *                              WAIT on A; prints "ready", then, when the
 *                              WAIT fails, "err NAME" (the errno) and exits.
 *   death_client user DEV N    becomes nobody (uid/gid 65534) and forks N
 *                              processes that each hold queues polling each
 *                              other and themselves, timers, a SOCKET and a
 *                              POLL on a pipe; prints "ready N" once all are
 *                              set up and waits to be killed (it leads its
 *                              own process group: the test kills the group).
 *   death_client victim DEV FILE   as nobody: POLL on FILE (a file of a FUSE
 *                              server that never answers POLL); prints
 *                              "ready" when the ADD returned, then waits.
 *   death_client other DEV [UID]   (as UID if given) POLL on an epoll set
 *                              holding a pipe and POLL on another kevent
 *                              queue (both offloaded), makes both ready and
 *                              prints "fired N" with the events a WAIT of
 *                              up to 5 s collected (2 expected).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kevent.h"

struct req {
	struct kevent_user_control c;
	struct ukevent uk[4];
} __attribute__((packed));

static int add(int kfd, __u32 type, __u32 id0, __u32 event, __u32 user)
{
	struct req r;

	memset(&r, 0, sizeof(r));
	r.c.cmd = KEVENT_CTL_ADD;
	r.c.num = 1;
	r.uk[0].type = type;
	r.uk[0].id.raw[0] = id0;
	r.uk[0].event = event;
	r.uk[0].user[0] = user;
	return ioctl(kfd, KEVENT_USER_CTL, &r);
}

static int wait1(int kfd, unsigned timeout)
{
	struct req r;

	memset(&r, 0, sizeof(r));
	r.c.cmd = KEVENT_CTL_WAIT;
	r.c.num = 1;
	r.c.timeout = timeout;
	return ioctl(kfd, KEVENT_USER_WAIT, &r);
}

static int setup(const char *dev)
{
	int a = open(dev, O_RDWR), b = open(dev, O_RDWR), c = open(dev, O_RDWR);
	int p[2], s[2];

	if (a < 0 || b < 0 || c < 0 || pipe(p) != 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0)
		return -1;
	if (add(a, KEVENT_POLL, (__u32)b, KEVENT_POLL_POLLIN, 1) < 0 ||
	    add(b, KEVENT_POLL, (__u32)a, KEVENT_POLL_POLLIN, 2) < 0 ||
	    add(c, KEVENT_POLL, (__u32)c, KEVENT_POLL_POLLIN, 3) < 0 ||
	    add(a, KEVENT_TIMER, 1000000, KEVENT_TIMER_FIRED, 4) < 0 ||
	    add(b, KEVENT_TIMER, 1000000, KEVENT_TIMER_FIRED, 5) < 0 ||
	    add(a, KEVENT_SOCKET, (__u32)s[0], KEVENT_SOCKET_RECV, 6) < 0 ||
	    add(c, KEVENT_POLL, (__u32)p[0], KEVENT_POLL_POLLIN, 7) < 0)
		return -1;
	return a;
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "hold") == 0) {
		int a = setup(argv[2]);

		if (a < 0) {
			printf("setup failed: %s\n", strerror(errno));
			return 1;
		}
		printf("ready\n");
		fflush(stdout);
		for (;;) {
			if (wait1(a, 30000) < 0) {
				const char *n = strerrorname_np(errno);

				printf("err %s\n", n ? n : "?");
				return 0;
			}
		}
	}
	if (argc == 4 && strcmp(argv[1], "user") == 0) {
		int n = atoi(argv[3]), i, ready[2];
		char c;

		if (setpgid(0, 0) != 0 || pipe(ready) != 0 || setgroups(0, NULL) != 0 ||
		    setgid(65534) != 0 || setuid(65534) != 0) {
			printf("cannot become nobody: %s\n", strerror(errno));
			return 1;
		}
		for (i = 0; i < n; i++) {
			if (fork() == 0) {
				close(ready[0]);
				c = setup(argv[2]) < 0 ? 'f' : 'r';
				if (write(ready[1], &c, 1) != 1)
					_exit(1);
				for (;;)
					pause();
			}
		}
		close(ready[1]);
		for (i = 0; i < n; i++)
			if (read(ready[0], &c, 1) != 1 || c != 'r') {
				printf("a process failed to set up\n");
				fflush(stdout);
				break;
			}
		if (i == n)
			printf("ready %d\n", n);
		fflush(stdout);
		for (;;)
			pause();
	}
	if (argc == 4 && strcmp(argv[1], "victim") == 0) {
		int f, kq, r;

		if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
			return 1;
		f = open(argv[3], O_RDONLY);
		kq = open(argv[2], O_RDWR);
		if (f < 0 || kq < 0) {
			printf("open failed: %s\n", strerror(errno));
			return 1;
		}
		r = add(kq, KEVENT_POLL, (__u32)f, KEVENT_POLL_POLLIN, 9);
		printf("ready %d\n", r);
		fflush(stdout);
		for (;;)
			pause();
	}
	if ((argc == 3 || argc == 4) && strcmp(argv[1], "other") == 0) {
		int a, b, ep, p[2], got = 0;
		struct epoll_event ev = { .events = EPOLLIN };
		long long t0;

		if (argc == 4) {
			int uid = atoi(argv[3]);

			if (setgroups(0, NULL) != 0 || setgid(uid) != 0 || setuid(uid) != 0)
				return 1;
		}
		a = open(argv[2], O_RDWR);
		b = open(argv[2], O_RDWR);
		ep = epoll_create1(0);
		if (a < 0 || b < 0 || ep < 0 || pipe(p) != 0 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0)
			return 1;
		if (add(a, KEVENT_POLL, (__u32)ep, KEVENT_POLL_POLLIN, 1) < 0 ||
		    add(a, KEVENT_POLL, (__u32)b, KEVENT_POLL_POLLIN, 2) < 0 ||
		    add(b, KEVENT_TIMER, 10, KEVENT_TIMER_FIRED, 3) < 0 ||
		    write(p[1], "x", 1) != 1)
			return 1;
		t0 = time(NULL);
		while (got != 3 && time(NULL) - t0 < 5) {
			struct req w;
			int r, i;

			memset(&w, 0, sizeof(w));
			w.c.cmd = KEVENT_CTL_WAIT;
			w.c.num = 4;
			w.c.timeout = 1000;
			r = ioctl(a, KEVENT_USER_WAIT, &w);
			if (r < 0)
				return 1;
			for (i = 0; i < r; i++)
				if (w.uk[i].user[0] == 1 || w.uk[i].user[0] == 2)
					got |= (int)w.uk[i].user[0];
		}
		printf("fired %d\n", got == 3 ? 2 : got == 0 ? 0 : 1);
		return 0;
	}
	fprintf(stderr, "usage: death_client hold DEV | user DEV N | victim DEV FILE | other DEV [UID]\n");
	return 2;
}
