/*
 * 	timers.c
 *
 * Kevent timer example, written the way a program for the 26 July 2006
 * kevent patch would be: two periodic timers and one oneshot timer are
 * registered with KEVENT_USER_CTL/KEVENT_CTL_ADD and collected with
 * KEVENT_USER_WAIT until enough events arrived.
 *
 * Usage: timers [device [events]]   (default /dev/kevent, 12 events)
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>
#include <sys/types.h>
#include <sys/ioctl.h>

#include <linux/types.h>
#include "kevent.h"

#define ulog(f, a...) fprintf(stdout, f, ##a)
#define ulog_err(f, a...) ulog(f ": %s [%d].\n", ##a, strerror(errno), errno)

static char buf[4096];

static void kevent_fill(struct ukevent *uk, unsigned int msec,
		unsigned int req_flags, unsigned int cookie)
{
	memset(uk, 0, sizeof(struct ukevent));
	uk->type = KEVENT_TIMER;
	uk->event = KEVENT_TIMER_FIRED;
	uk->id.raw[0] = msec;
	uk->req_flags = req_flags;
	uk->user[0] = cookie;
}

int main(int argc, char *argv[])
{
	char *dev = "/dev/kevent";
	int fd, err, i, num, total = 0, max = 12;
	struct kevent_user_control *ctl;
	struct ukevent *uk;

	if (argc > 1)
		dev = argv[1];
	if (argc > 2)
		max = atoi(argv[2]);

	fd = open(dev, O_RDWR);
	if (fd == -1) {
		ulog_err("Failed to open %s", dev);
		return -1;
	}

	ctl = (struct kevent_user_control *)buf;
	uk = (struct ukevent *)(ctl + 1);

	memset(buf, 0, sizeof(buf));
	ctl->cmd = KEVENT_CTL_ADD;
	ctl->num = 3;
	ctl->timeout = 0;

	kevent_fill(&uk[0], 300, 0, 1);
	kevent_fill(&uk[1], 700, 0, 2);
	kevent_fill(&uk[2], 1000, KEVENT_REQ_ONESHOT, 3);

	err = ioctl(fd, KEVENT_USER_CTL, buf);
	if (err < 0) {
		ulog_err("Failed to add timers");
		return err;
	}
	ulog("Added 3 timers, %u of them completed at once.\n", ctl->num);

	while (total < max) {
		ctl->cmd = KEVENT_CTL_WAIT;
		ctl->num = (sizeof(buf) - sizeof(struct kevent_user_control)) /
			sizeof(struct ukevent);
		ctl->timeout = 0;	/* until the first event, at most 1 s */

		num = ioctl(fd, KEVENT_USER_WAIT, buf);
		if (num < 0) {
			ulog_err("Failed to wait for events");
			return num;
		}
		if (num == 0) {
			ulog("Timeout, no events.\n");
			continue;
		}

		for (i=0; i<num; ++i) {
			ulog("timer %u: period %5u ms, %s, ret_flags 0x%x, "
					"fired at %u, %u expiration(s).\n",
					uk[i].user[0], uk[i].id.raw[0],
					(uk[i].req_flags & KEVENT_REQ_ONESHOT) ?
						"oneshot " : "periodic",
					uk[i].ret_flags, uk[i].ret_data[0],
					uk[i].ret_data[1]);
		}
		total += num;
	}

	close(fd);
	return 0;
}
