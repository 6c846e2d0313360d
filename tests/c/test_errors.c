/*
 * test_errors - error answers of the device (docs/ABI.md section 2, 5.3).
 *
 *  - an ioctl number other than KEVENT_USER_CTL/WAIT: -1/ENODEV;
 *  - KEVENT_USER_CTL with cmd INIT or an unknown cmd: -1/EINVAL, and INIT
 *    leaks no descriptor;
 *  - an argument that cannot be read or written: -1/EINVAL, nothing
 *    registered, and a WAIT that could not write keeps the event.
 *
 * Transport difference: when the header pointer itself is unreadable, the
 * FUSE-file transport never gets to answer.  There the ioctl is a
 * "restricted" FUSE ioctl: the KERNEL copies the 12-byte header
 * (_IOC_SIZE of the command) from the caller before it sends anything to
 * the daemon, and fails the call with EFAULT.  Under CUSE (unrestricted
 * ioctl) the daemon reads the header itself and answers EINVAL as 2006
 * did.  So EFAULT is accepted only when KEVENT_TRANSPORT=fuse.
 */

#include "testutil.h"

static int fd;
static long pagesz;

static void test_unknown_ioctl(void)
{
	unsigned char b[256];

	memset(b, 0, sizeof(b));
	kb_hdr(b, KEVENT_CTL_WAIT, 0, 10);
	CHECK_ERR(ioctl(fd, _IO('K', 7), b), ENODEV, "ioctl _IO('K', 7): -1/ENODEV");
	CHECK_ERR(ioctl(fd, 0x1234, b), ENODEV, "ioctl 0x1234: -1/ENODEV");
	CHECK_ERR(ioctl(fd, _IO('K', 0), b), ENODEV, "ioctl _IO('K', 0): -1/ENODEV");
	CHECK_ERR(ioctl(fd, _IOWR('K', 2, struct kevent_user_control), b), ENODEV,
		  "ioctl _IOWR('K', 2, 12 bytes): -1/ENODEV");
	CHECK_ERR(ioctl(fd, _IOWR('K', 0, struct ukevent), b), ENODEV,
		  "ioctl _IOWR('K', 0, 40 bytes): -1/ENODEV");
}

static void test_bad_cmd(void)
{
	struct ukevent uk[1];
	int probe, after;

	uk[0] = uk_timer(30, 0, 0x101, 0);

	/* the lowest free descriptor before and after */
	probe = open("/dev/null", O_RDONLY);
	close(probe);
	CHECK_ERR(k_call(fd, KEVENT_USER_CTL, KEVENT_CTL_INIT, 1, 0, uk, 1, NULL),
		  EINVAL, "KEVENT_USER_CTL cmd INIT: -1/EINVAL");
	after = open("/dev/null", O_RDONLY);
	close(after);
	CHECK_EQ(after, probe, "cmd INIT leaked no descriptor");

	CHECK_ERR(k_call(fd, KEVENT_USER_CTL, 99, 1, 0, uk, 1, NULL), EINVAL,
		  "KEVENT_USER_CTL cmd 99: -1/EINVAL");
	CHECK_ERR(k_call(fd, KEVENT_USER_CTL, 5, 1, 0, uk, 1, NULL), EINVAL,
		  "KEVENT_USER_CTL cmd 5: -1/EINVAL");
	CHECK_RET(k_wait(fd, uk, 1, 300), 0, "bad cmds registered nothing");
}

/* n pages of fresh anonymous memory */
static unsigned char *pages(int n)
{
	void *p = mmap(NULL, (size_t)n * pagesz, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

static void test_array_unreadable(void)
{
	unsigned char *m = pages(2);
	unsigned char *hdr = m + pagesz - HDR_SIZE;
	unsigned char *hdr1 = m + pagesz - HDR_SIZE - UK_SIZE;
	struct ukevent ev[1], t;
	int i;

	/* Header at the end of page 0, the 3 timers on page 1 (then PROT_NONE). */
	kb_hdr(hdr, KEVENT_CTL_ADD, 3, 0);
	for (i = 0; i < 3; i++) {
		t = uk_timer(30, 0, 0x201 + i, 0);
		kb_put(hdr, i, &t);
	}
	CHECK_RET(mprotect(m + pagesz, pagesz, PROT_NONE), 0, "mprotect PROT_NONE");
	CHECK_ERR(ioctl(fd, KEVENT_USER_CTL, hdr), EINVAL,
		  "ADD num=3 with the array unreadable: -1/EINVAL");
	CHECK_RET(k_wait(fd, ev, 1, 300), 0, "unreadable ADD registered nothing");

	/* REMOVE and MODIFY with an unreadable array. */
	kb_hdr(hdr, KEVENT_CTL_REMOVE, 2, 0);
	CHECK_ERR(ioctl(fd, KEVENT_USER_CTL, hdr), EINVAL,
		  "REMOVE with the array unreadable: -1/EINVAL");
	kb_hdr(hdr, KEVENT_CTL_MODIFY, 2, 0);
	CHECK_ERR(ioctl(fd, KEVENT_USER_CTL, hdr), EINVAL,
		  "MODIFY with the array unreadable: -1/EINVAL");

	/* Only the first of 3 ukevents readable: still an error. */
	CHECK_RET(mprotect(m + pagesz, pagesz, PROT_READ | PROT_WRITE), 0, "mprotect RW");
	kb_hdr(hdr1, KEVENT_CTL_ADD, 3, 0);
	for (i = 0; i < 3; i++) {
		t = uk_timer(NEVER_MS, 0, 0x211 + i, 0);
		kb_put(hdr1, i, &t);
	}
	CHECK_RET(mprotect(m + pagesz, pagesz, PROT_NONE), 0, "mprotect PROT_NONE");
	CHECK_ERR(ioctl(fd, KEVENT_USER_CTL, hdr1), EINVAL,
		  "ADD num=3 with ukevents 2 and 3 unreadable: -1/EINVAL");
	munmap(m, 2 * pagesz);
}

static void test_add_unwritable(void)
{
	unsigned char *m = pages(1);
	struct ukevent t = uk_timer(30, 0, 0x301, 0), ev[1];
	__u32 f = 0;

	kb_hdr(m, KEVENT_CTL_ADD, 1, 0);
	kb_put(m, 0, &t);
	CHECK_RET(mprotect(m, pagesz, PROT_READ), 0, "mprotect PROT_READ");
	CHECK_ERR(ioctl(fd, KEVENT_USER_CTL, m), EINVAL,
		  "ADD with header+array read-only: -1/EINVAL");
	CHECK_RET(k_wait(fd, ev, 1, 300), 0, "read-only ADD registered nothing");
	k_remove1(fd, t, &f);
	CHECK_HEX(f, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
		  "read-only ADD: key not registered");
	munmap(m, pagesz);
}

static void test_wait_unwritable(void)
{
	unsigned char *m = pages(2);
	unsigned char *hdr = m + pagesz - HDR_SIZE;
	struct ukevent ev[2];

	/* (a) header writable, array on a read-only page. */
	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0x401, 0)), 0,
		  "ADD oneshot 30 ms");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "timer fired");
	kb_hdr(hdr, KEVENT_CTL_WAIT, 1, 100);
	CHECK_RET(mprotect(m + pagesz, pagesz, PROT_READ), 0, "mprotect PROT_READ");
	CHECK_ERR(ioctl(fd, KEVENT_USER_WAIT, hdr), EINVAL,
		  "WAIT into a read-only array: -1/EINVAL");
	CHECK(poll_fd(fd, POLLIN, 0) & POLLIN, "event still ready after the failed WAIT");
	CHECK_RET(k_wait(fd, ev, 2, 100), 1, "a proper WAIT gets the event (not lost)");
	CHECK_HEX(ev[0].user[0], 0x401, "it is the timer");

	/* (b) header and array both read-only. */
	CHECK_RET(mprotect(m, 2 * pagesz, PROT_READ | PROT_WRITE), 0, "mprotect RW");
	kb_hdr(m, KEVENT_CTL_WAIT, 1, 100);
	CHECK_RET(k_add1(fd, uk_timer(30, KEVENT_REQ_ONESHOT, 0x402, 0)), 0,
		  "ADD oneshot 30 ms");
	CHECK(poll_fd(fd, POLLIN, 5000) & POLLIN, "timer fired");
	CHECK_RET(mprotect(m, 2 * pagesz, PROT_READ), 0, "mprotect PROT_READ");
	CHECK_ERR(ioctl(fd, KEVENT_USER_WAIT, m), EINVAL,
		  "WAIT into read-only header+array: -1/EINVAL");
	CHECK_RET(k_wait(fd, ev, 2, 100), 1, "a proper WAIT gets the event (not lost)");
	CHECK_HEX(ev[0].user[0], 0x402, "it is the timer");
	munmap(m, 2 * pagesz);
}

static void check_bad_header(unsigned long req, void *arg, const char *name)
{
	int r = ioctl(fd, req, arg), e = errno;

	if (r == -1 && e == EFAULT && t_is_fuse()) {
		/* FUSE file: the kernel copies the header and fails first. */
		t_report(1, name, __FILE__, __LINE__, "%s", "");
		t_note("  (EFAULT from the kernel: KEVENT_TRANSPORT=fuse)");
		return;
	}
	errno = e;
	CHECK_ERR(r, EINVAL, name);
}

static void test_header_unreadable(void)
{
	unsigned char *m = pages(1);
	struct ukevent ev[1];

	CHECK_RET(mprotect(m, pagesz, PROT_NONE), 0, "mprotect PROT_NONE");
	check_bad_header(KEVENT_USER_CTL, (void *)8,
			 "KEVENT_USER_CTL with arg (void *)8: -1/EINVAL");
	check_bad_header(KEVENT_USER_WAIT, (void *)8,
			 "KEVENT_USER_WAIT with arg (void *)8: -1/EINVAL");
	check_bad_header(KEVENT_USER_CTL, m,
			 "KEVENT_USER_CTL with arg on a PROT_NONE page: -1/EINVAL");
	check_bad_header(KEVENT_USER_WAIT, m,
			 "KEVENT_USER_WAIT with arg on a PROT_NONE page: -1/EINVAL");
	munmap(m, pagesz);

	/* The queue is still fine. */
	CHECK_RET(k_add1(fd, uk_timer(20, KEVENT_REQ_ONESHOT, 0x501, 0)), 0,
		  "ADD after the faults");
	CHECK_RET(k_wait(fd, ev, 1, 2000), 1, "WAIT after the faults");
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_errors");
	pagesz = sysconf(_SC_PAGESIZE);
	fd = dev_open(t_dev, O_RDWR);

	test_unknown_ioctl();
	test_bad_cmd();
	test_array_unreadable();
	test_add_unwritable();
	test_wait_unwritable();
	test_header_unreadable();

	close(fd);
	return t_done();
}
