/*
 * test_remove_modify - REMOVE and MODIFY (docs/ABI.md section 3).
 *
 * The key is id.raw[0], id.raw[1], user[0], user[1]; type and event are not
 * part of it.  Every ukevent is written back in place with ret_flags |= DONE,
 * plus BROKEN when nothing matched; hdr.num is unchanged; the return is 0.
 * REMOVE also drops a ready but uncollected event.  MODIFY replaces the
 * event mask and req_flags of the registered kevent.
 */

#include "testutil.h"

static int fd;

/*
 * REMOVE or MODIFY of n ukevents; checks the return value 0 and that
 * hdr.num was not changed, and gives the written-back array in uks.
 */
static void ctl_n(unsigned cmd, struct ukevent *uks, unsigned n, const char *what)
{
	struct kevent_user_control h;
	char name[160];
	int r;

	r = k_ctl(fd, cmd, uks, n, &h);
	snprintf(name, sizeof(name), "%s: returns 0", what);
	CHECK_RET(r, 0, name);
	snprintf(name, sizeof(name), "%s: hdr.num unchanged (%u)", what, n);
	CHECK_EQ(h.num, n, name);
}

static void test_remove_key_ignores_type_and_event(void)
{
	struct ukevent k = uk_timer(NEVER_MS, 0, 0x11, 0x22), r, exp;

	k.id.raw[1] = 5;
	CHECK_RET(k_add1(fd, k), 0, "ADD timer key (NEVER, 5, 0x11, 0x22)");

	/* Same key, other type/event/req_flags, junk ret_flags and ret_data. */
	r = k;
	r.type = KEVENT_SOCKET;
	r.event = 0x77;
	r.req_flags = KEVENT_REQ_ONESHOT;
	r.ret_flags = 0x10;
	r.ret_data[0] = 1;
	r.ret_data[1] = 2;
	exp = r;
	exp.ret_flags = 0x10 | KEVENT_RET_DONE;
	ctl_n(KEVENT_CTL_REMOVE, &r, 1, "REMOVE with type SOCKET, event 0x77");
	CHECK_MEM(&r, &exp, UK_SIZE,
		  "REMOVE match: written back in place with ret_flags |= DONE");

	r = k;
	ctl_n(KEVENT_CTL_REMOVE, &r, 1, "REMOVE the same key again");
	CHECK_HEX(r.ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "REMOVE of a removed key: BROKEN|DONE");
	exp = k;
	exp.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
	CHECK_MEM(&r, &exp, UK_SIZE, "REMOVE no match: rest written back unchanged");
}

static void test_remove_key_fields(void)
{
	struct ukevent k = uk_timer(NEVER_MS, 0, 0x31, 0x32), r;
	static const char *field[4] = { "id.raw[0]", "id.raw[1]", "user[0]", "user[1]" };
	int i;

	k.id.raw[1] = 7;
	CHECK_RET(k_add1(fd, k), 0, "ADD timer key (NEVER, 7, 0x31, 0x32)");
	for (i = 0; i < 4; i++) {
		char name[96];

		r = k;
		switch (i) {
		case 0: r.id.raw[0] ^= 1; break;
		case 1: r.id.raw[1] ^= 1; break;
		case 2: r.user[0] ^= 1; break;
		case 3: r.user[1] ^= 1; break;
		}
		snprintf(name, sizeof(name), "REMOVE with %s different", field[i]);
		ctl_n(KEVENT_CTL_REMOVE, &r, 1, name);
		snprintf(name, sizeof(name), "%s is part of the key: BROKEN|DONE",
			 field[i]);
		CHECK_HEX(r.ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE, name);
	}
	r = k;
	ctl_n(KEVENT_CTL_REMOVE, &r, 1, "REMOVE with the exact key");
	CHECK_HEX(r.ret_flags, KEVENT_RET_DONE, "exact key still registered: DONE");
}

static void test_remove_batch(void)
{
	struct ukevent k[3];

	k[0] = uk_timer(NEVER_MS, 0, 0x41, 0);
	k[1] = uk_timer(NEVER_MS, 0, 0x42, 0);	/* never added */
	k[2] = uk_timer(NEVER_MS, KEVENT_REQ_ONESHOT, 0x43, 0);
	CHECK_RET(k_add1(fd, k[0]), 0, "ADD K1");
	CHECK_RET(k_add1(fd, k[2]), 0, "ADD K3");
	ctl_n(KEVENT_CTL_REMOVE, k, 3, "REMOVE [K1, unknown, K3]");
	CHECK_HEX(k[0].ret_flags, KEVENT_RET_DONE, "REMOVE batch: K1 DONE");
	CHECK_HEX(k[1].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "REMOVE batch: unknown BROKEN|DONE");
	CHECK_HEX(k[2].ret_flags, KEVENT_RET_DONE, "REMOVE batch: K3 DONE");

	ctl_n(KEVENT_CTL_REMOVE, k, 0, "REMOVE num=0");
}

static void test_remove_drops_ready(void)
{
	struct ukevent k = uk_timer(30, 0, 0x51, 0x52), ev[1];
	__u32 f = 0;

	CHECK_RET(k_add1(fd, k), 0, "ADD periodic 30 ms timer");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "timer fired (fd readable)");
	CHECK_RET(k_remove1(fd, k, &f), 0, "REMOVE the ready timer");
	CHECK_HEX(f, KEVENT_RET_DONE, "REMOVE ready timer: DONE");
	CHECK_EQ(poll_fd(fd, POLLIN, 0), 0,
		 "after REMOVE the fd is not readable (ready event dropped)");
	CHECK_RET(k_wait(fd, ev, 1, 200), 0,
		  "WAIT after REMOVE of a ready event returns 0");
}

static void test_modify(void)
{
	struct ukevent k = uk_timer(200, 0, 0x61, 0x62), m, exp, ev[2];
	long long t0;
	__u32 f = 0;

	CHECK_RET(k_add1(fd, k), 0, "ADD periodic 200 ms timer");
	CHECK_RET(k_wait(fd, ev, 2, 0), 1, "WAIT gets the periodic timer");
	CHECK_HEX(ev[0].req_flags, 0, "delivered req_flags 0 (periodic)");
	CHECK_HEX(ev[0].event, KEVENT_TIMER_FIRED, "delivered event mask TIMER_FIRED");

	/* Turn it ONESHOT and change its event mask. */
	m = k;
	m.event = KEVENT_TIMER_FIRED | 0x2;
	m.req_flags = KEVENT_REQ_ONESHOT;
	m.ret_flags = 0x10;
	m.ret_data[0] = 0xabc;
	exp = m;
	exp.ret_flags = 0x10 | KEVENT_RET_DONE;
	t0 = now_ms();
	ctl_n(KEVENT_CTL_MODIFY, &m, 1, "MODIFY to ONESHOT, event 0x3");
	CHECK_MEM(&m, &exp, UK_SIZE,
		  "MODIFY match: written back in place with ret_flags |= DONE");

	CHECK_RET(k_wait(fd, ev, 2, 0), 1, "WAIT after MODIFY gets the timer once more");
	CHECK_HEX(ev[0].req_flags, KEVENT_REQ_ONESHOT,
		  "MODIFY replaced req_flags (now ONESHOT)");
	CHECK_HEX(ev[0].event, 0x3, "MODIFY replaced the event mask (0x3)");
	CHECK_HEX(ev[0].ret_flags, KEVENT_RET_DONE, "delivered after MODIFY: ret_flags DONE");
	CHECK_HEX(ev[0].user[0], 0x61, "delivered after MODIFY: user[0]");
	CHECK(now_ms() - t0 <= 200 + t_slack, "modified timer kept its period");

	CHECK_RET(k_wait(fd, ev, 2, 500), 0,
		  "ONESHOT (by MODIFY) timer not delivered again");
	CHECK_RET(k_remove1(fd, k, &f), 0, "REMOVE the modified timer");
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "modified ONESHOT timer was unregistered on delivery");
}

static void test_modify_no_match_and_batch(void)
{
	struct ukevent k[2], exp;
	__u32 f = 0;

	k[0] = uk_timer(NEVER_MS, 0, 0x71, 0x72);
	k[1] = uk_timer(NEVER_MS, 0, 0x73, 0x74);	/* never added */
	CHECK_RET(k_add1(fd, k[0]), 0, "ADD K1");

	exp = k[1];
	exp.ret_flags = KEVENT_RET_BROKEN | KEVENT_RET_DONE;
	ctl_n(KEVENT_CTL_MODIFY, &k[1], 1, "MODIFY of an unknown key");
	CHECK_MEM(&k[1], &exp, UK_SIZE, "MODIFY no match: BROKEN|DONE, rest unchanged");

	k[1] = uk_timer(NEVER_MS, 0, 0x73, 0x74);
	k[0].type = KEVENT_SOCKET;	/* type is not part of the key */
	ctl_n(KEVENT_CTL_MODIFY, k, 2, "MODIFY [K1 (type SOCKET), unknown]");
	CHECK_HEX(k[0].ret_flags, KEVENT_RET_DONE, "MODIFY batch: K1 DONE");
	CHECK_HEX(k[0].type, KEVENT_SOCKET, "MODIFY batch: K1 type written back as given");
	CHECK_HEX(k[1].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "MODIFY batch: unknown BROKEN|DONE");

	ctl_n(KEVENT_CTL_MODIFY, k, 0, "MODIFY num=0");

	k[0] = uk_timer(NEVER_MS, 0, 0x71, 0x72);
	CHECK_RET(k_remove1(fd, k[0], &f), 0, "REMOVE K1 after MODIFY");
	CHECK_HEX(f, KEVENT_RET_DONE, "K1 still registered after MODIFY");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_remove_modify");
	fd = dev_open(t_dev, O_RDWR);

	test_remove_key_ignores_type_and_event();
	test_remove_key_fields();
	test_remove_batch();
	test_remove_drops_ready();
	test_modify();
	test_modify_no_match_and_batch();

	close(fd);
	return t_done();
}
