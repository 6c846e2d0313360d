/*
 * libkevent - the 2006 kevent system calls on top of the /dev/kevent ioctls.
 *
 * The take1 patch added four system calls (kevent_ctl, aio_recv, aio_send,
 * aio_sendfile).  A userspace daemon cannot add system calls, so programs
 * written against them link this library instead (docs/ABI.md section 5 item 5).
 * Each function keeps the 2006 prototype and return convention.
 *
 * Decisions the ABI leaves open, kept here in one place:
 *  - kevent_ctl(INIT) opens $KEVENT_DEVICE (default /dev/kevent) with
 *    O_RDWR|O_CLOEXEC.  (2006 made an O_RDONLY descriptor without
 *    close-on-exec; the ioctls do not care about the access mode.)
 *  - An unreadable header makes kevent_ctl fail with EINVAL, as the 2006
 *    syscall did (copy_from_user first), instead of crashing the caller.
 *  - A descriptor that does not exist gives ENODEV, as the 2006 syscalls
 *    did (fget failed -> -ENODEV), instead of the EBADF of ioctl().
 *  - aio_recv/aio_send refuse a size that does not fit the 32-bit
 *    id.raw[1] with EINVAL (2006 truncated it silently).
 *  - These are ADD ioctls, so the per-queue limit of 1023 kevents applies
 *    to them too (the 2006 syscalls bypassed that check).
 */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "kevent.h"

#define KEVENT_DEFAULT_DEVICE	"/dev/kevent"

/* One ADD request: the header followed by exactly one ukevent. */
struct kevent_add_one {
	struct kevent_user_control	ctl;
	unsigned char			uk[sizeof(struct ukevent)];
};

/*
 * Read the 12-byte header without faulting on a bad pointer: the 2006
 * syscall answered EINVAL there.  process_vm_readv() on ourselves reports
 * EFAULT for unmapped memory; where it is unavailable (seccomp, very old
 * kernel) fall back to a plain copy.
 */
static int read_header(const void *arg, struct kevent_user_control *ctl)
{
	struct iovec local, remote;
	ssize_t n;

	if (arg == NULL)
		return -1;

	local.iov_base = ctl;
	local.iov_len = sizeof(*ctl);
	remote.iov_base = (void *)arg;
	remote.iov_len = sizeof(*ctl);

	n = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
	if (n == (ssize_t)sizeof(*ctl))
		return 0;
	if (n >= 0 || errno == EFAULT)
		return -1;

	memcpy(ctl, arg, sizeof(*ctl));
	return 0;
}

static const char *device_path(void)
{
	const char *path = getenv("KEVENT_DEVICE");

	if (path == NULL || *path == '\0')
		path = KEVENT_DEFAULT_DEVICE;
	return path;
}

static int kevent_ioctl(int fd, unsigned long req, void *arg)
{
	int err = ioctl(fd, req, arg);

	if (err < 0 && errno == EBADF)
		errno = ENODEV;
	return err;
}

int kevent_ctl(int fd, void *arg)
{
	struct kevent_user_control ctl;

	if (read_header(arg, &ctl) < 0) {
		errno = EINVAL;
		return -1;
	}

	switch (ctl.cmd) {
	case KEVENT_CTL_INIT:
		return open(device_path(), O_RDWR | O_CLOEXEC);
	case KEVENT_CTL_WAIT:
		return kevent_ioctl(fd, KEVENT_USER_WAIT, arg);
	default:
		/* ADD, REMOVE, MODIFY; the device answers EINVAL to the rest. */
		return kevent_ioctl(fd, KEVENT_USER_CTL, arg);
	}
}

/*
 * Register one ukevent with ADD.  For a single ukevent the ioctl already
 * returns what the 2006 syscalls returned: 0 queued, 1 ready at once,
 * -1 with errno when registration failed.
 */
static int add_one(int ctl_fd, const struct ukevent *uk)
{
	struct kevent_add_one req;

	memset(&req, 0, sizeof(req));
	req.ctl.cmd = KEVENT_CTL_ADD;
	req.ctl.num = 1;
	req.ctl.timeout = 0;
	memcpy(req.uk, uk, sizeof(*uk));

	return kevent_ioctl(ctl_fd, KEVENT_USER_CTL, &req);
}

static int naio_setup(int ctl_fd, int s, void *buf, size_t size, __u32 event)
{
	struct ukevent uk;

#if SIZE_MAX > UINT32_MAX
	/* id.raw[1] carries the size: 32 bits (on i386 size_t always fits). */
	if ((uint64_t)size > UINT32_MAX) {
		errno = EINVAL;
		return -1;
	}
#endif

	memset(&uk, 0, sizeof(uk));
	uk.type = KEVENT_NAIO;
	uk.ptr = buf;
	uk.req_flags = KEVENT_REQ_ONESHOT;
	uk.event = event;
	uk.id.raw[0] = (__u32)s;
	uk.id.raw[1] = (__u32)size;

	return add_one(ctl_fd, &uk);
}

int aio_recv(int ctl_fd, int s, void *buf, size_t size, unsigned flags)
{
	(void)flags;	/* unused in 2006 as well */
	return naio_setup(ctl_fd, s, buf, size, KEVENT_SOCKET_RECV);
}

int aio_send(int ctl_fd, int s, void *buf, size_t size, unsigned flags)
{
	(void)flags;	/* unused in 2006 as well */
	return naio_setup(ctl_fd, s, buf, size, KEVENT_SOCKET_SEND);
}

int aio_sendfile(int ctl_fd, int fd, int s, size_t size, unsigned flags)
{
	struct ukevent uk;

	(void)size;	/* 2006 sent the whole file whatever size said */

	/* Exactly the ukevent sys_aio_sendfile built: not ONESHOT. */
	memset(&uk, 0, sizeof(uk));
	uk.type = KEVENT_AIO;
	uk.event = KEVENT_AIO_BIO;
	uk.id.raw[0] = (__u32)fd;
	uk.id.raw[1] = (flags & 7) ? (flags & 7) : 8;
	uk.ret_data[0] = (__u32)s;

	return add_one(ctl_fd, &uk);
}
