/*
 * test_poll_event - KEVENT_POLL (docs/ABI.md sections 3, 4 and 5 item 4): pipes
 * and eventfd, ret_data[0] = the requested poll bits that fired,
 * edge-triggered delivery, MODIFY and REMOVE, ONESHOT, EINVAL for a file
 * that cannot be polled, POLL holding the file while registered, and POLL
 * on kevent descriptors served by the same daemon (another queue, the
 * queue itself, an epoll instance containing one) without deadlocking it.
 * (test_poll covers poll()/select()/epoll on the kevent fd itself.)
 */

#include "testutil.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>

#define DONE	KEVENT_RET_DONE
#define BROKEN	KEVENT_RET_BROKEN
#define PIN	KEVENT_POLL_POLLIN
#define POUT	KEVENT_POLL_POLLOUT
#define PHUP	KEVENT_POLL_POLLHUP

static int kfd;

static struct ukevent uk_poll(int fd, __u32 event, __u32 req_flags, __u32 u0)
{
	return uk_make(KEVENT_POLL, (__u32)fd, event, req_flags, u0, 0x9011);
}

static int add1(int q, struct ukevent *uk)
{
	return k_ctl(q, KEVENT_CTL_ADD, uk, 1, NULL);
}

static void t_pipe_read_end(void)
{
	struct ukevent uk, ev[4];
	int p[2];

	CHECK_RET(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe");
	uk = uk_poll(p[0], PIN, 0, 0x101);
	CHECK_RET(add1(kfd, &uk), 0, "pipe: ADD POLLIN on an empty pipe is queued");
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, "pipe: nothing before a write");
	CHECK_RET(write(p[1], "x", 1), 1, "pipe: write 1 byte");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "pipe: POLLIN delivered");
	CHECK_HEX(ev[0].ret_flags, DONE, "pipe: ret_flags DONE");
	CHECK_HEX(ev[0].ret_data[0], PIN, "pipe: ret_data[0] = POLLIN (the bits that fired)");
	CHECK_HEX(ev[0].ret_data[1], 0, "pipe: ret_data[1] = 0");
	CHECK_HEX(ev[0].event, PIN, "pipe: the requested mask comes back");
	CHECK_HEX(ev[0].user[0], 0x101, "pipe: user data comes back");
	CHECK_RET(k_wait(kfd, ev, 1, 200), 0, "pipe: edge-triggered, not re-reported");
	CHECK_RET(write(p[1], "y", 1), 1, "pipe: another write");
	CHECK_RET(write(p[1], "z", 1), 1, "pipe: and another");
	CHECK_RET(k_wait(kfd, ev, 4, 300), 1, "pipe: new activity, one coalesced delivery");

	/* POLLHUP fires only when asked for (2006: revents & event). */
	{
		char buf[8];

		while (read(p[0], buf, sizeof(buf)) > 0)
			;
	}
	close(p[1]);
	CHECK_RET(k_wait(kfd, ev, 1, 200), 0, "pipe: writer closed, POLLHUP not requested: nothing");
	uk = uk_poll(p[0], PIN | PHUP, 0, 0x102);
	CHECK_RET(add1(kfd, &uk), 1, "pipe: ADD POLLIN|POLLHUP after the writer closed: ready at once");
	CHECK_HEX(uk.ret_flags, DONE, "pipe: written back with DONE");
	CHECK_HEX(uk.ret_data[0], PHUP, "pipe: ret_data[0] = POLLHUP");
	CHECK_RET(k_remove1(kfd, uk_poll(p[0], PIN, 0, 0x101), NULL), 0, "pipe: REMOVE");
	close(p[0]);
}

static void t_pipe_write_end(void)
{
	struct ukevent uk, ev[1];
	char buf[4096];
	int p[2];

	CHECK_RET(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe");
	uk = uk_poll(p[1], POUT, 0, 0x103);
	CHECK_RET(add1(kfd, &uk), 1, "pipe: POLLOUT on an empty pipe is ready at once");
	CHECK_HEX(uk.ret_data[0], POUT, "pipe: ret_data[0] = POLLOUT");
	memset(buf, 'a', sizeof(buf));
	while (write(p[1], buf, sizeof(buf)) > 0)
		;
	uk = uk_poll(p[1], POUT, 0, 0x104);
	CHECK_RET(add1(kfd, &uk), 0, "pipe: POLLOUT on a full pipe is queued");
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, "pipe: not writable while full");
	while (read(p[0], buf, sizeof(buf)) > 0)
		;
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "pipe: POLLOUT delivered after the reader drained");
	CHECK_HEX(ev[0].ret_data[0], POUT, "pipe: ret_data[0] = POLLOUT");
	k_remove1(kfd, uk, NULL);
	close(p[0]);
	close(p[1]);
}

static void t_eventfd(void)
{
	struct ukevent uk, ev[1];
	uint64_t one = 1;
	int e = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

	CHECK(e >= 0, "eventfd");
	uk = uk_poll(e, PIN, 0, 0x105);
	CHECK_RET(add1(kfd, &uk), 0, "eventfd: ADD POLLIN at count 0 is queued");
	CHECK_RET(write(e, &one, 8), 8, "eventfd: write 1");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "eventfd: POLLIN delivered");
	CHECK_HEX(ev[0].ret_data[0], PIN, "eventfd: ret_data[0] = POLLIN");
	CHECK_RET(write(e, &one, 8), 8, "eventfd: write again");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "eventfd: delivered again (new activity)");
	k_remove1(kfd, uk, NULL);
	close(e);
}

static void t_wrong_fds(void)
{
	char path[] = "/tmp/kevent-poll-XXXXXX";
	struct ukevent uk;
	int f = mkstemp(path);

	CHECK(f >= 0, "a regular file");
	unlink(path);
	uk = uk_poll(f, PIN, 0, 0x106);
	CHECK_ERR(add1(kfd, &uk), EINVAL, "POLL on a regular file: EINVAL");
	CHECK_HEX(uk.ret_flags, BROKEN | DONE, "written back BROKEN|DONE");
	close(f);
	close(991);
	uk = uk_poll(991, PIN, 0, 0x107);
	CHECK_ERR(add1(kfd, &uk), ENODEV, "POLL on a closed fd number: ENODEV");
	CHECK_HEX(uk.ret_flags, BROKEN | DONE, "written back BROKEN|DONE");
}

static void t_modify_remove_oneshot(void)
{
	struct ukevent uk, ev[1];
	__u32 f = 0;
	int p[2];

	CHECK_RET(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe");
	write(p[1], "x", 1);
	/* The read end is never writable: POLLOUT stays queued. */
	uk = uk_poll(p[0], POUT, 0, 0x201);
	CHECK_RET(add1(kfd, &uk), 0, "ADD POLLOUT on a read end is queued");
	uk.event = PIN;
	CHECK_RET(k_ctl(kfd, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0, "MODIFY to POLLIN");
	CHECK_HEX(uk.ret_flags, DONE, "MODIFY writes back DONE");
	CHECK_RET(k_wait(kfd, ev, 1, 500), 1, "data buffered: ready right after MODIFY");
	CHECK_HEX(ev[0].event, PIN, "with the new mask");
	CHECK_HEX(ev[0].ret_data[0], PIN, "ret_data[0] = POLLIN");
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, "and only once");

	write(p[1], "y", 1);
	CHECK(poll_fd(kfd, POLLIN, 1000) & POLLIN, "the event is ready");
	CHECK_RET(k_remove1(kfd, uk, &f), 0, "REMOVE");
	CHECK_HEX(f, DONE, "found");
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, "REMOVE dropped the ready event");

	uk = uk_poll(p[0], PIN, KEVENT_REQ_ONESHOT, 0x202);
	{
		char buf[8];

		while (read(p[0], buf, sizeof(buf)) > 0)
			;
	}
	CHECK_RET(add1(kfd, &uk), 0, "ADD POLLIN ONESHOT");
	write(p[1], "z", 1);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "ONESHOT delivered");
	CHECK_RET(k_remove1(kfd, uk, &f), 0, "REMOVE after a ONESHOT delivery");
	CHECK_HEX(f, BROKEN | DONE, "ONESHOT was unregistered");
	close(p[0]);
	close(p[1]);
}

/* POLL holds the file while registered (2006 held it with fget). */
static void t_holds_the_file(void)
{
	struct ukevent uk, ev[1];
	int p[2];

	CHECK_RET(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe");
	uk = uk_poll(p[0], PIN, 0, 0x301);
	CHECK_RET(add1(kfd, &uk), 0, "hold: ADD POLLIN on the read end");
	close(p[0]);
	CHECK_RET(write(p[1], "x", 1), 1,
		  "hold: the reader closed its fd, but the registered kevent keeps the pipe open");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "hold: and it still fires");
	CHECK_RET(k_remove1(kfd, uk, NULL), 0, "hold: REMOVE");
	CHECK_ERR(write(p[1], "x", 1), EPIPE, "hold: after REMOVE the pipe has no reader");
	close(p[1]);

	CHECK_RET(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe");
	uk = uk_poll(p[0], PIN, KEVENT_REQ_ONESHOT, 0x302);
	CHECK_RET(add1(kfd, &uk), 0, "hold: ADD ONESHOT POLLIN");
	close(p[0]);
	CHECK_RET(write(p[1], "x", 1), 1, "hold: written while held");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "hold: ONESHOT delivered");
	CHECK_ERR(write(p[1], "x", 1), EPIPE, "hold: a delivered ONESHOT lets the file go");
	close(p[1]);
}

/* Another queue of the same daemon, one level deep. */
static void t_other_kevent_fd(void)
{
	int q2 = dev_open(t_dev, O_RDWR);
	struct ukevent uk, ev[2];
	long long t0;
	int r, got = 0;

	uk = uk_poll(q2, PIN, 0, 0x401);
	CHECK_RET(add1(kfd, &uk), 0, "kevent fd: ADD POLLIN on an idle queue is queued");
	CHECK_RET(k_wait(kfd, ev, 1, 200), 0, "kevent fd: idle queue, nothing");
	t0 = now_ms();
	CHECK_RET(k_add1(q2, uk_timer(60, KEVENT_REQ_ONESHOT, 0x402, 0)), 0,
		  "kevent fd: ADD a 60 ms timer to the watched queue");
	CHECK_RET(k_wait(kfd, ev, 1, 2000), 1, "kevent fd: POLLIN delivered");
	CHECK_TIME(now_ms() - t0, 55, 60, "kevent fd: when the timer fired");
	CHECK_HEX(ev[0].ret_data[0], PIN, "kevent fd: ret_data[0] = POLLIN");
	CHECK_HEX(ev[0].user[0], 0x401, "kevent fd: it is the POLL kevent");
	CHECK_RET(k_wait(q2, ev, 1, 500), 1, "kevent fd: the watched queue has its timer");
	CHECK_HEX(ev[0].user[0], 0x402, "kevent fd: the timer");
	CHECK_RET(k_wait(kfd, ev, 1, 200), 0, "kevent fd: collecting it is not new readiness");
	CHECK_RET(k_remove1(kfd, uk, NULL), 0, "kevent fd: REMOVE");

	/* Watched while already ready: at once, or as an event soon after. */
	CHECK_RET(k_add1(q2, uk_timer(10, KEVENT_REQ_ONESHOT, 0x403, 0)), 0, "kevent fd: timer 10 ms");
	sleep_ms(80);
	uk = uk_poll(q2, PIN, 0, 0x404);
	r = add1(kfd, &uk);
	CHECK(r == 0 || r == 1, "kevent fd: ADD POLLIN on a ready queue succeeds");
	if (r == 1)
		got = uk.ret_data[0] == PIN;
	else if (k_wait(kfd, ev, 1, 1000) == 1)
		got = ev[0].ret_data[0] == PIN && ev[0].user[0] == 0x404;
	CHECK(got, "kevent fd: a ready queue is reported POLLIN");
	k_remove1(kfd, uk, NULL);
	CHECK_RET(k_wait(q2, ev, 1, 100), 1, "kevent fd: collect the watched queue's timer");
	CHECK_RET(k_wait(kfd, ev, 1, 100), 0, "kevent fd: nothing else");

	/* The caller closes the watched queue: POLL holds it; REMOVE lets go. */
	uk = uk_poll(q2, PIN, 0, 0x405);
	CHECK_RET(add1(kfd, &uk), 0, "kevent fd: ADD again on the queue (collected: idle)");
	close(q2);
	CHECK_RET(k_remove1(kfd, uk, NULL), 0, "kevent fd: REMOVE after the caller closed it");
	CHECK_RET(k_add1(kfd, uk_timer(10, KEVENT_REQ_ONESHOT, 0x406, 0)), 0,
		  "kevent fd: the daemon still answers");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "kevent fd: and delivers");
}

/* The queue watching itself: the daemon must keep serving. A parked WAIT
 * would take each timer event the moment it fires, before the queue ever
 * looks readable, so wait with poll() and give the self POLL a moment to see
 * the readable queue before collecting without blocking. The timer is
 * periodic: each period is another chance on a loaded machine. */
static void t_own_kevent_fd(void)
{
	int q = dev_open(t_dev, O_RDWR);
	struct ukevent uk, tk, ev[4];
	long long t0 = now_ms();
	int timer = 0, self = 0, r;

	uk = uk_poll(q, PIN, 0, 0x501);
	CHECK_RET(add1(q, &uk), 0, "own fd: ADD POLLIN on the queue itself is queued");
	tk = uk_timer(40, 0, 0x502, 0);
	CHECK_RET(k_add1(q, tk), 0, "own fd: the daemon still answers (ADD a timer)");
	while (now_ms() - t0 < 5000 && !(timer && self)) {
		struct pollfd p = { .fd = q, .events = POLLIN };
		if (poll(&p, 1, 200) != 1)
			continue;
		usleep(50 * 1000);
		r = k_wait(q, ev, 4, 1);
		for (int i = 0; i < r; i++) {
			timer |= ev[i].user[0] == 0x502;
			self |= ev[i].user[0] == 0x501;
		}
	}
	CHECK(timer, "own fd: the timer is delivered");
	CHECK(self, "own fd: the queue's own POLLIN is delivered");
	CHECK_RET(k_remove1(q, uk, NULL), 0, "own fd: REMOVE (breaks the self reference)");
	CHECK_RET(k_remove1(q, tk, NULL), 0, "own fd: REMOVE the periodic timer");
	close(q);

	/* The daemon is alive and serving other queues. */
	q = dev_open(t_dev, O_RDWR);
	CHECK_RET(k_add1(q, uk_timer(20, KEVENT_REQ_ONESHOT, 0x503, 0)), 0, "own fd: a fresh queue works");
	CHECK_RET(k_wait(q, ev, 1, 1000), 1, "own fd: and delivers");
	close(q);
}

/* An epoll instance that contains a kevent fd: polling it polls the queue. */
static void t_epoll_of_kevent_fd(void)
{
	int q2 = dev_open(t_dev, O_RDWR), ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ee = { .events = EPOLLIN, .data.u32 = 7 };
	struct ukevent uk, ev[1];

	CHECK_RET(epoll_ctl(ep, EPOLL_CTL_ADD, q2, &ee), 0, "epoll: contains a kevent fd");
	uk = uk_poll(ep, PIN, 0, 0x601);
	CHECK_RET(add1(kfd, &uk), 0, "epoll: ADD POLLIN on that epoll fd is queued");
	CHECK_RET(k_add1(q2, uk_timer(30, KEVENT_REQ_ONESHOT, 0x602, 0)), 0,
		  "epoll: timer on the inner queue");
	CHECK_RET(k_wait(kfd, ev, 1, 2000), 1, "epoll: POLLIN delivered through two levels");
	CHECK_HEX(ev[0].ret_data[0], PIN, "epoll: ret_data[0] = POLLIN");
	CHECK_RET(k_remove1(kfd, uk, NULL), 0, "epoll: REMOVE");
	close(ep);
	close(q2);
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_poll_event");
	signal(SIGPIPE, SIG_IGN);
	kfd = dev_open(t_dev, O_RDWR);

	t_pipe_read_end();
	t_pipe_write_end();
	t_eventfd();
	t_wrong_fds();
	t_modify_remove_oneshot();
	t_holds_the_file();
	t_other_kevent_fd();
	t_own_kevent_fd();
	t_epoll_of_kevent_fd();

	close(kfd);
	return t_done();
}
