/*
 * 	fileserv_kevent.c
 *
 * A static file server on /dev/kevent: every connection gets the whole
 * file through aio_sendfile() (a KEVENT_AIO kevent: the daemon splices
 * the file to the socket), then is closed.  The listening socket has a
 * KEVENT_SOCKET ACCEPT kevent; the AIO completion names the socket in
 * ret_data[0].  fileserv_epoll.c is the same server with sendfile(2) on
 * epoll.
 *
 * The file is sent from offset 0 whatever its descriptor's position, so
 * one descriptor serves every connection at once.  aio_sendfile returns 1
 * when it is done inside the call (an empty file): no event follows then.
 * A finished AIO kevent is unregistered when delivered, so nothing needs
 * removing.
 *
 * Usage: fileserv_kevent [-d DEVICE] FILE PORT|HOST:PORT|[IPV6]:PORT|unix:PATH
 */

#include "echo_common.h"	/* echo_listen, echo_signals */

#include <sys/ioctl.h>
#include <linux/types.h>
#include "kevent.h"

#define FK_BATCH	64

struct fileserv {
	int lfd, file;
	unsigned long accepted, served, failed;
};

/* One ADD through KEVENT_USER_CTL: 0 queued, 1 ready at once, -1. */
static int fk_add(int kfd, struct ukevent *uk)
{
	unsigned char b[sizeof(struct kevent_user_control) + sizeof(struct ukevent)];
	struct kevent_user_control h = { .cmd = KEVENT_CTL_ADD, .num = 1, .timeout = 0 };
	int r;

	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), uk, sizeof(*uk));
	r = ioctl(kfd, KEVENT_USER_CTL, b);
	memcpy(uk, b + sizeof(h), sizeof(*uk));
	return r;
}

/* Starts sending the file to a new connection. */
static void fk_start(struct fileserv *fs, int kfd, int c)
{
	int r = aio_sendfile(kfd, fs->file, c, 0, 0);

	if (r == 0)
		return;			/* queued: the AIO event closes it */
	if (r == 1)
		fs->served++;		/* done inside the call */
	else
		fs->failed++;
	close(c);
}

/* Accepts every waiting connection, then (re-)arms ACCEPT. */
static int fk_accept_all(struct fileserv *fs, int kfd, int *armed)
{
	for (;;) {
		struct ukevent uk;
		int c = accept4(fs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), r;

		if (c >= 0) {
			fs->accepted++;
			fk_start(fs, kfd, c);
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != ECONNABORTED)
			return -1;
		if (*armed)
			return 0;
		memset(&uk, 0, sizeof(uk));
		uk.type = KEVENT_SOCKET;
		uk.event = KEVENT_SOCKET_ACCEPT;
		uk.id.raw[0] = (__u32)fs->lfd;
		r = fk_add(kfd, &uk);
		if (r < 0)
			return -1;
		*armed = r == 0;	/* 1: connections arrived meanwhile */
	}
}

/* Serves until *stop is set.  Returns 0, or -1 with errno. */
static int fileserv_kevent_serve(const char *dev, struct fileserv *fs,
				 volatile sig_atomic_t *stop)
{
	static unsigned char b[sizeof(struct kevent_user_control) +
			       FK_BATCH * sizeof(struct ukevent)];
	int kfd = open(dev, O_RDWR | O_CLOEXEC), armed = 0, r = 0;

	if (kfd < 0 || fk_accept_all(fs, kfd, &armed) < 0)
		return -1;
	while (!*stop && r == 0) {
		struct kevent_user_control h = {
			.cmd = KEVENT_CTL_WAIT, .num = FK_BATCH, .timeout = 0,
		};
		int n, i;

		memcpy(b, &h, sizeof(h));
		n = ioctl(kfd, KEVENT_USER_WAIT, b);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -1;
			break;
		}
		for (i = 0; i < n; i++) {
			struct ukevent uk;

			memcpy(&uk, b + sizeof(h) + (size_t)i * sizeof(uk), sizeof(uk));
			if (uk.type == KEVENT_SOCKET) {
				if (fk_accept_all(fs, kfd, &armed) < 0)
					r = -1;
			} else if (uk.type == KEVENT_AIO) {
				/* The whole file went out (or the transfer broke). */
				if (uk.ret_flags & KEVENT_RET_BROKEN)
					fs->failed++;
				else
					fs->served++;
				close((int)uk.ret_data[0]);
			}
		}
	}
	close(kfd);
	return r;
}

#ifndef FILESERV_NO_MAIN
int main(int argc, char **argv)
{
	const char *dev = "/dev/kevent";
	static struct fileserv fs;
	int i = 1;

	if (argc > 2 && strcmp(argv[1], "-d") == 0) {
		dev = argv[2];
		i = 3;
	}
	if (i != argc - 2) {
		fprintf(stderr, "usage: %s [-d DEVICE] FILE PORT|HOST:PORT|[IPV6]:PORT|unix:PATH\n",
			argv[0]);
		return 2;
	}
	fs.file = open(argv[i], O_RDONLY | O_CLOEXEC);
	if (fs.file < 0) {
		fprintf(stderr, "fileserv_kevent: %s: %s\n", argv[i], strerror(errno));
		return 1;
	}
	fs.lfd = echo_listen(argv[i + 1]);
	if (fs.lfd < 0) {
		fprintf(stderr, "fileserv_kevent: %s: %s\n", argv[i + 1], strerror(errno));
		return 1;
	}
	echo_signals();
	printf("fileserv_kevent: serving %s on %s, events from %s\n", argv[i], argv[i + 1], dev);
	fflush(stdout);
	if (fileserv_kevent_serve(dev, &fs, &echo_stop_flag) < 0) {
		fprintf(stderr, "fileserv_kevent: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	printf("fileserv_kevent: %lu connections, %lu served, %lu failed\n",
	       fs.accepted, fs.served, fs.failed);
	return 0;
}
#endif
