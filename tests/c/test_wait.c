/*
 * test_wait - WAIT (docs/ABI.md section 3).
 *
 * hdr.num is the most events returned; timeout != 0 sleeps until num events
 * are ready or timeout ms passed; timeout 0 sleeps until one is ready or
 * 1 s passed; a queue opened with O_NONBLOCK does not sleep.  Events come
 * in FIFO order, each whole ukevent at arg + 12 + i*40, hdr.num = count =
 * return value.  KEVENT_USER_WAIT ignores hdr.cmd; KEVENT_USER_CTL with
 * cmd WAIT waits too.
 */

#include "testutil.h"

static int fd;

static void test_nothing_registered(void)
{
	struct ukevent ev[1];
	long long t0, dt;

	t0 = now_ms();
	CHECK_RET(k_wait(fd, ev, 1, 0), 0, "WAIT timeout 0, nothing registered: 0");
	dt = now_ms() - t0;
	CHECK_TIME(dt, 998, 1000, "WAIT timeout 0 means 1 s (ms elapsed)");

	t0 = now_ms();
	CHECK_RET(k_wait(fd, ev, 1, 300), 0, "WAIT timeout 300, nothing registered: 0");
	dt = now_ms() - t0;
	CHECK_TIME(dt, 298, 300, "WAIT timeout 300 sleeps 300 ms");
}

static void test_num_zero(void)
{
	struct ukevent ev[2];
	struct kevent_user_control h;
	long long t0;

	/* num = 0 events are always "ready": no sleep (2006 behaviour). */
	t0 = now_ms();
	CHECK_RET(k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, 0, 2000, ev, 0, &h),
		  0, "WAIT num=0 timeout 2000 returns 0");
	CHECK_TIME(now_ms() - t0, 0, 0, "WAIT num=0 does not sleep");
	CHECK_EQ(h.num, 0, "WAIT num=0: hdr.num 0");

	/* A ready event is not consumed by num = 0. */
	CHECK_RET(k_add1(fd, uk_timer(20, KEVENT_REQ_ONESHOT, 0x101, 0)), 0,
		  "ADD oneshot 20 ms timer");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "timer fired");
	CHECK_RET(k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, 0, 100, ev, 0, &h),
		  0, "WAIT num=0 with one ready returns 0");
	CHECK_RET(k_wait(fd, ev, 2, 100), 1, "the ready event is still there");
	CHECK_HEX(ev[0].user[0], 0x101, "and it is the 20 ms timer");
}

static void test_ctl_cmd_wait(void)
{
	struct ukevent ev[2];
	struct kevent_user_control h;
	long long t0 = now_ms();

	CHECK_RET(k_add1(fd, uk_timer(50, KEVENT_REQ_ONESHOT, 0x201, 0)), 0,
		  "ADD oneshot 50 ms timer");
	memset(ev, 0, sizeof(ev));
	CHECK_RET(k_call(fd, KEVENT_USER_CTL, KEVENT_CTL_WAIT, 2, 0, ev, 2, &h), 1,
		  "KEVENT_USER_CTL cmd=WAIT returns 1");
	CHECK_TIME(now_ms() - t0, 48, 50, "KEVENT_USER_CTL cmd=WAIT slept until the timer");
	CHECK_EQ(h.num, 1, "KEVENT_USER_CTL cmd=WAIT: hdr.num 1");
	CHECK_HEX(ev[0].user[0], 0x201, "KEVENT_USER_CTL cmd=WAIT delivered the timer");
}

static void test_user_wait_ignores_cmd(void)
{
	struct ukevent ev[2];
	struct kevent_user_control h;
	long long t0;

	/* cmd = ADD with a timer in the array: KEVENT_USER_WAIT only waits. */
	ev[0] = uk_timer(30, 0, 0x301, 0);
	t0 = now_ms();
	CHECK_RET(k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_ADD, 1, 200, ev, 1, &h), 0,
		  "KEVENT_USER_WAIT with cmd=ADD waits: returns 0");
	CHECK_TIME(now_ms() - t0, 198, 200, "KEVENT_USER_WAIT cmd=ADD slept the timeout");
	CHECK_EQ(h.num, 0, "KEVENT_USER_WAIT cmd=ADD: hdr.num 0");
	CHECK_RET(k_wait(fd, ev, 1, 300), 0,
		  "KEVENT_USER_WAIT cmd=ADD registered nothing");

	CHECK_RET(k_add1(fd, uk_timer(20, KEVENT_REQ_ONESHOT, 0x302, 0)), 0,
		  "ADD oneshot 20 ms timer");
	memset(ev, 0, sizeof(ev));
	CHECK_RET(k_call(fd, KEVENT_USER_WAIT, 99, 1, 2000, ev, 1, &h), 1,
		  "KEVENT_USER_WAIT with cmd=99 waits: returns 1");
	CHECK_HEX(ev[0].user[0], 0x302, "KEVENT_USER_WAIT cmd=99 delivered the timer");
}

static void test_timeout_waits_for_num(void)
{
	struct ukevent ev[3];
	long long t0 = now_ms(), dt;

	CHECK_RET(k_add1(fd, uk_timer(300, KEVENT_REQ_ONESHOT, 0x402, 0)), 0,
		  "ADD oneshot 300 ms");
	CHECK_RET(k_add1(fd, uk_timer(100, KEVENT_REQ_ONESHOT, 0x401, 0)), 0,
		  "ADD oneshot 100 ms");
	CHECK_RET(k_wait(fd, ev, 2, 3000), 2, "WAIT num=2 timeout 3000 returns 2");
	dt = now_ms() - t0;
	CHECK_TIME(dt, 298, 300, "WAIT num=2 slept until both were ready");
	CHECK_HEX(ev[0].user[0], 0x401, "first delivered: the 100 ms timer");
	CHECK_HEX(ev[1].user[0], 0x402, "second delivered: the 300 ms timer");

	t0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(50, KEVENT_REQ_ONESHOT, 0x403, 0)), 0,
		  "ADD oneshot 50 ms");
	CHECK_RET(k_wait(fd, ev, 2, 400), 1,
		  "WAIT num=2 timeout 400 with one timer returns 1");
	CHECK_TIME(now_ms() - t0, 398, 400, "WAIT num=2 with one event sleeps the whole timeout");
	CHECK_HEX(ev[0].user[0], 0x403, "it is the 50 ms timer");
}

static void test_timeout_zero_returns_at_first(void)
{
	struct ukevent ev[5];
	long long t0 = now_ms();

	CHECK_RET(k_add1(fd, uk_timer(100, KEVENT_REQ_ONESHOT, 0x501, 0)), 0,
		  "ADD oneshot 100 ms");
	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, KEVENT_REQ_ONESHOT, 0x502, 0)), 0,
		  "ADD oneshot that never fires");
	CHECK_RET(k_wait(fd, ev, 5, 0), 1, "WAIT num=5 timeout 0 returns 1");
	CHECK_TIME(now_ms() - t0, 98, 100,
		   "WAIT timeout 0 returned as soon as one was ready");
	CHECK_HEX(ev[0].user[0], 0x501, "it is the 100 ms timer");

	/* One already ready, num=2, timeout 0: at once. */
	CHECK_RET(k_add1(fd, uk_timer(20, KEVENT_REQ_ONESHOT, 0x503, 0)), 0,
		  "ADD oneshot 20 ms");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "20 ms timer fired");
	t0 = now_ms();
	CHECK_RET(k_wait(fd, ev, 2, 0), 1, "WAIT num=2 timeout 0 with one ready: 1");
	CHECK_TIME(now_ms() - t0, 0, 0, "returned at once");
}

static void test_max_num(void)
{
	struct ukevent k[3], ev[3];
	struct kevent_user_control h;
	long long t0;
	int i;

	for (i = 0; i < 3; i++)
		k[i] = uk_timer(30, KEVENT_REQ_ONESHOT, 0x601 + i, 0);
	CHECK_RET(k_ctl(fd, KEVENT_CTL_ADD, k, 3, &h), 0, "ADD 3 oneshot 30 ms timers");
	sleep_ms(30 + t_slack);
	CHECK(poll_fd(fd, POLLIN, 0) & POLLIN, "3 timers ready");

	memset(ev, 0, sizeof(ev));
	CHECK_RET(k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, 2, 1, ev, 3, &h), 2,
		  "3 ready, WAIT num=2 returns 2");
	CHECK_EQ(h.num, 2, "hdr.num 2");
	CHECK_EQ(ev[2].type, 0, "third slot not written");

	t0 = now_ms();
	CHECK_RET(k_call(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, 2, 200, ev, 2, &h), 1,
		  "then WAIT num=2 timeout 200 returns 1");
	CHECK_EQ(h.num, 1, "hdr.num 1");
	CHECK_TIME(now_ms() - t0, 198, 200, "WAIT num=2 with 1 ready slept the timeout");

	CHECK_RET(k_wait(fd, ev, 2, 50), 0, "then WAIT returns 0");
}

/* FIFO: A ready before B ready before C; collected A, B, C. */
static void test_fifo(void)
{
	struct ukevent ev[3];

	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0xA, 0)), 0, "ADD A");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "A ready");
	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0xB, 0)), 0,
		  "ADD B after A is ready");
	sleep_ms(30 + t_slack);
	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0xC, 0)), 0,
		  "ADD C after B is ready");
	sleep_ms(30 + t_slack);
	CHECK_RET(k_wait(fd, ev, 3, 100), 3, "WAIT num=3 gets A, B, C");
	CHECK_HEX(ev[0].user[0], 0xA, "FIFO: first is A");
	CHECK_HEX(ev[1].user[0], 0xB, "FIFO: second is B");
	CHECK_HEX(ev[2].user[0], 0xC, "FIFO: third is C");
}

static int some_object;

static void test_whole_ukevent(void)
{
	unsigned char *b = kb_alloc(3);
	struct kevent_user_control h;
	struct ukevent k, e, fill;
	long long t0, t1;
	unsigned i;
	int r;

	k = uk_timer(40, KEVENT_REQ_ONESHOT, 0, 0);
	k.id.raw[1] = 0xA5A5A5A5;
	k.ptr = &some_object;
	k.ret_data[0] = 0x11111111;
	k.ret_data[1] = 0x22222222;
	t0 = now_ms();
	CHECK_RET(k_add1(fd, k), 0, "ADD oneshot 40 ms, raw[1] and ptr set");

	memset(&fill, 0x5A, sizeof(fill));
	kb_hdr(b, KEVENT_CTL_WAIT, 3, 0);
	for (i = 0; i < 3; i++)
		kb_put(b, i, &fill);
	memset(b + KB_SIZE(3), 0x5A, 64);
	r = ioctl(fd, KEVENT_USER_WAIT, b);
	t1 = now_ms();
	CHECK_RET(r, 1, "WAIT num=3 returns 1");
	h = kb_gethdr(b);
	CHECK_EQ(h.num, 1, "hdr.num = count = 1");
	CHECK_EQ(h.cmd, KEVENT_CTL_WAIT, "hdr.cmd unchanged");
	CHECK_EQ(h.timeout, 0, "hdr.timeout unchanged");

	e = kb_get(b, 0);
	CHECK_HEX(e.id.raw[0], 40, "delivered id.raw[0] (period)");
	CHECK_HEX(e.id.raw[1], 0xA5A5A5A5, "delivered id.raw[1]");
	CHECK_HEX(e.type, KEVENT_TIMER, "delivered type TIMER");
	CHECK_HEX(e.event, KEVENT_TIMER_FIRED, "delivered event mask as requested");
	CHECK_HEX(e.req_flags, KEVENT_REQ_ONESHOT, "delivered req_flags");
	CHECK_HEX(e.ret_flags, KEVENT_RET_DONE, "delivered ret_flags DONE");
	CHECK_RANGE(u32_diff(e.ret_data[0], (__u32)t0), 40 - 2, t1 - t0 + 1,
		    "delivered ret_data[0] = expiry in CLOCK_MONOTONIC ms");
	/* The timer keeps its period until the ONESHOT kevent is delivered:
	 * a WAIT that reaches the daemon more than one period late (a slow
	 * emulated VM) sees one expiration per elapsed period. */
	CHECK_RANGE(e.ret_data[1], 1, (t1 - t0) / 40,
		    "delivered ret_data[1] = expirations (1 unless delayed)");
	CHECK(e.ptr == (void *)&some_object, "delivered ptr round-trips");

	{
		unsigned char ref[2 * UK_SIZE + 64];

		memset(ref, 0x5A, sizeof(ref));
		CHECK_MEM(b + HDR_SIZE + UK_SIZE, ref, sizeof(ref),
			  "slots after the delivered event and the tail untouched");
	}
	free(b);
}

static void test_nonblock(void)
{
	int nfd = dev_open(t_dev, O_RDWR | O_NONBLOCK);
	struct ukevent ev[2];
	long long t0;
	int r;

	t0 = now_ms();
	CHECK_RET(k_wait(nfd, ev, 1, 0), 0, "O_NONBLOCK: WAIT timeout 0 returns 0");
	/* must be well below the 1 s of a blocking queue, whatever the slack */
	CHECK_RANGE(now_ms() - t0, 0, 900, "O_NONBLOCK: WAIT timeout 0 does not sleep 1 s");
	t0 = now_ms();
	CHECK_RET(k_wait(nfd, ev, 1, 5000), 0, "O_NONBLOCK: WAIT timeout 5000 returns 0");
	CHECK_TIME(now_ms() - t0, 0, 0, "O_NONBLOCK: WAIT timeout 5000 does not sleep");

	t0 = now_ms();
	CHECK_RET(k_add1(nfd, uk_timer(300, KEVENT_REQ_ONESHOT, 0x801, 0)), 0,
		  "O_NONBLOCK: ADD oneshot 300 ms");
	r = k_wait(nfd, ev, 1, 5000);
	if (now_ms() - t0 < 300 - 2)	/* the timer cannot have fired yet */
		CHECK_RET(r, 0, "O_NONBLOCK: WAIT before the timer fired returns 0");
	else
		t_note("O_NONBLOCK: too slow to check a WAIT before the timer fired");
	if (r == 1) {	/* only possible in the slow case */
		close(nfd);
		return;
	}
	CHECK(poll_fd(nfd, POLLIN, 5000) & POLLIN, "O_NONBLOCK: poll sees the timer");
	t0 = now_ms();
	CHECK_RET(k_wait(nfd, ev, 2, 5000), 1, "O_NONBLOCK: WAIT then returns 1");
	CHECK_TIME(now_ms() - t0, 0, 0, "O_NONBLOCK: at once");
	CHECK_HEX(ev[0].user[0], 0x801, "O_NONBLOCK: it is the timer");
	close(nfd);
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_wait");
	fd = dev_open(t_dev, O_RDWR);

	test_nothing_registered();
	test_num_zero();
	test_ctl_cmd_wait();
	test_user_wait_ignores_cmd();
	test_timeout_waits_for_num();
	test_timeout_zero_returns_at_first();
	test_max_num();
	test_fifo();
	test_whole_ukevent();
	test_nonblock();

	close(fd);
	return t_done();
}
