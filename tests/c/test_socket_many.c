/*
 * test_socket_many - 1000 SOCKET kevents in one queue (docs/ABI.md section 4):
 * one ADD registers them all, every socket's RECV is delivered exactly once
 * with its own user data, and closing 500 of the sockets delivers exactly
 * those 500 kevents as BROKEN|DONE within a second while their peers see
 * the close at once; the other 500 stay registered and working.
 */

#include "testutil.h"

#include <sys/resource.h>
#include <sys/socket.h>

#define NSOCK	1000u

static int kfd;
static int a[NSOCK], b[NSOCK];

static struct ukevent uk_recv(unsigned i)
{
	struct ukevent uk;

	memset(&uk, 0, sizeof(uk));
	uk.id.raw[0] = (__u32)a[i];
	uk.type = KEVENT_SOCKET;
	uk.event = KEVENT_SOCKET_RECV;
	uk.user[0] = i;
	uk.user[1] = 0x3a11;
	return uk;
}

/*
 * Collects events until want of them are seen or limit_ms passes; each
 * must be for a distinct i < NSOCK with ret_flags == flags.  Returns the
 * number of distinct events, -1 on a bad or duplicate one.
 */
static int collect(unsigned want, __u32 flags, long limit_ms, unsigned char *seen)
{
	struct ukevent *ev = calloc(NSOCK, sizeof(*ev));
	long long t0 = now_ms();
	unsigned got = 0;
	int bad = 0;

	memset(seen, 0, NSOCK);
	while (got < want && now_ms() - t0 < limit_ms) {
		int r = k_wait(kfd, ev, NSOCK, 100);

		for (int i = 0; i < r; i++) {
			__u32 u = ev[i].user[0];

			if (u >= NSOCK || seen[u] || ev[i].ret_flags != flags ||
			    ev[i].user[1] != 0x3a11) {
				t_note("bad event: user %u flags 0x%x", u, ev[i].ret_flags);
				bad = 1;
				continue;
			}
			seen[u] = 1;
			got++;
		}
	}
	free(ev);
	return bad ? -1 : (int)got;
}

int main(int argc, char **argv)
{
	struct rlimit rl;
	struct ukevent *uks;
	struct kevent_user_control h;
	unsigned char seen[NSOCK];
	unsigned i, peers_eof = 0, ok = 1;
	long long t0;

	t_init(argc, argv, "test_socket_many");
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < 2 * NSOCK + 64)
		t_skip_all("RLIMIT_NOFILE hard limit below 2064");
	if (rl.rlim_cur < 2 * NSOCK + 64) {
		rl.rlim_cur = 2 * NSOCK + 64;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	kfd = dev_open(t_dev, O_RDWR);
	for (i = 0; i < NSOCK; i++) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
			t_note("socketpair %u: %s", i, strerror(errno));
			t_skip_all("cannot create 1000 socket pairs");
		}
		a[i] = sv[0];
		b[i] = sv[1];
	}

	uks = calloc(NSOCK, sizeof(*uks));
	for (i = 0; i < NSOCK; i++)
		uks[i] = uk_recv(i);
	t0 = now_ms();
	CHECK_RET(k_ctl(kfd, KEVENT_CTL_ADD, uks, NSOCK, &h), 0, "one ADD of 1000 SOCKET RECV kevents");
	CHECK_EQ(h.num, 0, "all queued (none written back)");
	t_note("ADD of %u sockets took %lld ms", NSOCK, now_ms() - t0);
	CHECK_RET(k_wait(kfd, uks, 1, 200), 0, "nothing ready yet");

	for (i = 0; i < NSOCK; i++)
		ok &= send(b[i], "x", 1, 0) == 1;
	CHECK(ok, "every peer wrote one byte");
	CHECK_EQ(collect(NSOCK, KEVENT_RET_DONE, 10000, seen), NSOCK,
		 "1000 distinct RECV events, DONE");
	CHECK_RET(k_wait(kfd, uks, 1, 200), 0, "each exactly once");

	/* Close the even ones. */
	t0 = now_ms();
	for (i = 0; i < NSOCK; i += 2)
		close(a[i]);
	for (i = 0; i < NSOCK; i += 2) {
		char c;

		/* Unread data at the close: the peer gets ECONNRESET, else EOF. */
		if (poll_fd(b[i], POLLIN, 200) & (POLLIN | POLLHUP) &&
		    (recv(b[i], &c, 1, 0) == 0 || errno == ECONNRESET))
			peers_eof++;
	}
	CHECK_EQ(peers_eof, NSOCK / 2, "500 peers see the close at once");
	CHECK_EQ(collect(NSOCK / 2, KEVENT_RET_BROKEN | KEVENT_RET_DONE, 5000, seen), NSOCK / 2,
		 "500 BROKEN|DONE events");
	CHECK_TIME(now_ms() - t0, 0, 1000, "within one second of the closes");
	ok = 1;
	for (i = 0; i < NSOCK; i++)
		ok &= seen[i] == !(i & 1);
	CHECK(ok, "exactly the closed ones");
	CHECK_RET(k_wait(kfd, uks, 1, 600), 0, "no other event (the open 500 are quiet)");

	/* The other 500 still work. */
	for (i = 1; i < NSOCK; i += 2)
		send(b[i], "y", 1, 0);
	CHECK_EQ(collect(NSOCK / 2, KEVENT_RET_DONE, 10000, seen), NSOCK / 2,
		 "the 500 open sockets still deliver RECV");

	for (i = 0; i < NSOCK; i++) {
		if (i & 1)
			close(a[i]);
		close(b[i]);
	}
	free(uks);
	close(kfd);
	return t_done();
}
