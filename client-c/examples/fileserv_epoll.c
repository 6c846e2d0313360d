/*
 * 	fileserv_epoll.c
 *
 * The twin of fileserv_kevent.c with sendfile(2) on epoll: every
 * connection gets the whole file, then is closed.  Connections are
 * non-blocking; sendfile() sends what fits, and EPOLLOUT (edge-triggered)
 * says when to go on.  Each connection keeps its own offset, so one file
 * descriptor serves them all.
 *
 * Usage: fileserv_epoll FILE PORT|HOST:PORT|[IPV6]:PORT|unix:PATH
 */

#include "echo_common.h"	/* echo_listen, echo_signals */

#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <sys/stat.h>

#define FE_BATCH	64
#define FE_MAX_FD	4096

struct fileserv_epoll {
	int lfd, file;
	off_t size;
	off_t off[FE_MAX_FD];	/* per connection, by fd; -1: none */
	unsigned long accepted, served, failed;
};

/* Sends what fits; 1 when the connection is finished (closed). */
static int fe_pump(struct fileserv_epoll *fs, int c)
{
	while (fs->off[c] < fs->size) {
		ssize_t n = sendfile(c, fs->file, &fs->off[c], (size_t)(fs->size - fs->off[c]));

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;	/* EPOLLOUT will say when */
		fs->failed++;
		goto done;
	}
	fs->served++;
done:
	fs->off[c] = -1;
	close(c);		/* also leaves the epoll set */
	return 1;
}

static void fe_accept_all(struct fileserv_epoll *fs, int ep)
{
	for (;;) {
		int c = accept4(fs->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct epoll_event ev = { .events = EPOLLOUT | EPOLLET };

		if (c < 0) {
			if (errno == EINTR)
				continue;
			return;
		}
		fs->accepted++;
		if (c >= FE_MAX_FD) {
			close(c);
			fs->failed++;
			continue;
		}
		fs->off[c] = 0;
		if (fe_pump(fs, c))
			continue;
		ev.data.fd = c;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) < 0) {
			fs->off[c] = -1;
			close(c);
			fs->failed++;
		}
	}
}

/* Serves until *stop is set.  Returns 0, or -1 with errno. */
static int fileserv_epoll_serve(struct fileserv_epoll *fs, volatile sig_atomic_t *stop)
{
	struct epoll_event evs[FE_BATCH];
	struct epoll_event lev = { .events = EPOLLIN, .data.fd = fs->lfd };
	struct stat st;
	int ep = epoll_create1(EPOLL_CLOEXEC), c;

	if (fstat(fs->file, &st) < 0)
		return -1;
	fs->size = st.st_size;
	for (c = 0; c < FE_MAX_FD; c++)
		fs->off[c] = -1;
	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, fs->lfd, &lev) < 0)
		return -1;
	while (!*stop) {
		int n = epoll_wait(ep, evs, FE_BATCH, 1000), i;

		if (n < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			c = evs[i].data.fd;
			if (c == fs->lfd)
				fe_accept_all(fs, ep);
			else if (c < FE_MAX_FD && fs->off[c] >= 0)
				fe_pump(fs, c);
		}
	}
	for (c = 0; c < FE_MAX_FD; c++)
		if (fs->off[c] >= 0)
			close(c);
	close(ep);
	return *stop ? 0 : -1;
}

#ifndef FILESERV_NO_MAIN
int main(int argc, char **argv)
{
	static struct fileserv_epoll fs;

	if (argc != 3) {
		fprintf(stderr, "usage: %s FILE PORT|HOST:PORT|[IPV6]:PORT|unix:PATH\n", argv[0]);
		return 2;
	}
	fs.file = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fs.file < 0) {
		fprintf(stderr, "fileserv_epoll: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	fs.lfd = echo_listen(argv[2]);
	if (fs.lfd < 0) {
		fprintf(stderr, "fileserv_epoll: %s: %s\n", argv[2], strerror(errno));
		return 1;
	}
	echo_signals();
	printf("fileserv_epoll: serving %s on %s\n", argv[1], argv[2]);
	fflush(stdout);
	if (fileserv_epoll_serve(&fs, &echo_stop_flag) < 0) {
		perror("fileserv_epoll");
		return 1;
	}
	printf("fileserv_epoll: %lu connections, %lu served, %lu failed\n",
	       fs.accepted, fs.served, fs.failed);
	return 0;
}
#endif
