/*
 * test_timer - the TIMER type (docs/ABI.md section 4 and extension 5.4).
 *
 * id.raw[0] = period in ms (first expiry and interval); the timer re-arms
 * until unregistered; ret_data[0] = CLOCK_MONOTONIC ms (truncated to u32)
 * of the expiry; ret_data[1] = expirations since the last delivery; a
 * kevent is on the ready list at most once, so expirations coalesce into
 * one delivery.
 *
 * Bounds used for a delivery with cum = sum of ret_data[1] so far, t_add0
 * taken before the ADD, t_add1 after it and t_ret after the WAIT:
 *   expiry not early:    ret_data[0] >= t_add0 + cum*P - 2
 *   expiry not future:   ret_data[0] <= t_ret + 1
 *   count not too high:  cum <= (t_ret - t_add0 + 2) / P
 * ret_data[0] is taken as the time of the latest expiry counted.
 */

#include "testutil.h"

static int fd;

struct tstate {
	__u32 period;
	long long t_add0, t_add1;
	long long cum;
};

static void tstate_add(struct tstate *s, struct ukevent uk, const char *what)
{
	s->period = uk.id.raw[0];
	s->cum = 0;
	s->t_add0 = now_ms();
	CHECK_RET(k_add1(fd, uk), 0, what);
	s->t_add1 = now_ms();
}

/* Check one delivery e of timer s returned by a WAIT that ended at t_ret. */
static void check_delivery(struct tstate *s, const struct ukevent *e,
			   long long t_ret, const char *what)
{
	char name[160];
	long long rd0 = u32_diff(e->ret_data[0], (__u32)s->t_add0);

	s->cum += e->ret_data[1];

	snprintf(name, sizeof(name), "%s: type TIMER, raw[0] = period", what);
	CHECK(e->type == KEVENT_TIMER && e->id.raw[0] == s->period, name);
	snprintf(name, sizeof(name), "%s: ret_flags DONE", what);
	CHECK_HEX(e->ret_flags, KEVENT_RET_DONE, name);
	snprintf(name, sizeof(name), "%s: ret_data[1] >= 1", what);
	CHECK_RANGE(e->ret_data[1], 1, 0x7fffffff, name);
	snprintf(name, sizeof(name),
		 "%s: expirations so far (%lld) fit the elapsed time", what, s->cum);
	CHECK_RANGE(s->cum, 1, (t_ret - s->t_add0 + 2) / s->period, name);
	snprintf(name, sizeof(name),
		 "%s: ret_data[0] - t_add in [cum*P - 2, t_ret + 1]", what);
	CHECK_RANGE(rd0, s->cum * s->period - 2, t_ret - s->t_add0 + 1, name);
}

static void test_periodic(void)
{
	struct tstate s;
	struct ukevent ev[2];
	long long t_ret;
	__u32 f = 0;
	int i;

	tstate_add(&s, uk_timer(100, 0, 0x101, 0x102), "ADD periodic 100 ms timer");
	for (i = 0; i < 4; i++) {
		char what[64];

		snprintf(what, sizeof(what), "periodic delivery %d", i + 1);
		memset(ev, 0, sizeof(ev));
		CHECK_RET(k_wait(fd, ev, 2, 0), 1, what);
		t_ret = now_ms();
		if (i == 0)
			CHECK_TIME(t_ret - s.t_add0, 98, 100,
				   "first expiry of a 100 ms timer after ~100 ms");
		CHECK_HEX(ev[0].req_flags, 0, "periodic: req_flags 0");
		check_delivery(&s, &ev[0], t_ret, what);
	}
	CHECK_TIME(t_ret - s.t_add0, 398, 400, "4 deliveries of a 100 ms timer took ~400 ms");
	CHECK_RET(k_remove1(fd, ev[0], &f), 0, "REMOVE the periodic timer");
	CHECK_HEX(f, KEVENT_RET_DONE, "periodic timer stayed registered after deliveries");
	CHECK_RET(k_wait(fd, ev, 1, 250), 0, "removed periodic timer fires no more");
}

static void test_oneshot(void)
{
	struct tstate s;
	struct ukevent ev[2];
	long long t_ret;
	__u32 f = 0;

	tstate_add(&s, uk_timer(250, KEVENT_REQ_ONESHOT, 0x201, 0),
		   "ADD oneshot 250 ms timer");
	CHECK_RET(k_wait(fd, ev, 2, 0), 1, "oneshot delivered");
	t_ret = now_ms();
	CHECK_TIME(t_ret - s.t_add0, 248, 250, "oneshot 250 ms fired after ~250 ms");
	CHECK_HEX(ev[0].req_flags, KEVENT_REQ_ONESHOT, "oneshot: req_flags ONESHOT");
	check_delivery(&s, &ev[0], t_ret, "oneshot delivery");
	CHECK_RET(k_wait(fd, ev, 2, 600), 0, "oneshot not delivered a second time");
	CHECK_RET(k_remove1(fd, uk_timer(250, 0, 0x201, 0), &f), 0,
		  "REMOVE the delivered oneshot");
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "delivered oneshot is unregistered: BROKEN|DONE");
}

static void test_coalescing(void)
{
	struct tstate s;
	struct ukevent ev[8];
	long long t1, t_ret, t_ret2, lo;
	__u32 rd1;
	__u32 f = 0;

	tstate_add(&s, uk_timer(10, 0, 0x301, 0), "ADD periodic 10 ms timer");
	sleep_ms(200);
	t1 = now_ms();
	CHECK_RET(k_wait(fd, ev, 8, 0), 1,
		  "after 200 ms one WAIT num=8 gets exactly ONE event for it");
	t_ret = now_ms();
	rd1 = ev[0].ret_data[1];
	lo = (t1 - s.t_add1) / 10 / 2;
	CHECK_RANGE(rd1, lo > 1 ? lo : 1, (t_ret - s.t_add0 + 2) / 10,
		    "coalesced delivery: ret_data[1] counts the ~20 expirations");
	check_delivery(&s, &ev[0], t_ret, "coalesced delivery");

	CHECK_RET(k_wait(fd, ev, 8, 0), 1, "next WAIT gets one more event");
	t_ret2 = now_ms();
	check_delivery(&s, &ev[0], t_ret2, "delivery after the coalesced one");
	/*
	 * Counting from registration again would give about twice the
	 * elapsed periods.  (A per-delivery bound from t1 would be wrong: an
	 * expiry just before the first delivery may be counted in this one.)
	 */
	CHECK_RANGE(rd1 + ev[0].ret_data[1], 2, (t_ret2 - s.t_add0 + 2) / 10,
		    "ret_data[1] counts only since the last delivery (sum fits)");

	CHECK_RET(k_remove1(fd, ev[0], &f), 0, "REMOVE the 10 ms timer");
	CHECK_HEX(f, KEVENT_RET_DONE, "10 ms timer was registered");
	CHECK_RET(k_wait(fd, ev, 8, 100), 0, "nothing after REMOVE");
}

static void test_two_timers(void)
{
	struct tstate a, b;
	struct ukevent ev[8];
	long long t1, t_ret, lo;
	int i, seen_a = 0, seen_b = 0;
	__u32 f = 0;

	tstate_add(&a, uk_timer(40, 0, 0x401, 0), "ADD periodic 40 ms timer");
	tstate_add(&b, uk_timer(100, 0, 0x402, 0), "ADD periodic 100 ms timer");
	sleep_ms(450);
	t1 = now_ms();
	CHECK_RET(k_wait(fd, ev, 8, 100), 2,
		  "two periodic timers after 450 ms: WAIT num=8 returns exactly 2");
	t_ret = now_ms();
	CHECK_TIME(t_ret - t1, 98, 100, "WAIT num=8 timeout 100 with 2 ready slept 100 ms");
	for (i = 0; i < 2; i++) {
		if (ev[i].user[0] == 0x401) {
			seen_a++;
			lo = (t1 - a.t_add1) / 40 / 2;
			CHECK_RANGE(ev[i].ret_data[1], lo > 1 ? lo : 1,
				    (t_ret - a.t_add0 + 2) / 40,
				    "40 ms timer: ret_data[1] ~11");
			check_delivery(&a, &ev[i], t_ret, "40 ms timer");
		} else if (ev[i].user[0] == 0x402) {
			seen_b++;
			lo = (t1 - b.t_add1) / 100 / 2;
			CHECK_RANGE(ev[i].ret_data[1], lo > 1 ? lo : 1,
				    (t_ret - b.t_add0 + 2) / 100,
				    "100 ms timer: ret_data[1] ~4");
			check_delivery(&b, &ev[i], t_ret, "100 ms timer");
		}
	}
	CHECK_EQ(seen_a, 1, "40 ms timer delivered exactly once");
	CHECK_EQ(seen_b, 1, "100 ms timer delivered exactly once");
	k_remove1(fd, uk_timer(40, 0, 0x401, 0), &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE 40 ms timer");
	k_remove1(fd, uk_timer(100, 0, 0x402, 0), &f);
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE 100 ms timer");
}

static void test_mask_all(void)
{
	struct ukevent uk = uk_timer(30, KEVENT_REQ_ONESHOT, 0x501, 0), ev[1];

	uk.event = KEVENT_MASK_ALL;
	CHECK_RET(k_add1(fd, uk), 0, "ADD oneshot timer with event KEVENT_MASK_ALL");
	CHECK_RET(k_wait(fd, ev, 1, 2000), 1, "timer with event MASK_ALL fires");
	CHECK_HEX(ev[0].event, KEVENT_MASK_ALL, "delivered event mask is the requested one");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_timer");
	fd = dev_open(t_dev, O_RDWR);

	test_periodic();
	test_oneshot();
	test_coalescing();
	test_two_timers();
	test_mask_all();

	close(fd);
	return t_done();
}
