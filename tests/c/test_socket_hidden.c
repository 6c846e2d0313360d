/*
 * test_socket_hidden - a caller the daemon cannot see (request header pid
 * 0: the caller is outside the daemon's pid namespace) gets a clear
 * per-ukevent error for the fd-based types SOCKET and POLL: BROKEN|DONE
 * and EPERM, while a TIMER in the same ADD is registered and fires
 * (docs/ABI.md section 3, per-ukevent failures).
 *
 * Only meaningful where the daemon really cannot see its callers, e.g. the
 * VM's RETRY phase (daemon in a pid namespace of its own, CUSE): run with
 * KEVENT_CALLER_HIDDEN=1 there; skipped (77) otherwise.  Under the FUSE
 * file such a caller's whole ioctl fails instead (the daemon cannot reach
 * its memory and FUSE has no RETRY), which tests/host covers.
 */

#include "testutil.h"

#include <sys/socket.h>

int main(int argc, char **argv)
{
	const char *hidden = getenv("KEVENT_CALLER_HIDDEN");
	struct ukevent uk[2], ev[1];
	struct kevent_user_control h;
	int kfd, sv[2], p[2];

	t_init(argc, argv, "test_socket_hidden");
	if (hidden == NULL || strcmp(hidden, "1") != 0)
		t_skip_all("needs a daemon that cannot see its callers (KEVENT_CALLER_HIDDEN=1)");
	kfd = dev_open(t_dev, O_RDWR);
	CHECK_RET(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0, "socketpair");
	CHECK_RET(pipe2(p, O_CLOEXEC), 0, "pipe");

	uk[0] = uk_timer(50, KEVENT_REQ_ONESHOT, 0x701, 0);
	memset(&uk[1], 0, sizeof(uk[1]));
	uk[1].type = KEVENT_SOCKET;
	uk[1].event = KEVENT_SOCKET_RECV;
	uk[1].id.raw[0] = (__u32)sv[0];
	uk[1].user[0] = 0x702;
	CHECK_ERR(k_ctl(kfd, KEVENT_CTL_ADD, uk, 2, &h), EPERM,
		  "ADD TIMER + SOCKET: the last one failed: -1/EPERM");
	CHECK_EQ(h.num, 1, "one ukevent written back");
	CHECK_HEX(uk[0].user[0], 0x702, "it is the SOCKET one");
	CHECK_HEX(uk[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE, "BROKEN|DONE");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "the TIMER of the same ADD is registered and fires");
	CHECK_HEX(ev[0].user[0], 0x701, "it is the timer");

	memset(&uk[0], 0, sizeof(uk[0]));
	uk[0].type = KEVENT_POLL;
	uk[0].event = KEVENT_POLL_POLLIN;
	uk[0].id.raw[0] = (__u32)p[0];
	uk[0].user[0] = 0x703;
	CHECK_ERR(k_ctl(kfd, KEVENT_CTL_ADD, uk, 1, &h), EPERM, "ADD POLL: -1/EPERM");
	CHECK_HEX(uk[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE, "BROKEN|DONE");

	CHECK_RET(k_add1(kfd, uk_timer(20, KEVENT_REQ_ONESHOT, 0x704, 0)), 0,
		  "the queue goes on working");
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, "and delivers");
	close(kfd);
	return t_done();
}
