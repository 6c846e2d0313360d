/*
 * test_kill - a client killed in the middle of a WAIT dies promptly, and
 * the queues of others (and the queue it shared) keep working.
 *
 * A SIGKILLed caller parked in the device must have its request answered
 * (docs/WIRE.md, INTERRUPT); otherwise it stays in D state and waitpid() hangs.
 * waitpid is polled with WNOHANG and fails after 5 s.
 */

#include "testutil.h"

/*
 * Fork a child that (own = 1) opens its own queue or (own = 0) uses the
 * inherited shared_fd, registers a long timer, signals the parent through
 * a pipe and starts a 30 s WAIT.  The parent kills it 200 ms later.
 */
static void kill_in_wait(int own, int shared_fd, const char *what)
{
	char name[160], c;
	int go[2], status = 0;
	long long dt;
	pid_t pid;

	if (pipe(go) != 0) {
		CHECK(0, "pipe");
		return;
	}
	pid = t_fork();
	if (pid == 0) {
		struct ukevent ev[1];
		int fd = own ? dev_open(t_dev, O_RDWR) : shared_fd;

		close(go[0]);
		if (own && k_add1(fd, uk_timer(NEVER_MS, 0, 0x999, 0)) != 0)
			_exit(3);
		if (write(go[1], "w", 1) != 1)
			_exit(4);
		k_wait(fd, ev, 1, 30000);
		_exit(5);	/* not reached unless the WAIT returned */
	}
	close(go[1]);
	snprintf(name, sizeof(name), "%s: child is about to WAIT", what);
	CHECK(pid > 0 && read(go[0], &c, 1) == 1, name);
	close(go[0]);
	if (pid <= 0)
		return;
	sleep_ms(200);
	kill(pid, SIGKILL);
	dt = t_reap(pid, &status, 5000);
	snprintf(name, sizeof(name), "%s: waitpid returns within 5 s of SIGKILL", what);
	CHECK(dt >= 0, name);
	snprintf(name, sizeof(name), "%s: waitpid promptly (ms)", what);
	CHECK_TIME(dt, 0, 0, name);
	snprintf(name, sizeof(name), "%s: child died of SIGKILL (not of a returned WAIT)",
		 what);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, name);
}

static void check_queue_works(int fd, __u32 cookie, const char *what)
{
	struct ukevent ev[1];
	char name[160];
	__u32 f = 0;

	snprintf(name, sizeof(name), "%s: long timer registered before is still there", what);
	k_remove1(fd, uk_timer(NEVER_MS, 0, cookie, 0), &f);
	CHECK_HEX(f, KEVENT_RET_DONE, name);
	snprintf(name, sizeof(name), "%s: ADD a 50 ms timer", what);
	CHECK_RET(k_add1(fd, uk_timer(50, KEVENT_REQ_ONESHOT, cookie + 1, 0)), 0, name);
	snprintf(name, sizeof(name), "%s: WAIT gets the timer event", what);
	CHECK_RET(k_wait(fd, ev, 1, 3000), 1, name);
	snprintf(name, sizeof(name), "%s: it is the new timer", what);
	CHECK_HEX(ev[0].user[0], cookie + 1, name);
}

int main(int argc, char **argv)
{
	int fd;

	t_init(argc, argv, "test_kill");
	fd = dev_open(t_dev, O_RDWR);

	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x100, 0)), 0,
		  "parent ADDs a long timer");
	kill_in_wait(1, -1, "child with its own queue");
	check_queue_works(fd, 0x100, "parent's queue after the kill");

	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x200, 0)), 0,
		  "parent ADDs another long timer");
	kill_in_wait(0, fd, "child sharing the parent's queue");
	check_queue_works(fd, 0x200, "shared queue after the kill");

	close(fd);
	return t_done();
}
