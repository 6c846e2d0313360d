/*
 * 	echo_common.h
 *
 * Everything the two echo servers share except the event loop: the
 * listening socket, the connection table and the non-blocking echo logic.
 * echo_kevent.c drives it with /dev/kevent (KEVENT_SOCKET kevents),
 * echo_epoll.c with epoll; both are edge-triggered, so a connection is
 * always read until EAGAIN before waiting again.
 *
 * Address syntax: "PORT" (all IPv4 addresses), "HOST:PORT",
 * "[IPV6]:PORT", "unix:PATH" or "unix:@NAME" (abstract).
 */

#ifndef ECHO_COMMON_H
#define ECHO_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define ECHO_BUF	16384	/* bytes read (and echoed) at a time */
#define ECHO_MAX_FD	4096	/* connections are indexed by fd */

/* One client connection. */
struct echo_conn {
	int fd;
	unsigned gen;		/* tells a reused fd number apart */
	size_t off, len;	/* output still to send: buf[off..len) */
	int recv_armed;		/* echo_kevent: RECV kevent registered */
	int send_armed;		/* echo_kevent: SEND kevent registered */
	char buf[ECHO_BUF];
};

/* What a connection waits for next. */
enum echo_next {
	ECHO_READ,		/* everything echoed: wait for input */
	ECHO_WRITE,		/* output pending: wait until writable */
	ECHO_CLOSE,		/* end of file or error: close it */
};

struct echo_server {
	int lfd;
	unsigned gen;
	unsigned long accepted, closed, bytes;
	unsigned long waits;	/* times output had to wait for the socket */
	struct echo_conn *conn[ECHO_MAX_FD];
};

/* A non-blocking listening socket for addr (see the syntax above). */
static inline int echo_listen(const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len;
	char host[256];
	const char *port;
	int fd, one = 1;

	memset(&ss, 0, sizeof(ss));
	if (strncmp(addr, "unix:", 5) == 0) {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		const char *path = addr + 5;
		size_t n = strlen(path);

		if (n == 0 || n >= sizeof(un->sun_path)) {
			errno = EINVAL;
			return -1;
		}
		un->sun_family = AF_UNIX;
		memcpy(un->sun_path, path, n);
		if (path[0] == '@')
			un->sun_path[0] = '\0';	/* abstract name */
		else
			unlink(path);
		len = offsetof(struct sockaddr_un, sun_path) + n;
	} else {
		port = strrchr(addr, ':');
		if (port == NULL) {
			snprintf(host, sizeof(host), "0.0.0.0");
			port = addr;
		} else {
			snprintf(host, sizeof(host), "%.*s", (int)(port - addr), addr);
			port++;
		}
		if (host[0] == '[') {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			memmove(host, host + 1, strlen(host));
			host[strcspn(host, "]")] = '\0';
			in6->sin6_family = AF_INET6;
			in6->sin6_port = htons((unsigned short)atoi(port));
			if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
				errno = EINVAL;
				return -1;
			}
			len = sizeof(*in6);
		} else {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			in->sin_family = AF_INET;
			in->sin_port = htons((unsigned short)atoi(port));
			if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
				errno = EINVAL;
				return -1;
			}
			len = sizeof(*in);
		}
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (ss.ss_family != AF_UNIX)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

static inline void echo_init(struct echo_server *s, int lfd)
{
	memset(s, 0, sizeof(*s));
	s->lfd = lfd;
}

/* Accepts one connection: NULL with errno EAGAIN when none is waiting. */
static inline struct echo_conn *echo_accept(struct echo_server *s)
{
	struct echo_conn *c;
	int fd;

	for (;;) {
		fd = accept4(s->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && errno == EINTR)
			continue;
		if (fd < 0)
			return NULL;
		if (fd < ECHO_MAX_FD)
			break;
		close(fd);	/* table full: refuse */
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	c->fd = fd;
	c->gen = ++s->gen;
	s->conn[fd] = c;
	s->accepted++;
	return c;
}

/* Sends the pending output. */
static inline enum echo_next echo_flush(struct echo_server *s, struct echo_conn *c)
{
	while (c->off < c->len) {
		ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);

		if (n > 0) {
			c->off += (size_t)n;
			s->bytes += (unsigned long)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && errno == EAGAIN) {
			s->waits++;
			return ECHO_WRITE;
		} else {
			return ECHO_CLOSE;
		}
	}
	c->off = c->len = 0;
	return ECHO_READ;
}

/* Input may be waiting: echo it until the socket has no more (EAGAIN). */
static inline enum echo_next echo_on_readable(struct echo_server *s, struct echo_conn *c)
{
	if (c->off < c->len)
		return ECHO_WRITE;	/* first get rid of what we have */
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, sizeof(c->buf), 0);
		enum echo_next next;

		if (n == 0)
			return ECHO_CLOSE;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? ECHO_READ : ECHO_CLOSE;
		}
		c->off = 0;
		c->len = (size_t)n;
		next = echo_flush(s, c);
		if (next != ECHO_READ)
			return next;
	}
}

/* The socket became writable: finish the output, then read again. */
static inline enum echo_next echo_on_writable(struct echo_server *s, struct echo_conn *c)
{
	enum echo_next next = echo_flush(s, c);

	return next == ECHO_READ ? echo_on_readable(s, c) : next;
}

static inline void echo_close(struct echo_server *s, struct echo_conn *c)
{
	s->conn[c->fd] = NULL;
	close(c->fd);
	free(c);
	s->closed++;
}

/* Closes every connection (shutdown). */
static inline void echo_close_all(struct echo_server *s)
{
	for (int fd = 0; fd < ECHO_MAX_FD; fd++)
		if (s->conn[fd] != NULL)
			echo_close(s, s->conn[fd]);
}

/* The command line: [-d DEVICE] ADDRESS (-d only when dev is not NULL). */
static inline const char *echo_args(int argc, char **argv, const char **dev)
{
	int i = 1;

	if (dev != NULL && argc > 2 && strcmp(argv[1], "-d") == 0) {
		*dev = argv[2];
		i = 3;
	}
	if (i != argc - 1) {
		fprintf(stderr, "usage: %s %sPORT|HOST:PORT|[IPV6]:PORT|unix:PATH\n",
			argv[0], dev != NULL ? "[-d DEVICE] " : "");
		exit(2);
	}
	return argv[i];
}

static volatile sig_atomic_t echo_stop_flag;

static inline void echo_on_signal(int sig)
{
	(void)sig;
	echo_stop_flag = 1;
}

/* SIGINT/SIGTERM end the loop; no SA_RESTART, so a sleeping wait returns. */
static inline void echo_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = echo_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
}

#endif /* ECHO_COMMON_H */
