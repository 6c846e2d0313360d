/*
 * test_poll - poll(), select() and epoll on the kevent descriptor
 * (docs/ABI.md section 3): POLLIN|POLLRDNORM while the ready list is not empty,
 * never POLLOUT; a sleeper wakes when a timer fires.
 */

#include "testutil.h"

#include <sys/epoll.h>
#include <sys/select.h>

#define ALL_EVENTS (POLLIN | POLLRDNORM | POLLRDBAND | POLLPRI | POLLOUT | \
		    POLLWRNORM | POLLWRBAND)

static int fd;

static void test_poll(void)
{
	struct ukevent ev[2];
	long long t0, dt;
	int r;

	CHECK_HEX(poll_fd(fd, ALL_EVENTS, 0), 0,
		  "poll timeout 0, nothing registered: no events (no POLLOUT)");

	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x100, 0)), 0,
		  "ADD a timer that does not fire during the test");
	CHECK_HEX(poll_fd(fd, ALL_EVENTS, 0), 0,
		  "poll timeout 0, registered but not fired: 0");

	t0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(80, KEVENT_REQ_ONESHOT, 0x101, 0)), 0,
		  "ADD oneshot 80 ms timer");
	{
		struct pollfd p = { .fd = fd, .events = ALL_EVENTS, .revents = 0 };

		r = poll(&p, 1, 5000);
		dt = now_ms() - t0;
		CHECK_RET(r, 1, "blocking poll returns 1 when the timer fires");
		CHECK_HEX(p.revents, POLLIN | POLLRDNORM,
			  "revents exactly POLLIN|POLLRDNORM");
		CHECK_TIME(dt, 78, 80, "blocking poll woke after ~80 ms");
	}
	CHECK_HEX(poll_fd(fd, ALL_EVENTS, 0), POLLIN | POLLRDNORM,
		  "still readable while the event is not collected");
	CHECK_HEX(poll_fd(fd, POLLIN, 0), POLLIN, "poll(POLLIN) gives POLLIN only");
	CHECK_RET(k_wait(fd, ev, 2, 100), 1, "WAIT collects the event");
	CHECK_HEX(poll_fd(fd, ALL_EVENTS, 0), 0, "not readable once collected");

	/* Blocking poll with only POLLOUT asked: times out. */
	t0 = now_ms();
	CHECK_HEX(poll_fd(fd, POLLOUT | POLLWRNORM, 200), 0,
		  "poll(POLLOUT) times out: never writable");
	CHECK_TIME(now_ms() - t0, 198, 200, "poll(POLLOUT) slept its timeout");
}

/* select() for reading and writing on fd alone, timeout 0. */
static int select_now(int fd, fd_set *rd, fd_set *wr)
{
	struct timeval tv = { 0, 0 };

	FD_ZERO(rd);
	FD_ZERO(wr);
	FD_SET(fd, rd);
	FD_SET(fd, wr);
	return select(fd + 1, rd, wr, NULL, &tv);
}

static void test_select(void)
{
	struct ukevent ev[1];
	struct timeval tv;
	fd_set rd, wr;
	long long t0;
	int r;

	CHECK_RET(select_now(fd, &rd, &wr), 0,
		  "select timeout 0, nothing ready: 0 (not writable)");

	t0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(60, KEVENT_REQ_ONESHOT, 0x201, 0)), 0,
		  "ADD oneshot 60 ms timer");
	FD_ZERO(&rd);
	FD_SET(fd, &rd);
	tv.tv_sec = 5;
	tv.tv_usec = 0;
	r = select(fd + 1, &rd, NULL, NULL, &tv);
	CHECK_RET(r, 1, "blocking select wakes when the timer fires");
	CHECK(FD_ISSET(fd, &rd), "select: fd readable");
	CHECK_TIME(now_ms() - t0, 58, 60, "select woke after ~60 ms");

	r = select_now(fd, &rd, &wr);
	CHECK_RET(r, 1, "select with an event ready: exactly 1 bit set");
	CHECK(FD_ISSET(fd, &rd) && !FD_ISSET(fd, &wr), "select: readable, not writable");
	CHECK_RET(k_wait(fd, ev, 1, 100), 1, "WAIT collects it");
}

static void test_epoll(void)
{
	struct epoll_event e, out[4];
	struct ukevent ev[1];
	long long t0;
	int ep, r;

	ep = epoll_create1(EPOLL_CLOEXEC);
	CHECK(ep >= 0, "epoll_create1");
	if (ep < 0)
		return;
	memset(&e, 0, sizeof(e));
	e.events = EPOLLIN | EPOLLRDNORM | EPOLLOUT | EPOLLWRNORM | EPOLLPRI;
	e.data.u64 = 0x1234;
	CHECK_RET(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e), 0, "epoll_ctl ADD the kevent fd");
	CHECK_RET(epoll_wait(ep, out, 4, 0), 0, "epoll_wait timeout 0, nothing ready: 0");

	t0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(70, KEVENT_REQ_ONESHOT, 0x301, 0)), 0,
		  "ADD oneshot 70 ms timer");
	memset(out, 0, sizeof(out));
	r = epoll_wait(ep, out, 4, 5000);
	CHECK_RET(r, 1, "epoll_wait wakes when the timer fires");
	CHECK_TIME(now_ms() - t0, 68, 70, "epoll_wait woke after ~70 ms");
	CHECK_HEX(out[0].events, EPOLLIN | EPOLLRDNORM, "epoll events EPOLLIN|EPOLLRDNORM");
	CHECK_HEX(out[0].data.u64, 0x1234, "epoll data");
	CHECK_RET(k_wait(fd, ev, 1, 100), 1, "WAIT collects it");
	CHECK_RET(epoll_wait(ep, out, 4, 0), 0, "epoll_wait after collecting: 0");

	/* Edge-triggered registration is woken too. */
	e.events = EPOLLIN | EPOLLET;
	CHECK_RET(epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e), 0, "epoll_ctl MOD to EPOLLIN|EPOLLET");
	t0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(50, KEVENT_REQ_ONESHOT, 0x302, 0)), 0,
		  "ADD oneshot 50 ms timer");
	r = epoll_wait(ep, out, 4, 5000);
	CHECK_RET(r, 1, "EPOLLET epoll_wait wakes when the timer fires");
	CHECK_HEX(out[0].events, EPOLLIN, "EPOLLET events EPOLLIN");
	CHECK_TIME(now_ms() - t0, 48, 50, "EPOLLET woke after ~50 ms");
	CHECK_RET(k_wait(fd, ev, 1, 100), 1, "WAIT collects it");
	close(ep);
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_poll");
	fd = dev_open(t_dev, O_RDWR);

	test_poll();
	test_select();
	test_epoll();

	close(fd);
	return t_done();
}
