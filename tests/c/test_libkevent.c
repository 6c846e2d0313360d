/*
 * test_libkevent - the 2006 system call kevent_ctl() as provided by
 * libkevent (docs/ABI.md section 5 item 5): cmd INIT opens $KEVENT_DEVICE and
 * returns a working descriptor; WAIT goes to KEVENT_USER_WAIT, the other
 * commands to KEVENT_USER_CTL.  Library decisions checked here: the INIT
 * descriptor is O_RDWR with close-on-exec; a bad header pointer gives
 * EINVAL and a descriptor that does not exist ENODEV, as the 2006 syscall.
 */

#include "testutil.h"

static int lib_init(void)
{
	unsigned char b[KB_SIZE(1)];

	memset(b, 0, sizeof(b));
	kb_hdr(b, KEVENT_CTL_INIT, 0, 0);
	return kevent_ctl(-1, b);
}

static void test_init(void)
{
	unsigned char b[KB_SIZE(2)];
	struct kevent_user_control h;
	struct ukevent uk, e;
	int kfd, kfd2, fl;
	long long t0;

	setenv("KEVENT_DEVICE", t_dev, 1);
	kfd = lib_init();
	CHECK(kfd >= 0, "kevent_ctl(INIT) returns a descriptor");
	if (kfd < 0) {
		t_note("INIT failed: %s", strerror(errno));
		return;
	}
	fl = fcntl(kfd, F_GETFD);
	CHECK(fl >= 0 && (fl & FD_CLOEXEC), "INIT descriptor is close-on-exec");
	fl = fcntl(kfd, F_GETFL);
	CHECK(fl >= 0 && (fl & O_ACCMODE) == O_RDWR, "INIT descriptor is O_RDWR");

	/* ADD through kevent_ctl */
	uk = uk_timer(40, KEVENT_REQ_ONESHOT, 0x101, 0x102);
	kb_hdr(b, KEVENT_CTL_ADD, 1, 0);
	kb_put(b, 0, &uk);
	t0 = now_ms();
	CHECK_RET(kevent_ctl(kfd, b), 0, "kevent_ctl(ADD) of a timer returns 0");
	h = kb_gethdr(b);
	CHECK_EQ(h.num, 0, "kevent_ctl(ADD): hdr.num 0");

	/* WAIT through kevent_ctl */
	kb_hdr(b, KEVENT_CTL_WAIT, 1, 3000);
	CHECK_RET(kevent_ctl(kfd, b), 1, "kevent_ctl(WAIT) returns 1");
	CHECK_TIME(now_ms() - t0, 38, 40, "kevent_ctl(WAIT) slept until the timer");
	e = kb_get(b, 0);
	CHECK_HEX(e.user[0], 0x101, "kevent_ctl(WAIT) delivered the timer");
	CHECK_HEX(e.ret_flags, KEVENT_RET_DONE, "delivered ret_flags DONE");

	/* MODIFY and REMOVE through kevent_ctl */
	uk = uk_timer(NEVER_MS, 0, 0x103, 0);
	kb_hdr(b, KEVENT_CTL_ADD, 1, 0);
	kb_put(b, 0, &uk);
	CHECK_RET(kevent_ctl(kfd, b), 0, "kevent_ctl(ADD) long timer");
	kb_hdr(b, KEVENT_CTL_MODIFY, 1, 0);
	kb_put(b, 0, &uk);
	CHECK_RET(kevent_ctl(kfd, b), 0, "kevent_ctl(MODIFY) returns 0");
	CHECK_HEX(kb_get(b, 0).ret_flags, KEVENT_RET_DONE, "kevent_ctl(MODIFY) matched");
	kb_hdr(b, KEVENT_CTL_REMOVE, 1, 0);
	kb_put(b, 0, &uk);
	CHECK_RET(kevent_ctl(kfd, b), 0, "kevent_ctl(REMOVE) returns 0");
	CHECK_HEX(kb_get(b, 0).ret_flags, KEVENT_RET_DONE, "kevent_ctl(REMOVE) matched");

	/* errors */
	kb_hdr(b, 99, 1, 0);
	CHECK_ERR(kevent_ctl(kfd, b), EINVAL, "kevent_ctl cmd 99: -1/EINVAL");
	CHECK_ERR(kevent_ctl(kfd, NULL), EINVAL, "kevent_ctl(fd, NULL): -1/EINVAL");
	CHECK_ERR(kevent_ctl(kfd, (void *)8), EINVAL, "kevent_ctl(fd, (void *)8): -1/EINVAL");
	kb_hdr(b, KEVENT_CTL_WAIT, 1, 10);
	CHECK_ERR(kevent_ctl(999, b), ENODEV, "kevent_ctl on a closed descriptor: -1/ENODEV");

	/* a second INIT is an independent queue */
	kfd2 = lib_init();
	CHECK(kfd2 >= 0 && kfd2 != kfd, "a second INIT gives another descriptor");
	if (kfd2 >= 0) {
		CHECK_RET(k_add1(kfd, uk_timer(30, KEVENT_REQ_ONESHOT, 0x104, 0)), 0,
			  "ADD on the first INIT queue");
		CHECK_RET(k_wait(kfd2, &e, 1, 300), 0, "the second INIT queue sees nothing");
		CHECK_RET(k_wait(kfd, &e, 1, 2000), 1, "the first gets its timer");
		close(kfd2);
	}
	close(kfd);

	/* close freed it: INIT again works */
	kfd = lib_init();
	CHECK(kfd >= 0, "INIT after close returns a descriptor");
	if (kfd >= 0) {
		CHECK_EQ(k_fill(kfd, KEVENT_LIMIT, 0x1000), KEVENT_LIMIT,
			 "INIT queue takes 1023 timers");
		close(kfd);
	}
	kfd = lib_init();
	if (kfd >= 0) {
		CHECK_EQ(k_fill(kfd, KEVENT_LIMIT, 0x2000), KEVENT_LIMIT,
			 "after close, a new INIT queue takes 1023 again");
		close(kfd);
	} else {
		CHECK(0, "INIT after close returns a descriptor");
	}

	setenv("KEVENT_DEVICE", "/nonexistent/kevent", 1);
	CHECK_ERR(lib_init(), ENOENT, "INIT with KEVENT_DEVICE missing: -1/ENOENT");
	setenv("KEVENT_DEVICE", t_dev, 1);
}

static void test_aio_bad_fd(void)
{
	char buf[16];

	CHECK_ERR(aio_recv(999, 0, buf, sizeof(buf), 0), ENODEV,
		  "aio_recv on a closed control descriptor: -1/ENODEV");
	CHECK_ERR(aio_send(999, 0, buf, sizeof(buf), 0), ENODEV,
		  "aio_send on a closed control descriptor: -1/ENODEV");
	CHECK_ERR(aio_sendfile(999, 0, 1, 0, 0), ENODEV,
		  "aio_sendfile on a closed control descriptor: -1/ENODEV");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_libkevent");
	close(999);	/* "a descriptor that does not exist" below */

	/* Fails with "not ok - open device" when the device is absent. */
	close(dev_open(t_dev, O_RDWR));

	test_init();
	test_aio_bad_fd();

	return t_done();
}
