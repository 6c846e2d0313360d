/*
 * test_sharing - a queue belongs to the open file (docs/ABI.md section 2): two
 * opens are independent queues; dup() and fork() share one.
 */

#include "testutil.h"

static void test_two_opens(void)
{
	int a = dev_open(t_dev, O_RDWR), b = dev_open(t_dev, O_RDWR);
	struct ukevent k = uk_timer(50, KEVENT_REQ_ONESHOT, 0x101, 0), ev[1];
	__u32 f = 0;

	CHECK_RET(k_add1(a, k), 0, "ADD oneshot 50 ms on open A");
	CHECK_RET(k_wait(b, ev, 1, 300), 0, "WAIT on open B sees nothing of A");
	CHECK_RET(k_remove1(b, k, &f), 0, "REMOVE of A's key on B");
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE, "B does not know A's kevent");
	CHECK_RET(k_wait(a, ev, 1, 300), 1, "WAIT on A gets A's timer");
	CHECK_HEX(ev[0].user[0], 0x101, "A's timer");

	CHECK_RET(k_add1(b, uk_timer(NEVER_MS, 0, 0x102, 0)), 0, "ADD on B");
	close(b);
	CHECK_RET(k_remove1(a, uk_timer(NEVER_MS, 0, 0x102, 0), &f), 0,
		  "REMOVE of B's key on A after closing B");
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE, "A does not know B's kevent");
	close(a);
}

static void test_dup(void)
{
	int a = dev_open(t_dev, O_RDWR), d;
	struct ukevent ev[1];
	__u32 f = 0;

	d = dup(a);
	CHECK(d >= 0, "dup");
	CHECK_RET(k_add1(a, uk_timer(40, KEVENT_REQ_ONESHOT, 0x201, 0)), 0,
		  "ADD oneshot 40 ms on fd");
	CHECK_RET(k_wait(d, ev, 1, 2000), 1, "WAIT on the dup gets it");
	CHECK_HEX(ev[0].user[0], 0x201, "it is the timer added on the original");

	CHECK_RET(k_add1(d, uk_timer(NEVER_MS, 0, 0x202, 0)), 0, "ADD on the dup");
	close(a);
	CHECK_RET(k_remove1(d, uk_timer(NEVER_MS, 0, 0x202, 0), &f), 0,
		  "REMOVE on the dup after closing the original");
	CHECK_HEX(f, KEVENT_RET_DONE, "closing one of two descriptors keeps the queue");
	CHECK_RET(k_add1(d, uk_timer(30, KEVENT_REQ_ONESHOT, 0x203, 0)), 0,
		  "ADD on the dup after closing the original");
	CHECK_RET(k_wait(d, ev, 1, 2000), 1, "the surviving dup still delivers");
	close(d);
}

static void test_fork_child_adds(void)
{
	int fd = dev_open(t_dev, O_RDWR), status = 0;
	struct ukevent ev[2];
	__u32 f = 0;
	pid_t pid;

	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x301, 0)), 0,
		  "parent ADDs a long timer before fork");
	pid = t_fork();
	if (pid == 0) {
		int r = k_add1(fd, uk_timer(60, KEVENT_REQ_ONESHOT, 0x302, 0));

		_exit(r == 0 ? 0 : 1);
	}
	CHECK(pid > 0, "fork");
	CHECK(t_reap(pid, &status, 5000) >= 0, "child exited");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child's ADD on the inherited fd returned 0");
	CHECK_RET(k_wait(fd, ev, 2, 2000), 1, "parent WAIT gets the child's timer");
	CHECK_HEX(ev[0].user[0], 0x302, "it is the child's timer");
	CHECK_RET(k_remove1(fd, uk_timer(NEVER_MS, 0, 0x301, 0), &f), 0,
		  "parent REMOVEs its own timer after the child exited");
	CHECK_HEX(f, KEVENT_RET_DONE, "child's exit (close) did not drop the queue");
	close(fd);
}

static void test_fork_child_waits(void)
{
	int fd = dev_open(t_dev, O_RDWR), status = 0;
	struct ukevent ev[1];
	pid_t pid;

	CHECK_RET(k_add1(fd, uk_timer(100, KEVENT_REQ_ONESHOT, 0x401, 0)), 0,
		  "parent ADDs oneshot 100 ms");
	pid = t_fork();
	if (pid == 0) {
		struct ukevent e[1];
		int r = k_wait(fd, e, 1, 3000);

		_exit(r == 1 && e[0].user[0] == 0x401 ? 0 : 1);
	}
	CHECK(pid > 0, "fork");
	CHECK(t_reap(pid, &status, 5000) >= 0, "child exited");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "child's WAIT on the inherited fd got the parent's timer");
	CHECK_RET(k_wait(fd, ev, 1, 200), 0, "the event was consumed by the child");
	close(fd);
}

static void test_parent_close_child_keeps(void)
{
	int fd = dev_open(t_dev, O_RDWR), status = 0;
	int go[2];
	pid_t pid;
	char c;

	CHECK_RET(pipe(go), 0, "pipe");
	pid = t_fork();
	if (pid == 0) {
		struct ukevent e[1];
		int r;

		close(go[1]);
		/* wait until the parent has closed its descriptor */
		if (read(go[0], &c, 1) != 0)
			_exit(2);
		r = k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0x501, 0));
		if (r != 0)
			_exit(3);
		r = k_wait(fd, e, 1, 3000);
		_exit(r == 1 && e[0].user[0] == 0x501 ? 0 : 1);
	}
	close(go[0]);
	close(fd);
	close(go[1]);
	CHECK(t_reap(pid, &status, 5000) >= 0, "child exited");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "queue lives on in the child after the parent closed its fd");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_sharing");

	test_two_opens();
	test_dup();
	test_fork_child_adds();
	test_fork_child_waits();
	test_parent_close_child_keeps();

	return t_done();
}
