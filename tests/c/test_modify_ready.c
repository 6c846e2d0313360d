/*
 * test_modify_ready - MODIFY of a kevent that is already on the ready list
 * (README, "MODIFY of a ready kevent"): it stays ready, in its place, and is
 * delivered once with DONE and the new event mask and req_flags; a broken
 * one keeps BROKEN|DONE and is unregistered after that delivery.
 */
#include "testutil.h"

#include <sys/socket.h>

#define DONE	KEVENT_RET_DONE
#define BROKEN	KEVENT_RET_BROKEN

/* Waits (bounded) until the queue is readable. */
static int ready_within(int q, long ms)
{
	return (poll_fd(q, POLLIN, (int)(ms + t_slack)) & POLLIN) != 0;
}

static void test_ready_timer(void)
{
	int q = dev_open(t_dev, O_RDWR);
	struct ukevent a = uk_timer(10, 0, 1, 0), b = uk_timer(NEVER_MS, 0, 2, 0);
	struct ukevent m, out[4];
	__u32 f = 0;
	int n;

	CHECK_RET(k_add1(q, a), 0, "ADD a 10 ms timer");
	CHECK_RET(k_add1(q, b), 0, "ADD a timer that never fires");
	CHECK(ready_within(q, 2000), "the 10 ms timer fired (queue readable)");
	m = a;
	m.req_flags = KEVENT_REQ_ONESHOT;
	CHECK_RET(k_ctl(q, KEVENT_CTL_MODIFY, &m, 1, NULL), 0, "MODIFY the ready timer");
	CHECK_HEX(m.ret_flags, DONE, "MODIFY wrote back DONE (found)");
	n = k_wait(q, out, 4, 1);
	CHECK_EQ(n, 1, "WAIT delivers it once");
	CHECK_HEX(n > 0 ? out[0].ret_flags : 0, DONE, "delivered with DONE (not 0)");
	CHECK_HEX(n > 0 ? out[0].req_flags : 0, KEVENT_REQ_ONESHOT,
		  "delivered with the new req_flags");
	CHECK_EQ(n > 0 ? out[0].user[0] : 0, 1, "it is the modified timer");
	CHECK_RET(k_remove1(q, a, &f), 0, "REMOVE the now-ONESHOT timer");
	CHECK_HEX(f, BROKEN | DONE, "it was unregistered by its delivery");
	CHECK_RET(k_remove1(q, b, &f), 0, "REMOVE the other timer");
	CHECK_HEX(f, DONE, "the other one was still registered");
	close(q);
}

static void test_ready_broken(void)
{
	int q = dev_open(t_dev, O_RDWR);
	struct ukevent k, m, out[2];
	__u32 f = 0;
	int sv[2], n;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		CHECK(0, "socketpair");
		close(q);
		return;
	}
	k = uk_make(KEVENT_SOCKET, (__u32)sv[0], KEVENT_SOCKET_RECV, 0, 9, 0);
	CHECK_RET(k_add1(q, k), 0, "ADD SOCKET RECV");
	close(sv[0]);
	CHECK(ready_within(q, 2000), "closing the socket makes the kevent ready (broken)");
	m = k;
	k_ctl(q, KEVENT_CTL_MODIFY, &m, 1, NULL);
	CHECK(m.ret_flags & DONE, "MODIFY of the broken kevent is answered");
	n = k_wait(q, out, 2, 1);
	CHECK_EQ(n, 1, "WAIT delivers the broken kevent once");
	CHECK_HEX(n > 0 ? out[0].ret_flags : 0, BROKEN | DONE,
		  "it keeps BROKEN|DONE after the MODIFY");
	CHECK_EQ(n > 0 ? out[0].user[0] : 0, 9, "it is the socket's kevent");
	CHECK_RET(k_remove1(q, k, &f), 0, "REMOVE afterwards");
	CHECK_HEX(f, BROKEN | DONE, "the broken kevent was unregistered");
	close(sv[1]);
	close(q);
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_modify_ready");
	test_ready_timer();
	test_ready_broken();
	return t_done();
}
