/*
 * test_add - ADD (docs/ABI.md section 3): queued kevents are not written back,
 * failures and unknown types are written back packed at the start of the
 * array, hdr.num is rewritten, and the return value follows the 2006 rule
 * (last queued -> count of written-back ukevents, last failed -> -1/errno).
 *
 * TIMER is never ready at once; a period of 0 is a registration error of
 * this implementation (BROKEN|DONE, EINVAL).
 */

#include "testutil.h"

#define CANARY 0xA7

static int fd;

/* Byte images of the ukevents given to ADD, kept to compare write-backs. */
static struct ukevent in[8];

/*
 * ADD of in[0..n-1] in a buffer with a canary tail.  The header after the
 * call goes to *h, the array to out[].  Returns the ioctl result, errno kept.
 */
static int add_n(unsigned n, struct kevent_user_control *h,
		 struct ukevent *out, int *tail_ok)
{
	unsigned char *b = kb_alloc(n);
	unsigned i;
	int r, e;

	kb_hdr(b, KEVENT_CTL_ADD, n, 777);
	for (i = 0; i < n; i++)
		kb_put(b, i, &in[i]);
	memset(b + KB_SIZE(n), CANARY, 64);
	r = ioctl(fd, KEVENT_USER_CTL, b);
	e = errno;
	*h = kb_gethdr(b);
	for (i = 0; i < n; i++)
		out[i] = kb_get(b, i);
	*tail_ok = 1;
	for (i = 0; i < 64; i++)
		if (b[KB_SIZE(n) + i] != CANARY)
			*tail_ok = 0;
	free(b);
	errno = e;
	return r;
}

static struct ukevent bad_type(__u32 type, __u32 u0)
{
	struct ukevent uk = uk_timer(100, 0, u0, 0xbad);

	uk.type = type;
	uk.ret_data[0] = 0x1234;
	return uk;
}

static struct ukevent with_flags(struct ukevent uk, __u32 ret_flags)
{
	uk.ret_flags = ret_flags;
	return uk;
}

static void test_single_queued(void)
{
	struct kevent_user_control h;
	struct ukevent out[1];
	int tail;

	/* ret_flags/ret_data of the input are junk: nothing may be written. */
	in[0] = uk_timer(NEVER_MS, 0, 0x101, 0x102);
	in[0].ret_flags = 0x40;
	in[0].ret_data[0] = 0xdeadbeef;
	in[0].ret_data[1] = 0xfeedface;

	CHECK_RET(add_n(1, &h, out, &tail), 0, "ADD one timer returns 0 (queued)");
	CHECK_EQ(h.num, 0, "ADD queued: hdr.num rewritten to 0");
	CHECK_EQ(h.cmd, KEVENT_CTL_ADD, "ADD queued: hdr.cmd unchanged");
	CHECK_EQ(h.timeout, 777, "ADD queued: hdr.timeout unchanged");
	CHECK_MEM(&out[0], &in[0], UK_SIZE, "ADD queued: ukevent not written back");
	CHECK(tail, "ADD queued: bytes after the array untouched");
}

static void test_batch_queued(void)
{
	struct kevent_user_control h;
	struct ukevent out[3];
	int tail;

	in[0] = uk_timer(NEVER_MS, 0, 0x201, 0);
	in[1] = uk_timer(NEVER_MS, KEVENT_REQ_ONESHOT, 0x202, 0);
	in[2] = uk_timer(NEVER_MS, 0, 0x203, 0);
	CHECK_RET(add_n(3, &h, out, &tail), 0, "ADD batch of 3 timers returns 0");
	CHECK_EQ(h.num, 0, "ADD batch queued: hdr.num 0");
	CHECK_MEM(out, in, 3 * UK_SIZE, "ADD batch queued: array untouched");
	CHECK(tail, "ADD batch queued: tail untouched");
}

static void test_num_zero(void)
{
	struct kevent_user_control h;
	struct ukevent out[1];

	in[0] = uk_timer(50, 0, 0x301, 0);
	/* num = 0: the array is not looked at. */
	{
		unsigned char *b = kb_alloc(1);
		int r;

		kb_hdr(b, KEVENT_CTL_ADD, 0, 0);
		kb_put(b, 0, &in[0]);
		r = ioctl(fd, KEVENT_USER_CTL, b);
		CHECK_RET(r, 0, "ADD num=0 returns 0");
		h = kb_gethdr(b);
		CHECK_EQ(h.num, 0, "ADD num=0: hdr.num 0");
		out[0] = kb_get(b, 0);
		CHECK_MEM(&out[0], &in[0], UK_SIZE, "ADD num=0: array untouched");
		free(b);
	}
	/* Nothing was registered: a 50 ms timer would have fired. */
	CHECK_RET(k_wait(fd, out, 1, 300), 0, "ADD num=0 registered nothing");
}

static void test_unknown_type(__u32 type, const char *what)
{
	struct kevent_user_control h;
	struct ukevent out[1];
	char name[128];
	int tail;

	in[0] = bad_type(type, 0x401);
	snprintf(name, sizeof(name), "ADD unknown type %s alone: -1/E2BIG", what);
	CHECK_ERR(add_n(1, &h, out, &tail), E2BIG, name);
	snprintf(name, sizeof(name), "ADD unknown type %s: hdr.num 1", what);
	CHECK_EQ(h.num, 1, name);
	snprintf(name, sizeof(name),
		 "ADD unknown type %s: written back unchanged (no flags)", what);
	CHECK_MEM(&out[0], &in[0], UK_SIZE, name);
	CHECK(tail, "ADD unknown type: tail untouched");
}

static void test_packing_last_queued(void)
{
	struct kevent_user_control h;
	struct ukevent out[3];
	int tail;

	in[0] = uk_timer(NEVER_MS, 0, 0x501, 0);
	in[1] = bad_type(KEVENT_MAX, 0x502);
	in[2] = uk_timer(NEVER_MS, 0, 0x503, 0);
	CHECK_RET(add_n(3, &h, out, &tail), 1,
		  "ADD [timer, type 6, timer]: returns 1 = count written back");
	CHECK_EQ(h.num, 1, "ADD [timer, type 6, timer]: hdr.num 1");
	CHECK_MEM(&out[0], &in[1], UK_SIZE,
		  "ADD [timer, type 6, timer]: type-6 ukevent packed into slot 0");
	CHECK_MEM(&out[1], &in[1], UK_SIZE,
		  "ADD [timer, type 6, timer]: slot 1 keeps its input");
	CHECK_MEM(&out[2], &in[2], UK_SIZE,
		  "ADD [timer, type 6, timer]: slot 2 keeps its input");
	CHECK(tail, "ADD [timer, type 6, timer]: tail untouched");

	/* The two timers are registered, the type-6 one is not. */
	{
		__u32 f = 0;

		CHECK_RET(k_remove1(fd, in[0], &f), 0, "REMOVE first timer");
		CHECK_HEX(f, KEVENT_RET_DONE, "first timer was registered");
		CHECK_RET(k_remove1(fd, in[2], &f), 0, "REMOVE third timer");
		CHECK_HEX(f, KEVENT_RET_DONE, "third timer was registered");
		CHECK_RET(k_remove1(fd, in[1], &f), 0, "REMOVE type-6 key");
		CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
			  "type-6 ukevent was not registered");
	}
}

static void test_last_failed(void)
{
	struct kevent_user_control h;
	struct ukevent out[2];
	int tail;

	in[0] = uk_timer(NEVER_MS, 0, 0x601, 0);
	in[1] = bad_type(0xffffffff, 0x602);
	CHECK_ERR(add_n(2, &h, out, &tail), E2BIG,
		  "ADD [timer, type 0xffffffff]: last failed -> -1/E2BIG");
	CHECK_EQ(h.num, 1, "ADD [timer, type 0xffffffff]: hdr.num 1");
	CHECK_MEM(&out[0], &in[1], UK_SIZE,
		  "ADD [timer, type 0xffffffff]: bad ukevent packed into slot 0");
	CHECK_MEM(&out[1], &in[1], UK_SIZE,
		  "ADD [timer, type 0xffffffff]: slot 1 keeps its input");
	{
		__u32 f = 0;

		CHECK_RET(k_remove1(fd, in[0], &f), 0, "REMOVE the timer");
		CHECK_HEX(f, KEVENT_RET_DONE,
			  "timer before a failing last ukevent is registered");
	}
}

static void test_period_zero(void)
{
	struct kevent_user_control h;
	struct ukevent out[2], exp;
	int tail;

	/* input ret_flags 0x40: failures get ret_flags = BROKEN|DONE exactly */
	in[0] = with_flags(uk_timer(0, 0, 0x701, 0x702), 0x40);
	in[0].ret_data[0] = 0x55;
	CHECK_ERR(add_n(1, &h, out, &tail), EINVAL,
		  "ADD timer period 0: -1/EINVAL");
	CHECK_EQ(h.num, 1, "ADD period 0: hdr.num 1");
	exp = with_flags(in[0], KEVENT_RET_BROKEN | KEVENT_RET_DONE);
	CHECK_HEX(out[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "ADD period 0: ret_flags = BROKEN|DONE");
	CHECK_MEM(&out[0], &exp, UK_SIZE,
		  "ADD period 0: rest of the ukevent written back unchanged");

	/* [period 0, type 6]: the errno is the last one's */
	in[0] = uk_timer(0, 0, 0x703, 0);
	in[1] = bad_type(6, 0x704);
	CHECK_ERR(add_n(2, &h, out, &tail), E2BIG,
		  "ADD [period 0, type 6]: -1/E2BIG (errno of the last)");
	CHECK_EQ(h.num, 2, "ADD [period 0, type 6]: hdr.num 2");
	CHECK_HEX(out[0].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "ADD [period 0, type 6]: slot 0 BROKEN|DONE");
	CHECK_MEM(&out[1], &in[1], UK_SIZE,
		  "ADD [period 0, type 6]: slot 1 type 6 unchanged");

	/* [type 0xffffffff, period 0] */
	in[0] = bad_type(0xffffffff, 0x705);
	in[1] = uk_timer(0, 0, 0x706, 0);
	CHECK_ERR(add_n(2, &h, out, &tail), EINVAL,
		  "ADD [type 0xffffffff, period 0]: -1/EINVAL (errno of the last)");
	CHECK_EQ(h.num, 2, "ADD [type 0xffffffff, period 0]: hdr.num 2");
	CHECK_MEM(&out[0], &in[0], UK_SIZE,
		  "ADD [type 0xffffffff, period 0]: slot 0 unchanged");
	exp = with_flags(in[1], KEVENT_RET_BROKEN | KEVENT_RET_DONE);
	CHECK_MEM(&out[1], &exp, UK_SIZE,
		  "ADD [type 0xffffffff, period 0]: slot 1 BROKEN|DONE");
}

static void test_mixed_batch(void)
{
	struct kevent_user_control h;
	struct ukevent out[5], exp;
	__u32 f;
	int tail, i;

	in[0] = uk_timer(NEVER_MS, 0, 0x801, 0);
	in[1] = bad_type(6, 0x802);
	in[2] = uk_timer(NEVER_MS, KEVENT_REQ_ONESHOT, 0x803, 0);
	in[3] = uk_timer(0, 0, 0x804, 0);
	in[4] = uk_timer(NEVER_MS, 0, 0x805, 0);
	CHECK_RET(add_n(5, &h, out, &tail), 2,
		  "ADD [T, type 6, T, period 0, T]: returns 2");
	CHECK_EQ(h.num, 2, "ADD mixed: hdr.num 2");
	CHECK_MEM(&out[0], &in[1], UK_SIZE, "ADD mixed: slot 0 = type-6 ukevent");
	exp = with_flags(in[3], KEVENT_RET_BROKEN | KEVENT_RET_DONE);
	CHECK_MEM(&out[1], &exp, UK_SIZE,
		  "ADD mixed: slot 1 = period-0 ukevent with BROKEN|DONE");
	CHECK_MEM(&out[2], &in[2], 3 * UK_SIZE,
		  "ADD mixed: slots 2..4 keep their input");
	CHECK(tail, "ADD mixed: tail untouched");

	for (i = 0; i < 5; i++) {
		int registered = (i == 0 || i == 2 || i == 4);
		char name[96];

		f = 0;
		k_remove1(fd, in[i], &f);
		snprintf(name, sizeof(name), "ADD mixed: ukevent %d %s", i,
			 registered ? "registered" : "not registered");
		CHECK_HEX(f, registered ? KEVENT_RET_DONE
					: KEVENT_RET_BROKEN | KEVENT_RET_DONE, name);
	}
}

static void test_duplicates(void)
{
	struct ukevent k[2];
	struct kevent_user_control h;
	__u32 f;

	/* Duplicate keys are not detected: both copies register. */
	k[0] = uk_timer(NEVER_MS, 0, 0x901, 0x902);
	CHECK_RET(k_add1(fd, k[0]), 0, "ADD key K");
	CHECK_RET(k_add1(fd, k[0]), 0, "ADD the same key K again: 0 (not detected)");
	k[1] = k[0];
	CHECK_RET(k_ctl(fd, KEVENT_CTL_ADD, k, 2, &h), 0,
		  "ADD [K, K] in one batch: 0");
	CHECK_EQ(h.num, 0, "ADD [K, K]: hdr.num 0");
	f = 0;
	k_remove1(fd, k[0], &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE K: copy 1");
	k_remove1(fd, k[0], &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE K: copy 2");
	k_remove1(fd, k[0], &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE K: copy 3");
	k_remove1(fd, k[0], &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE K: copy 4");
	k_remove1(fd, k[0], &f);
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "REMOVE K a fifth time: BROKEN|DONE");
}

static void test_ret_flags_start_at_zero(void)
{
	struct ukevent uk = uk_timer(30, KEVENT_REQ_ONESHOT, 0xa01, 0xa02);
	struct ukevent ev[2];

	/* Junk in ret_flags at ADD must not survive into the delivery. */
	uk.ret_flags = 0x40 | KEVENT_RET_BROKEN;
	CHECK_RET(k_add1(fd, uk), 0, "ADD oneshot 30 ms timer with junk ret_flags");
	CHECK_RET(k_wait(fd, ev, 2, 0), 1, "WAIT gets it");
	CHECK_HEX(ev[0].ret_flags, KEVENT_RET_DONE,
		  "delivered ret_flags = DONE (started at 0 at ADD)");
	CHECK_HEX(ev[0].user[0], 0xa01, "delivered user[0]");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_add");
	fd = dev_open(t_dev, O_RDWR);

	test_single_queued();
	test_batch_queued();
	test_num_zero();
	test_unknown_type(KEVENT_MAX, "6");
	test_unknown_type(0xffffffff, "0xffffffff");
	test_packing_last_queued();
	test_last_failed();
	test_period_zero();
	test_mixed_batch();
	test_duplicates();
	test_ret_flags_start_at_zero();

	close(fd);
	return t_done();
}
