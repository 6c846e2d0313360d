/*
 * 	echo_epoll.c
 *
 * The twin of echo_kevent.c on epoll, for comparison: the same server
 * (echo_common.h) with an edge-triggered epoll loop.  Every connection is
 * registered once for EPOLLIN|EPOLLOUT|EPOLLRDHUP with EPOLLET; input is
 * read until EAGAIN, and output that did not fit is finished when EPOLLOUT
 * reports the socket writable again.
 *
 * Usage: echo_epoll PORT|HOST:PORT|[IPV6]:PORT|unix:PATH
 */

#include "echo_common.h"

#include <sys/epoll.h>

#define EE_BATCH	64

static void ee_accept_all(struct echo_server *s, int ep)
{
	struct echo_conn *c;

	while ((c = echo_accept(s)) != NULL) {
		struct epoll_event ev = {
			.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
			.data.fd = c->fd,
		};

		if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
			echo_close(s, c);
		/* Anything already waiting is reported by the ADD (EPOLLET). */
	}
}

/* Serves lfd until *stop is set.  Returns 0, or -1 with errno. */
static int echo_epoll_serve(struct echo_server *s, volatile sig_atomic_t *stop)
{
	struct epoll_event evs[EE_BATCH];
	struct epoll_event lev = { .events = EPOLLIN, .data.fd = s->lfd };
	int ep = epoll_create1(EPOLL_CLOEXEC);

	if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, s->lfd, &lev) < 0)
		return -1;
	while (!*stop) {
		int n = epoll_wait(ep, evs, EE_BATCH, 1000), i;

		if (n < 0 && errno != EINTR)
			break;
		for (i = 0; i < n; i++) {
			struct echo_conn *c;
			enum echo_next next;

			if (evs[i].data.fd == s->lfd) {
				ee_accept_all(s, ep);
				continue;
			}
			c = s->conn[evs[i].data.fd];
			if (c == NULL)
				continue;
			if (c->off < c->len)
				next = evs[i].events & (EPOLLOUT | EPOLLERR | EPOLLHUP) ?
					echo_on_writable(s, c) : ECHO_WRITE;
			else
				next = echo_on_readable(s, c);
			if (next == ECHO_CLOSE)
				echo_close(s, c);	/* close() leaves the epoll set */
		}
	}
	echo_close_all(s);
	close(ep);
	return *stop ? 0 : -1;
}

#ifndef ECHO_NO_MAIN
int main(int argc, char **argv)
{
	const char *addr = echo_args(argc, argv, NULL);
	static struct echo_server s;
	int lfd = echo_listen(addr);

	if (lfd < 0) {
		fprintf(stderr, "echo_epoll: %s: %s\n", addr, strerror(errno));
		return 1;
	}
	echo_signals();
	echo_init(&s, lfd);
	printf("echo_epoll: listening on %s\n", addr);
	fflush(stdout);
	if (echo_epoll_serve(&s, &echo_stop_flag) < 0) {
		perror("echo_epoll");
		return 1;
	}
	printf("echo_epoll: %lu connections, %lu bytes echoed\n", s.accepted, s.bytes);
	return 0;
}
#endif
