/*
 * 	echo_kevent.c
 *
 * An echo server on /dev/kevent: the listening socket has a KEVENT_SOCKET
 * ACCEPT kevent, every connection a RECV kevent, and a connection whose
 * output does not fit its socket buffer a ONESHOT SEND kevent until it
 * does.  echo_epoll.c is the same server on epoll; everything but the
 * event loop is in echo_common.h.
 *
 * Two rules of the 2006 ABI shape the loop:
 *  - ADD of something that is already ready returns 1 and does NOT
 *    register it (even without ONESHOT): the caller handles it at once and
 *    adds it again (arm_recv, arm_accept);
 *  - kevents are edge-triggered: a RECV event means "new data arrived", so
 *    a connection is read until EAGAIN every time.
 * A WAIT with timeout 0 returns as soon as one event is ready (or after a
 * second); a non-zero timeout would wait for all num events.
 *
 * Usage: echo_kevent [-d DEVICE] PORT|HOST:PORT|[IPV6]:PORT|unix:PATH
 */

#include "echo_common.h"

#include <sys/ioctl.h>
#include <linux/types.h>
#include "kevent.h"

#define EK_BATCH	64

/* One ukevent through KEVENT_USER_CTL; *uk receives the written-back one. */
static int ek_ctl(int kfd, unsigned cmd, struct ukevent *uk)
{
	unsigned char b[sizeof(struct kevent_user_control) + sizeof(struct ukevent)];
	struct kevent_user_control h = { .cmd = cmd, .num = 1, .timeout = 0 };
	int r;

	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), uk, sizeof(*uk));
	r = ioctl(kfd, KEVENT_USER_CTL, b);
	memcpy(uk, b + sizeof(h), sizeof(*uk));
	return r;
}

/*
 * The kevent of a connection: RECV has id.raw[1] = 0, SEND id.raw[1] = 1,
 * and user = {fd, generation}, so the two keys differ and an event of a
 * closed connection is never taken for a new one on the same fd number.
 */
static struct ukevent ek_conn(const struct echo_conn *c, __u32 event)
{
	struct ukevent uk;

	memset(&uk, 0, sizeof(uk));
	uk.type = KEVENT_SOCKET;
	uk.event = event;
	uk.id.raw[0] = (__u32)c->fd;
	uk.id.raw[1] = event == KEVENT_SOCKET_SEND;
	uk.req_flags = event == KEVENT_SOCKET_SEND ? KEVENT_REQ_ONESHOT : 0;
	uk.user[0] = (__u32)c->fd;
	uk.user[1] = c->gen;
	return uk;
}

static void ek_drop(struct echo_server *s, int kfd, struct echo_conn *c)
{
	struct ukevent uk;

	if (c->recv_armed) {
		uk = ek_conn(c, KEVENT_SOCKET_RECV);
		ek_ctl(kfd, KEVENT_CTL_REMOVE, &uk);
	}
	if (c->send_armed) {
		uk = ek_conn(c, KEVENT_SOCKET_SEND);
		ek_ctl(kfd, KEVENT_CTL_REMOVE, &uk);
	}
	echo_close(s, c);
}

/* Registers RECV, echoing whatever is already there first. */
static enum echo_next arm_recv(struct echo_server *s, int kfd, struct echo_conn *c)
{
	while (!c->recv_armed) {
		struct ukevent uk = ek_conn(c, KEVENT_SOCKET_RECV);
		int r = ek_ctl(kfd, KEVENT_CTL_ADD, &uk);
		enum echo_next next;

		if (r == 0) {
			c->recv_armed = 1;
		} else if (r == 1) {
			/* Ready at once, so not registered: echo, then retry. */
			next = echo_on_readable(s, c);
			if (next != ECHO_READ)
				return next;
		} else {
			return ECHO_CLOSE;
		}
	}
	return ECHO_READ;
}

/* Registers a ONESHOT SEND, or continues at once if already writable. */
static enum echo_next arm_send(struct echo_server *s, int kfd, struct echo_conn *c)
{
	struct ukevent uk;
	int r;

	if (c->send_armed)
		return ECHO_WRITE;
	uk = ek_conn(c, KEVENT_SOCKET_SEND);
	r = ek_ctl(kfd, KEVENT_CTL_ADD, &uk);
	if (r == 0) {
		c->send_armed = 1;
		return ECHO_WRITE;
	}
	return r == 1 ? echo_on_writable(s, c) : ECHO_CLOSE;
}

/* Brings the connection's kevents in line with what it waits for. */
static void settle(struct echo_server *s, int kfd, struct echo_conn *c, enum echo_next next)
{
	for (;;) {
		switch (next) {
		case ECHO_READ:
			next = arm_recv(s, kfd, c);
			if (next == ECHO_READ)
				return;
			break;
		case ECHO_WRITE:
			next = arm_send(s, kfd, c);
			if (next == ECHO_WRITE && c->send_armed)
				return;
			break;
		case ECHO_CLOSE:
			ek_drop(s, kfd, c);
			return;
		}
	}
}

/* Accepts every waiting connection, then makes sure ACCEPT is registered. */
static int accept_all(struct echo_server *s, int kfd, int *armed)
{
	for (;;) {
		struct echo_conn *c;
		struct ukevent uk;
		int r;

		while ((c = echo_accept(s)) != NULL)
			settle(s, kfd, c, ECHO_READ);
		if (errno != EAGAIN && errno != ECONNABORTED)
			return -1;
		if (*armed)
			return 0;
		memset(&uk, 0, sizeof(uk));
		uk.type = KEVENT_SOCKET;
		uk.event = KEVENT_SOCKET_ACCEPT;
		uk.id.raw[0] = (__u32)s->lfd;
		r = ek_ctl(kfd, KEVENT_CTL_ADD, &uk);
		if (r < 0)
			return -1;
		*armed = r == 0;	/* 1: connections arrived meanwhile */
	}
}

/*
 * Serves lfd through the kevent device dev until *stop is set.  Returns 0,
 * or -1 with errno when the device or the listener fails.
 */
static int echo_kevent_serve(const char *dev, struct echo_server *s,
			     volatile sig_atomic_t *stop)
{
	static unsigned char b[sizeof(struct kevent_user_control) +
			       EK_BATCH * sizeof(struct ukevent)];
	int kfd = open(dev, O_RDWR | O_CLOEXEC), armed = 0, r = 0;

	if (kfd < 0 || accept_all(s, kfd, &armed) < 0)
		return -1;
	while (!*stop) {
		struct kevent_user_control h = {
			.cmd = KEVENT_CTL_WAIT, .num = EK_BATCH, .timeout = 0,
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
			struct echo_conn *c;

			memcpy(&uk, b + sizeof(h) + (size_t)i * sizeof(uk), sizeof(uk));
			if ((int)uk.id.raw[0] == s->lfd && uk.event == KEVENT_SOCKET_ACCEPT) {
				if (accept_all(s, kfd, &armed) < 0)
					r = -1;
				continue;
			}
			c = uk.user[0] < ECHO_MAX_FD ? s->conn[uk.user[0]] : NULL;
			if (c == NULL || c->gen != uk.user[1])
				continue;	/* an event of a closed connection */
			if (uk.ret_flags & KEVENT_RET_BROKEN) {
				/* Delivered broken: that kevent is gone already. */
				if (uk.event == KEVENT_SOCKET_SEND)
					c->send_armed = 0;
				else
					c->recv_armed = 0;
				ek_drop(s, kfd, c);
			} else if (uk.event == KEVENT_SOCKET_SEND) {
				c->send_armed = 0;	/* ONESHOT: delivered, gone */
				settle(s, kfd, c, echo_on_writable(s, c));
			} else {
				settle(s, kfd, c, echo_on_readable(s, c));
			}
		}
		if (r < 0)
			break;
	}
	echo_close_all(s);
	close(kfd);
	return r;
}

#ifndef ECHO_NO_MAIN
int main(int argc, char **argv)
{
	const char *dev = "/dev/kevent";
	const char *addr = echo_args(argc, argv, &dev);
	static struct echo_server s;
	int lfd = echo_listen(addr);

	if (lfd < 0) {
		fprintf(stderr, "echo_kevent: %s: %s\n", addr, strerror(errno));
		return 1;
	}
	echo_signals();
	echo_init(&s, lfd);
	printf("echo_kevent: listening on %s, events from %s\n", addr, dev);
	fflush(stdout);
	if (echo_kevent_serve(dev, &s, &echo_stop_flag) < 0) {
		fprintf(stderr, "echo_kevent: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	printf("echo_kevent: %lu connections, %lu bytes echoed\n", s.accepted, s.bytes);
	return 0;
}
#endif
