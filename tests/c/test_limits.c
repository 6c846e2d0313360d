/*
 * test_limits - at most 1023 kevents per queue (docs/ABI.md section 2): an ADD
 * that would reach 1024 adds nothing and fails with ENFILE; the limit is
 * per queue; close (last reference) frees everything.
 *
 * Assumes the daemon's default limit (--max-kevents not given).  As in the
 * 2006 code, the ENFILE check happens before anything is read or written
 * back, so hdr.num and the array are left as they were.
 */

#include "testutil.h"

static void test_full_queue(int fd, const char *what)
{
	struct ukevent *uks = calloc(KEVENT_LIMIT, sizeof(*uks)), one, orig;
	struct kevent_user_control h;
	char name[160];
	unsigned i;
	__u32 f = 0;

	for (i = 0; i < KEVENT_LIMIT; i++)
		uks[i] = uk_timer(NEVER_MS, 0, 0x10000 + i, 0);
	snprintf(name, sizeof(name), "%s: ADD of 1023 timers in one batch returns 0", what);
	CHECK_RET(k_ctl(fd, KEVENT_CTL_ADD, uks, KEVENT_LIMIT, &h), 0, name);
	snprintf(name, sizeof(name), "%s: hdr.num 0 after 1023", what);
	CHECK_EQ(h.num, 0, name);
	free(uks);

	one = uk_timer(NEVER_MS, 0, 0x20000, 0);
	orig = one;
	snprintf(name, sizeof(name), "%s: the 1024th ADD fails with ENFILE", what);
	CHECK_ERR(k_ctl(fd, KEVENT_CTL_ADD, &one, 1, &h), ENFILE, name);
	snprintf(name, sizeof(name), "%s: ENFILE leaves hdr.num alone", what);
	CHECK_EQ(h.num, 1, name);
	snprintf(name, sizeof(name), "%s: ENFILE writes nothing back", what);
	CHECK_MEM(&one, &orig, UK_SIZE, name);
	snprintf(name, sizeof(name), "%s: the refused kevent was not added", what);
	k_remove1(fd, orig, &f);
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE, name);

	snprintf(name, sizeof(name), "%s: REMOVE one of the 1023", what);
	k_remove1(fd, uk_timer(NEVER_MS, 0, 0x10000 + 7, 0), &f);
	CHECK_HEX(f, KEVENT_RET_DONE, name);
	snprintf(name, sizeof(name), "%s: after REMOVE one ADD works again", what);
	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x20001, 0)), 0, name);
	snprintf(name, sizeof(name), "%s: and the next one fails with ENFILE", what);
	CHECK_ERR(k_add1(fd, uk_timer(NEVER_MS, 0, 0x20002, 0)), ENFILE, name);
}

static void test_batch_crossing(int fd)
{
	struct ukevent uks[24], orig[24];
	struct kevent_user_control h;
	unsigned i;

	CHECK_EQ(k_fill(fd, 1000, 0x30000), 1000, "second queue: 1000 timers registered");
	for (i = 0; i < 24; i++)
		uks[i] = uk_timer(NEVER_MS, 0, 0x40000 + i, 0);
	memcpy(orig, uks, sizeof(uks));
	CHECK_ERR(k_ctl(fd, KEVENT_CTL_ADD, uks, 24, &h), ENFILE,
		  "batch of 24 that would reach 1024: ENFILE");
	CHECK_EQ(h.num, 24, "batch ENFILE: hdr.num unchanged");
	CHECK_MEM(uks, orig, sizeof(uks), "batch ENFILE: array unchanged");
	CHECK_RET(k_ctl(fd, KEVENT_CTL_ADD, orig, 23, &h), 0,
		  "batch of 23 (reaching 1023) works: the refused batch added nothing");
	CHECK_ERR(k_add1(fd, uk_timer(NEVER_MS, 0, 0x50000, 0)), ENFILE,
		  "second queue full now: ENFILE");
}

static void test_timers_still_work_when_full(int fd)
{
	struct ukevent ev[1];
	__u32 f = 0;

	/* A full queue still delivers: free one slot for a short timer. */
	k_remove1(fd, uk_timer(NEVER_MS, 0, 0x30000, 0), &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE one of the full second queue");
	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0x60000, 0)), 0,
		  "ADD a 30 ms timer as the 1023rd");
	CHECK_RET(k_wait(fd, ev, 1, 2000), 1, "a queue with 1023 kevents delivers");
	CHECK_HEX(ev[0].user[0], 0x60000, "the 30 ms timer");
	CHECK_RET(k_add1(fd, uk_timer(NEVER_MS, 0, 0x60001, 0)), 0,
		  "the delivered oneshot freed its slot");
}

int main(int argc, char **argv)
{
	int a, b, fd;

	t_init(argc, argv, "test_limits");
	a = dev_open(t_dev, O_RDWR);
	b = dev_open(t_dev, O_RDWR);

	test_full_queue(a, "queue A");
	test_batch_crossing(b);
	test_timers_still_work_when_full(b);

	/* close frees everything: a reopened queue takes 1023 again. */
	close(a);
	close(b);
	fd = dev_open(t_dev, O_RDWR);
	CHECK_EQ(k_fill(fd, KEVENT_LIMIT, 0x70000), KEVENT_LIMIT,
		 "after close, a new queue registers 1023 again");
	CHECK_ERR(k_add1(fd, uk_timer(NEVER_MS, 0, 0x7ffff, 0)), ENFILE,
		  "and refuses the 1024th");
	close(fd);

	/* Twice more, to see the daemon releases what each close freed. */
	fd = dev_open(t_dev, O_RDWR);
	a = dev_open(t_dev, O_RDWR);
	CHECK_EQ(k_fill(fd, KEVENT_LIMIT, 0x80000), KEVENT_LIMIT,
		 "two full queues at once: first");
	CHECK_EQ(k_fill(a, KEVENT_LIMIT, 0x90000), KEVENT_LIMIT,
		 "two full queues at once: second");
	close(fd);
	close(a);

	return t_done();
}
