/*
 * test_threads - a WAIT in one thread does not block ADD, REMOVE or MODIFY
 * in another (docs/ABI.md section 5 item 2; 2006 held one mutex across the
 * sleep), and the waiting thread gets the event added meanwhile.
 */

#include "testutil.h"

#include <pthread.h>

static int fd;

struct waiter {
	unsigned num, timeout;
	int ret;
	struct ukevent ev[2];
	long long t_start, t_end;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->t_start = now_ms();
	w->ret = k_wait(fd, w->ev, w->num, w->timeout);
	w->t_end = now_ms();
	return NULL;
}

static void test_add_while_waiting(void)
{
	struct waiter w;
	pthread_t th;
	long long t0, t_add, t_add0;
	__u32 f = 0;
	struct ukevent m;

	memset(&w, 0, sizeof(w));
	w.num = 1;
	w.timeout = 3000;
	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x100, 0)), 0, "ADD a long timer");
	CHECK_RET(pthread_create(&th, NULL, wait_thread, &w), 0, "start thread A (WAIT 3000)");
	sleep_ms(100);	/* let A block in the WAIT */

	t_add0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(50, KEVENT_REQ_ONESHOT, 0x101, 0)), 0,
		  "thread B: ADD 50 ms timer while A waits");
	t_add = now_ms() - t_add0;
	CHECK_TIME(t_add, 0, 0, "thread B: ADD did not wait for A's WAIT");

	t0 = now_ms();
	m = uk_timer(NEVER_MS, 0, 0x100, 0);
	m.event = 0x3;
	CHECK_RET(k_ctl(fd, KEVENT_CTL_MODIFY, &m, 1, NULL), 0, "thread B: MODIFY while A waits");
	CHECK_HEX(m.ret_flags, KEVENT_RET_DONE, "thread B: MODIFY matched");
	CHECK_RET(k_remove1(fd, uk_timer(NEVER_MS, 0, 0x100, 0), &f), 0,
		  "thread B: REMOVE while A waits");
	CHECK_HEX(f, KEVENT_RET_DONE, "thread B: REMOVE matched");
	CHECK_TIME(now_ms() - t0, 0, 0, "thread B: MODIFY+REMOVE did not wait for A");

	pthread_join(th, NULL);
	CHECK_RET(w.ret, 1, "thread A: WAIT returns 1");
	CHECK_HEX(w.ev[0].user[0], 0x101, "thread A: got the timer added by B");
	CHECK_TIME(w.t_end - t_add0, 50 - 2, 50,
		   "thread A: returned ~50 ms after B's ADD");
}

static void test_two_waiters(void)
{
	struct waiter w[2];
	pthread_t th[2];
	long long t_add0;
	int i;

	memset(w, 0, sizeof(w));
	for (i = 0; i < 2; i++) {
		w[i].num = 1;
		w[i].timeout = 3000;
		CHECK_RET(pthread_create(&th[i], NULL, wait_thread, &w[i]), 0,
			  "start a waiting thread");
	}
	sleep_ms(100);
	t_add0 = now_ms();
	CHECK_RET(k_add1(fd, uk_timer(50, KEVENT_REQ_ONESHOT, 0x201, 0)), 0,
		  "ADD oneshot 50 ms");
	CHECK_RET(k_add1(fd, uk_timer(60, KEVENT_REQ_ONESHOT, 0x202, 0)), 0,
		  "ADD oneshot 60 ms");
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	CHECK_RET(w[0].ret, 1, "waiter 1 gets one event");
	CHECK_RET(w[1].ret, 1, "waiter 2 gets one event");
	CHECK(w[0].ret == 1 && w[1].ret == 1 &&
	      w[0].ev[0].user[0] + w[1].ev[0].user[0] == 0x201 + 0x202 &&
	      w[0].ev[0].user[0] != w[1].ev[0].user[0],
	      "the two waiters got the two different events");
	for (i = 0; i < 2; i++)
		CHECK_TIME(w[i].t_end - t_add0, 50 - 2, 60,
			   "waiter returned when its event was ready");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_threads");
	fd = dev_open(t_dev, O_RDWR);

	test_add_while_waiting();
	test_two_waiters();

	close(fd);
	return t_done();
}
