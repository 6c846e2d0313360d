/*
 * layout - prints the C view of the kevent ABI, one "name value" line per
 * item (decimal), for comparison with the Rust constants.  Not a test.
 */

#include <stddef.h>
#include <stdio.h>

#include "kevent.h"

#define P(name, v)	printf("%s %llu\n", name, (unsigned long long)(v))
#define C(name)		P(#name, name)
#define SZ(t)		P("sizeof_" #t, sizeof(struct t))
#define AL(t)		P("alignof_" #t, _Alignof(struct t))
#define OFF(t, f)	P("offsetof_" #t "_" #f, offsetof(struct t, f))

int main(void)
{
	SZ(kevent_id);
	SZ(ukevent);
	SZ(kevent_user_control);
	AL(kevent_id);
	AL(ukevent);
	AL(kevent_user_control);

	OFF(kevent_id, raw);
	OFF(ukevent, id);
	OFF(ukevent, type);
	OFF(ukevent, event);
	OFF(ukevent, req_flags);
	OFF(ukevent, ret_flags);
	OFF(ukevent, ret_data);
	OFF(ukevent, user);
	OFF(ukevent, ptr);
	OFF(kevent_user_control, cmd);
	OFF(kevent_user_control, num);
	OFF(kevent_user_control, timeout);

	C(KEVENT_REQ_ONESHOT);
	C(KEVENT_RET_BROKEN);
	C(KEVENT_RET_DONE);
	C(KEVENT_SOCKET);
	C(KEVENT_INODE);
	C(KEVENT_TIMER);
	C(KEVENT_POLL);
	C(KEVENT_NAIO);
	C(KEVENT_AIO);
	C(KEVENT_MAX);
	C(KEVENT_TIMER_FIRED);
	C(KEVENT_SOCKET_RECV);
	C(KEVENT_SOCKET_ACCEPT);
	C(KEVENT_SOCKET_SEND);
	C(KEVENT_INODE_CREATE);
	C(KEVENT_INODE_REMOVE);
	C(KEVENT_POLL_POLLIN);
	C(KEVENT_POLL_POLLPRI);
	C(KEVENT_POLL_POLLOUT);
	C(KEVENT_POLL_POLLERR);
	C(KEVENT_POLL_POLLHUP);
	C(KEVENT_POLL_POLLNVAL);
	C(KEVENT_POLL_POLLRDNORM);
	C(KEVENT_POLL_POLLRDBAND);
	C(KEVENT_POLL_POLLWRNORM);
	C(KEVENT_POLL_POLLWRBAND);
	C(KEVENT_POLL_POLLMSG);
	C(KEVENT_POLL_POLLREMOVE);
	C(KEVENT_AIO_BIO);
	C(KEVENT_MASK_ALL);
	C(KEVENT_MASK_EMPTY);
	C(KEVENT_CTL_ADD);
	C(KEVENT_CTL_REMOVE);
	C(KEVENT_CTL_MODIFY);
	C(KEVENT_CTL_WAIT);
	C(KEVENT_CTL_INIT);
	C(KEVENT_USER_SYMBOL);
	C(KEVENT_USER_CTL);
	C(KEVENT_USER_WAIT);
	return 0;
}
