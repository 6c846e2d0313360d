/*
 * pkgconfig_prog - a 2006-style program built against the INSTALLED
 * header and library (tests/host/install.sh):
 *     cc pkgconfig_prog.c $(pkg-config --cflags --libs kevent)
 * It includes <linux/kevent.h> exactly as 2006 programs did, opens the
 * queue with kevent_ctl(INIT) ($KEVENT_DEVICE), adds a oneshot TIMER and a
 * POLL kevent on a pipe that is readable at once, waits for the timer and
 * prints "N passed, M failed".
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <linux/kevent.h>

static int passed, failed;

static void check(int cond, const char *what)
{
	if (cond) {
		passed++;
		printf("ok - %s\n", what);
	} else {
		failed++;
		printf("not ok - %s (errno %d)\n", what, errno);
	}
}

int main(void)
{
	struct {
		struct kevent_user_control c;
		struct ukevent uk[4];
	} __attribute__((packed)) req;
	int p[2], fd, r;

	memset(&req, 0, sizeof(req));
	req.c.cmd = KEVENT_CTL_INIT;
	fd = kevent_ctl(-1, &req);
	check(fd >= 0, "kevent_ctl(INIT) opens $KEVENT_DEVICE");
	if (fd < 0)
		goto out;

	check(pipe(p) == 0 && write(p[1], "x", 1) == 1, "a readable pipe");
	memset(&req, 0, sizeof(req));
	req.c.cmd = KEVENT_CTL_ADD;
	req.c.num = 2;
	req.uk[0].type = KEVENT_POLL;
	req.uk[0].id.raw[0] = p[0];
	req.uk[0].event = KEVENT_POLL_POLLIN;
	req.uk[0].user[0] = 1;
	req.uk[1].type = KEVENT_TIMER;
	req.uk[1].id.raw[0] = 30;
	req.uk[1].event = KEVENT_TIMER_FIRED;
	req.uk[1].req_flags = KEVENT_REQ_ONESHOT;
	req.uk[1].user[0] = 2;
	r = kevent_ctl(fd, &req);
	check(r == 1 && req.c.num == 1 && req.uk[0].user[0] == 1 &&
	      req.uk[0].ret_flags == KEVENT_RET_DONE,
	      "ADD: the ready POLL kevent is written back, the timer queued");

	memset(&req, 0, sizeof(req));
	req.c.cmd = KEVENT_CTL_WAIT;
	req.c.num = 4;
	req.c.timeout = 10000;
	r = kevent_ctl(fd, &req);
	check(r >= 1 && req.uk[0].type == KEVENT_TIMER && req.uk[0].user[0] == 2 &&
	      req.uk[0].ret_flags == KEVENT_RET_DONE,
	      "WAIT: the timer fired");

	memset(&req, 0, sizeof(req));
	req.c.cmd = KEVENT_CTL_INIT;
	check(ioctl(fd, KEVENT_USER_CTL, &req) == -1 && errno == EINVAL,
	      "INIT through the ioctl: EINVAL");
	close(fd);
out:
	printf("%d passed, %d failed\n", passed, failed);
	return failed != 0;
}
