/*
 * kevent.h - userspace header for the /dev/kevent ioctl ABI.
 *
 * The names and values are those of include/linux/kevent.h in
 * "kevent: generic event processing subsystem" (Evgeniy Polyakov,
 * 26 July 2006, "take1"), which was never merged into Linux.  The device is
 * served by the kevent-cuse daemon: see kevent(4), and docs/ABI.md in its
 * sources (section 1 for these numbers).
 *
 * Unlike the 2006 header this one is self-contained: it pulls in
 * <linux/types.h> for __u32 and <sys/ioctl.h> for _IOWR() and ioctl().
 *
 * Layout reminder (docs/ABI.md section 2): the argument of both ioctls is a
 * struct kevent_user_control immediately followed by hdr.num struct ukevent,
 * so the array starts at arg + 12 and is only 4-byte aligned.
 */

#ifndef __KEVENT_H
#define __KEVENT_H

#include <stddef.h>
#include <linux/types.h>
#include <sys/ioctl.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Kevent request flags.
 */
#define KEVENT_REQ_ONESHOT	0x1		/* Process this event only once and then dequeue. */

/*
 * Kevent return flags.
 */
#define KEVENT_RET_BROKEN	0x1		/* Kevent is broken. */
#define KEVENT_RET_DONE		0x2		/* Kevent processing was finished successfully. */

/*
 * Kevent type set.
 */
#define KEVENT_SOCKET		0
#define KEVENT_INODE		1
#define KEVENT_TIMER		2
#define KEVENT_POLL		3
#define KEVENT_NAIO		4
#define KEVENT_AIO		5
#define	KEVENT_MAX		6

/*
 * Per-type event sets.
 * Number of per-event sets should be exactly as number of kevent types.
 */

/*
 * Timer events.
 */
#define	KEVENT_TIMER_FIRED	0x1

/*
 * Socket/network asynchronous IO events.
 */
#define	KEVENT_SOCKET_RECV	0x1
#define	KEVENT_SOCKET_ACCEPT	0x2
#define	KEVENT_SOCKET_SEND	0x4

/*
 * Inode events.
 */
#define	KEVENT_INODE_CREATE	0x1
#define	KEVENT_INODE_REMOVE	0x2

/*
 * Poll events.
 */
#define	KEVENT_POLL_POLLIN	0x0001
#define	KEVENT_POLL_POLLPRI	0x0002
#define	KEVENT_POLL_POLLOUT	0x0004
#define	KEVENT_POLL_POLLERR	0x0008
#define	KEVENT_POLL_POLLHUP	0x0010
#define	KEVENT_POLL_POLLNVAL	0x0020

#define	KEVENT_POLL_POLLRDNORM	0x0040
#define	KEVENT_POLL_POLLRDBAND	0x0080
#define	KEVENT_POLL_POLLWRNORM	0x0100
#define	KEVENT_POLL_POLLWRBAND	0x0200
#define	KEVENT_POLL_POLLMSG	0x0400
#define	KEVENT_POLL_POLLREMOVE	0x1000

/*
 * Asynchronous IO events.
 */
#define	KEVENT_AIO_BIO		0x1

#define KEVENT_MASK_ALL		0xffffffff	/* Mask of all possible event values. */
#define KEVENT_MASK_EMPTY	0x0		/* Empty mask of ready events. */

struct kevent_id
{
	__u32		raw[2];
};

struct ukevent
{
	struct kevent_id	id;			/* Id of this request, e.g. socket number, file descriptor and so on... */
	__u32			type;			/* Event type, e.g. KEVENT_SOCK, KEVENT_INODE, KEVENT_TIMER and so on... */
	__u32			event;			/* Event itself, e.g. SOCK_ACCEPT, INODE_CREATED, TIMER_FIRED... */
	__u32			req_flags;		/* Per-event request flags */
	__u32			ret_flags;		/* Per-event return flags */
	__u32			ret_data[2];		/* Event return data. Event originator fills it with anything it likes. */
#if defined(__GNUC__) && !defined(__cplusplus)
	__extension__		/* anonymous unions are C11; keep -std=c99 -pedantic quiet */
#endif
	union {
		__u32		user[2];		/* User's data. It is not used, just copied to/from user. */
		void		*ptr;
	};
};

#define	KEVENT_CTL_ADD		0
#define	KEVENT_CTL_REMOVE	1
#define	KEVENT_CTL_MODIFY	2
#define	KEVENT_CTL_WAIT		3
#define	KEVENT_CTL_INIT		4

struct kevent_user_control
{
	unsigned int		cmd;			/* Control command, e.g. KEVENT_ADD, KEVENT_REMOVE... */
	unsigned int		num;			/* Number of ukevents this strucutre controls. */
	unsigned int		timeout;		/* Timeout in milliseconds waiting for "num" events to become ready. */
};

#define KEVENT_USER_SYMBOL	'K'
#define KEVENT_USER_CTL		_IOWR(KEVENT_USER_SYMBOL, 0, struct kevent_user_control)
#define KEVENT_USER_WAIT	_IOWR(KEVENT_USER_SYMBOL, 1, struct kevent_user_control)

/*
 * Compile-time checks of the ABI (docs/ABI.md section 1).  Same values on i386
 * and x86-64.
 */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define __KEVENT_ASSERT(c, m)	static_assert(c, m)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define __KEVENT_ASSERT(c, m)	_Static_assert(c, m)
#endif

#ifdef __KEVENT_ASSERT
__KEVENT_ASSERT(sizeof(struct kevent_id) == 8, "struct kevent_id must be 8 bytes");
__KEVENT_ASSERT(sizeof(struct ukevent) == 40, "struct ukevent must be 40 bytes");
__KEVENT_ASSERT(sizeof(struct kevent_user_control) == 12,
		"struct kevent_user_control must be 12 bytes");
__KEVENT_ASSERT((unsigned long)KEVENT_USER_CTL == 0xC00C4B00UL,
		"KEVENT_USER_CTL must be 0xC00C4B00");
__KEVENT_ASSERT((unsigned long)KEVENT_USER_WAIT == 0xC00C4B01UL,
		"KEVENT_USER_WAIT must be 0xC00C4B01");
#undef __KEVENT_ASSERT
#endif

/*
 * The 2006 system calls, provided as library functions by libkevent
 * (docs/ABI.md section 5 item 5) on top of the ioctls.
 *
 * kevent_ctl(fd, arg): arg is a struct kevent_user_control followed by
 *   hdr.num ukevents.  cmd KEVENT_CTL_INIT opens the device ($KEVENT_DEVICE,
 *   default /dev/kevent) and returns the new descriptor; KEVENT_CTL_WAIT is
 *   KEVENT_USER_WAIT; every other cmd goes to KEVENT_USER_CTL.
 * aio_recv/aio_send: queue a oneshot KEVENT_NAIO kevent moving size bytes
 *   between socket s and buf.
 * aio_sendfile: queue a KEVENT_AIO kevent sending the whole file fd to s
 *   (size is ignored, as in 2006); flags & 7 = pages per chunk (0 = 8).
 * The three aio calls return 0 when queued, 1 when done at once, -1 with
 * errno on error.
 */
int kevent_ctl(int fd, void *arg);
int aio_recv(int ctl_fd, int s, void *buf, size_t size, unsigned flags);
int aio_send(int ctl_fd, int s, void *buf, size_t size, unsigned flags);
int aio_sendfile(int ctl_fd, int fd, int s, size_t size, unsigned flags);

#ifdef __cplusplus
}
#endif

#endif /* __KEVENT_H */
