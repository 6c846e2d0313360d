/*
 * bench_aio - throughput of aio_recv/aio_send (KEVENT_NAIO through the
 * daemon) beside plain recv/send on the same sockets, for 4 KiB and 1 MiB
 * transfers over a UNIX stream pair and TCP loopback.  Not a test: it
 * prints numbers and never fails on timing.
 *
 *   bench_aio DEVPATH [SCALE]   (SCALE multiplies the transfer counts)
 *
 * Each row moves COUNT transfers of SIZE bytes one after the other: the
 * plain rows call recv()/send() until SIZE bytes moved; the aio rows call
 * aio_recv()/aio_send() and, when queued (0), WAIT for the completion.  A
 * peer thread writes (for the receive rows) or reads (for the send rows)
 * as fast as it can.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "kevent.h"

static int kfd;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int pair(int tcp, int sv[2])
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int l, one = 1;

	if (!tcp)
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 1) ||
	    getsockname(l, (void *)&a, &len))
		return -1;
	sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (connect(sv[0], (void *)&a, sizeof(a)))
		return -1;
	sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return sv[1] < 0 ? -1 : 0;
}

struct peer {
	int fd;
	size_t total;
};

static void *pump_out(void *arg)
{
	struct peer *p = arg;
	static __thread char b[256 * 1024];
	size_t done = 0;

	while (done < p->total) {
		size_t k = p->total - done < sizeof(b) ? p->total - done : sizeof(b);
		ssize_t n = send(p->fd, b, k, MSG_NOSIGNAL);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return NULL;
}

static void *pump_in(void *arg)
{
	struct peer *p = arg;
	static __thread char b[256 * 1024];
	size_t done = 0;

	while (done < p->total) {
		ssize_t n = recv(p->fd, b, sizeof(b), 0);

		if (n <= 0)
			break;
		done += (size_t)n;
	}
	return NULL;
}

static int wait_one(void)
{
	struct {
		struct kevent_user_control c;
		struct ukevent uk[1];
	} __attribute__((packed)) w;

	for (;;) {
		memset(&w, 0, sizeof(w));
		w.c.cmd = KEVENT_CTL_WAIT;
		w.c.num = 1;
		w.c.timeout = 0;
		int r = ioctl(kfd, KEVENT_USER_WAIT, &w);

		if (r == 1)
			return w.uk[0].ret_flags & KEVENT_RET_BROKEN ? -1 : 0;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

/* One row: returns MB/s, or -1 on failure. */
static double row(int tcp, int aio, int sending, size_t size, int count, double *us)
{
	char *buf = malloc(size);
	struct peer p;
	pthread_t th;
	int sv[2], i, bad = 0;
	double t0, t;

	if (buf == NULL || pair(tcp, sv) != 0)
		return -1;
	memset(buf, 'k', size);
	p.fd = sv[1];
	p.total = size * (size_t)count;
	pthread_create(&th, NULL, sending ? pump_in : pump_out, &p);
	t0 = now();
	for (i = 0; i < count && !bad; i++) {
		if (aio) {
			int r = sending ? aio_send(kfd, sv[0], buf, size, 0)
					: aio_recv(kfd, sv[0], buf, size, 0);

			if (r == 0)
				bad = wait_one() < 0;
			else
				bad = r != 1;
		} else {
			size_t done = 0;

			while (done < size) {
				ssize_t n = sending ? send(sv[0], buf + done, size - done, MSG_NOSIGNAL)
						    : recv(sv[0], buf + done, size - done, 0);

				if (n <= 0) {
					bad = 1;
					break;
				}
				done += (size_t)n;
			}
		}
	}
	t = now() - t0;
	shutdown(sv[0], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[0]);
	close(sv[1]);
	free(buf);
	if (bad)
		return -1;
	*us = t / count * 1e6;
	return (double)size * count / t / 1e6;
}

int main(int argc, char **argv)
{
	const char *dev = argc > 1 ? argv[1] : "/dev/kevent";
	int scale = argc > 2 ? atoi(argv[2]) : 1;
	size_t sizes[] = { 4096, 1024 * 1024 };
	int counts[] = { 4000, 200 };
	int s, tcp, dir, aio;

	kfd = open(dev, O_RDWR | O_CLOEXEC);
	if (kfd < 0) {
		perror(dev);
		return 1;
	}
	if (scale < 1)
		scale = 1;
	printf("%-6s %-8s %-14s %10s %12s\n", "socket", "size", "call", "MB/s", "us/transfer");
	for (tcp = 0; tcp <= 1; tcp++)
		for (s = 0; s < 2; s++)
			for (dir = 0; dir <= 1; dir++)
				for (aio = 0; aio <= 1; aio++) {
					static const char *names[2][2] = {
						{ "recv", "aio_recv" }, { "send", "aio_send" } };
					double us = 0, mbs = row(tcp, aio, dir, sizes[s],
								 counts[s] * scale, &us);

					printf("%-6s %-8s %-14s ", tcp ? "tcp" : "unix",
					       sizes[s] == 4096 ? "4 KiB" : "1 MiB", names[dir][aio]);
					if (mbs < 0)
						printf("%10s\n", "failed");
					else
						printf("%10.1f %12.1f\n", mbs, us);
				}
	close(kfd);
	return 0;
}
