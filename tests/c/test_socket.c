/*
 * test_socket - KEVENT_SOCKET (docs/ABI.md sections 3, 4 and 5 item 1) over TCP
 * on IPv4 and UNIX stream sockets (test_socket_ipv6 runs the same checks
 * on IPv6): RECV, ACCEPT with the accept queue length, SEND, peer
 * shutdown, RST, edge-triggered delivery and coalescing, MODIFY, REMOVE,
 * ONESHOT, a closed socket (BROKEN|DONE within a second while the peer sees
 * the close at once), fd reuse, two queues on one socket, and the wrong
 * kind of fd.
 *
 * No fork(): a child would inherit the sockets and keep them open, which
 * hides exactly the lifetime behaviour under test.
 */

#include "testutil.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

#define RECV	KEVENT_SOCKET_RECV
#define ACCEPT	KEVENT_SOCKET_ACCEPT
#define SEND	KEVENT_SOCKET_SEND
#define DONE	KEVENT_RET_DONE
#define BROKEN	KEVENT_RET_BROKEN

static int kfd;
static int fam;
static char label[160];

/* A check name with the family prefixed. */
static const char *N(const char *what)
{
	snprintf(label, sizeof(label), "%s: %s",
		 fam == AF_INET ? "tcp4" : fam == AF_INET6 ? "tcp6" : "unix",
		 what);
	return label;
}

static struct ukevent uk_sock(int fd, __u32 event, __u32 req_flags, __u32 u0)
{
	return uk_make(KEVENT_SOCKET, (__u32)fd, event, req_flags, u0, 0x50c);
}

/* ADD one ukevent; *uk receives the written-back ukevent. */
static int add1(int q, struct ukevent *uk)
{
	return k_ctl(q, KEVENT_CTL_ADD, uk, 1, NULL);
}

static void die(const char *what)
{
	t_note("%s: %s", what, strerror(errno));
	t_report(0, what, __FILE__, __LINE__, "%s", "setup failed");
	exit(t_done());
}

/* A listening socket of the family under test on loopback. */
static int listener(int backlog)
{
	static int seq;
	int l = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (l < 0)
		die("socket");
	if (fam == AF_UNIX) {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		int n = snprintf(a.sun_path + 1, sizeof(a.sun_path) - 1,
				 "kevent-test-%d-%d", (int)getpid(), seq++);

		if (bind(l, (struct sockaddr *)&a,
			 offsetof(struct sockaddr_un, sun_path) + 1 + n) < 0)
			die("bind unix");
	} else if (fam == AF_INET) {
		struct sockaddr_in a = { .sin_family = AF_INET };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("bind 127.0.0.1");
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

		a.sin6_addr = in6addr_loopback;
		if (bind(l, (struct sockaddr *)&a, sizeof(a)) < 0)
			die("bind ::1");
	}
	if (listen(l, backlog) < 0)
		die("listen");
	return l;
}

/* A client connected to listener l (not accepted). */
static int connect_to(int l)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int c = socket(fam, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (c < 0 || getsockname(l, (struct sockaddr *)&ss, &len) < 0)
		die("socket/getsockname");
	if (connect(c, (struct sockaddr *)&ss, len) < 0)
		die("connect");
	return c;
}

/* A connected pair: *a accepted by the server, *b the client. */
static void tcp_pair(int *a, int *b)
{
	int l = listener(4);

	*b = connect_to(l);
	*a = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	if (*a < 0)
		die("accept");
	close(l);
}

static void set_nonblock(int fd)
{
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Reads whatever is buffered on a non-blocking fd; returns the bytes read. */
static long drain(int fd)
{
	static char buf[65536];
	long total = 0;
	ssize_t n;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0)
		total += n;
	return total;
}

static void t_recv_edge_triggered(void)
{
	struct ukevent uk, ev[4];
	int a, b;

	tcp_pair(&a, &b);
	uk = uk_sock(a, RECV, 0, 0x101);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV on an idle socket is queued"));
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, N("nothing before the peer writes"));
	CHECK_RET(send(b, "x", 1, 0), 1, N("peer writes 1 byte"));
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("RECV delivered"));
	CHECK_HEX(ev[0].ret_flags, DONE, N("ret_flags DONE"));
	CHECK_HEX(ev[0].event, RECV, N("the requested mask comes back"));
	CHECK_EQ(ev[0].id.raw[0], a, N("id is the socket fd"));
	CHECK_HEX(ev[0].user[0], 0x101, N("user data comes back"));
	CHECK_RET(k_wait(kfd, ev, 1, 200), 0,
		  N("edge-triggered: unread data is not reported again"));

	/* Three separate arrivals before one WAIT coalesce into one event. */
	send(b, "a", 1, 0);
	sleep_ms(20);
	send(b, "b", 1, 0);
	sleep_ms(20);
	send(b, "c", 1, 0);
	CHECK_RET(k_wait(kfd, ev, 4, 300), 1, N("three arrivals, one delivery"));
	CHECK_EQ(drain(a), 4, N("all four bytes are there"));
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, N("reading is not activity"));
	send(b, "d", 1, 0);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("new data, new delivery"));
	CHECK_RET(k_remove1(kfd, uk_sock(a, RECV, 0, 0x101), NULL), 0, N("REMOVE"));
	close(a);
	close(b);
}

static void t_recv_ready_at_once(void)
{
	struct ukevent uk;
	struct kevent_user_control h;
	__u32 f = 0;
	int a, b;

	tcp_pair(&a, &b);
	send(b, "hi", 2, 0);
	sleep_ms(20);
	uk = uk_sock(a, RECV, 0, 0x102);
	CHECK_RET(k_ctl(kfd, KEVENT_CTL_ADD, &uk, 1, &h), 1,
		  N("ADD RECV with data buffered: ready at once"));
	CHECK_HEX(uk.ret_flags, DONE, N("written back with DONE"));
	CHECK_EQ(h.num, 1, N("hdr.num 1"));
	CHECK_RET(k_remove1(kfd, uk, &f), 0, N("REMOVE of its key"));
	CHECK_HEX(f, BROKEN | DONE, N("ready at once means not registered"));
	close(a);
	close(b);
}

static void t_peer_shutdown_with_data(void)
{
	struct ukevent uk, ev[1];
	char buf[16];
	int a, b;

	tcp_pair(&a, &b);
	uk = uk_sock(a, RECV, 0, 0x103);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV"));
	send(b, "bye", 3, 0);
	shutdown(b, SHUT_WR);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("data then FIN: RECV delivered"));
	CHECK_HEX(ev[0].ret_flags, DONE, N("DONE, not BROKEN: the socket is open"));
	uk = uk_sock(a, RECV, 0, 0x104);
	CHECK_RET(add1(kfd, &uk), 1,
		  N("another RECV while data and EOF are buffered: ready at once"));
	CHECK_RET(recv(a, buf, sizeof(buf), 0), 3, N("the data is still there"));
	CHECK_RET(recv(a, buf, sizeof(buf), 0), 0, N("then end of file"));
	uk = uk_sock(a, RECV, 0, 0x105);
	CHECK_RET(add1(kfd, &uk), 1, N("RECV after the peer shut down: ready at once"));
	k_remove1(kfd, uk_sock(a, RECV, 0, 0x103), NULL);
	close(a);
	close(b);
}

static void t_rst(void)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	struct ukevent uk, ev[1];
	char buf[4];
	int a, b;

	if (fam == AF_UNIX)
		return;
	tcp_pair(&a, &b);
	uk = uk_sock(a, RECV, 0, 0x106);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV"));
	setsockopt(b, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(b);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("RST: RECV delivered"));
	CHECK_HEX(ev[0].ret_flags, DONE, N("RST is readiness (DONE), not BROKEN"));
	CHECK_ERR(recv(a, buf, sizeof(buf), 0), ECONNRESET, N("recv reports the reset"));
	k_remove1(kfd, uk, NULL);
	close(a);
}

static void t_send(void)
{
	struct ukevent uk, ev[1];
	long long t0;
	int a, b, r = 0;

	tcp_pair(&a, &b);
	uk = uk_sock(a, SEND, 0, 0x107);
	CHECK_RET(add1(kfd, &uk), 1, N("SEND on a writable socket: ready at once"));
	CHECK_HEX(uk.ret_flags, DONE, N("written back with DONE"));

	set_nonblock(a);
	set_nonblock(b);
	for (int round = 0; round < 3; round++) {
		static char junk[65536];

		while (send(a, junk, sizeof(junk), MSG_DONTWAIT) > 0)
			;
		sleep_ms(20);
	}
	uk = uk_sock(a, SEND, 0, 0x108);
	CHECK_RET(add1(kfd, &uk), 0, N("SEND on a full buffer is queued"));
	CHECK_RET(k_wait(kfd, ev, 1, 200), 0, N("no SEND while the peer reads nothing"));
	t0 = now_ms();
	while (now_ms() - t0 < 3000 && r == 0) {
		drain(b);
		r = k_wait(kfd, ev, 1, 50);
	}
	CHECK_RET(r, 1, N("SEND delivered once the peer drained"));
	CHECK_HEX(ev[0].ret_flags, DONE, N("ret_flags DONE"));
	CHECK_HEX(ev[0].user[0], 0x108, N("it is the SEND kevent"));
	k_remove1(kfd, uk, NULL);
	close(a);
	close(b);
}

static void t_accept(void)
{
	struct ukevent uk, ev[1];
	int l, c[5], i, r = -1, s;

	/* Queued, then one connection. */
	l = listener(8);
	uk = uk_sock(l, ACCEPT, 0, 0x109);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD ACCEPT on an empty listener is queued"));
	c[0] = connect_to(l);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("ACCEPT delivered after a connect"));
	CHECK_HEX(ev[0].ret_flags, DONE, N("ret_flags DONE"));
	CHECK_EQ(ev[0].ret_data[1], 1, N("ret_data[1]: 1 connection waits"));
	k_remove1(kfd, uk, NULL);
	close(c[0]);
	close(l);

	/* N pending connections at ADD time. */
	l = listener(8);
	for (i = 0; i < 5; i++)
		c[i] = connect_to(l);
	/* The server side of the last handshake may trail connect(): retry. */
	for (i = 0; i < 100; i++) {
		uk = uk_sock(l, ACCEPT, 0, 0x10a);
		r = add1(kfd, &uk);
		if (r != 1 || uk.ret_data[1] >= 5)
			break;
		sleep_ms(10);
	}
	CHECK_RET(r, 1, N("ADD ACCEPT with 5 pending: ready at once"));
	CHECK_EQ(uk.ret_data[1], 5, N("ret_data[1] is exactly 5"));
	s = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	uk = uk_sock(l, ACCEPT, 0, 0x10b);
	CHECK_RET(add1(kfd, &uk), 1, N("after one accept(): still ready"));
	CHECK_EQ(uk.ret_data[1], 4, N("ret_data[1] is exactly 4"));
	uk = uk_sock(l, RECV, 0, 0x10c);
	CHECK_RET(add1(kfd, &uk), 0, N("RECV on a listener with pending connections is queued"));
	k_remove1(kfd, uk, NULL);
	for (i = 0; i < 5; i++)
		close(c[i]);
	close(s);
	close(l);
}

static void t_closed_socket(void)
{
	struct ukevent uk, ev[1];
	long long t0, dt;
	char buf[4];
	__u32 f = 0;
	int a, b, rev;

	tcp_pair(&a, &b);
	uk = uk_sock(a, RECV, 0, 0x10d);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV"));
	t0 = now_ms();
	close(a);
	rev = poll_fd(b, POLLIN, 500);
	dt = now_ms() - t0;
	CHECK(rev & POLLIN, N("the peer sees the close (watching keeps nothing open)"));
	CHECK_TIME(dt, 0, 20, N("the peer sees it at once"));
	CHECK_RET(recv(b, buf, sizeof(buf), MSG_DONTWAIT), 0, N("peer reads end of file"));
	CHECK_RET(k_wait(kfd, ev, 1, 2000), 1, N("the kevent is delivered"));
	dt = now_ms() - t0;
	CHECK_HEX(ev[0].ret_flags, BROKEN | DONE, N("as BROKEN|DONE"));
	CHECK_HEX(ev[0].user[0], 0x10d, N("it is the closed socket's kevent"));
	CHECK_TIME(dt, 0, 1000, N("within one second of the close"));
	CHECK_RET(k_remove1(kfd, uk, &f), 0, N("REMOVE afterwards"));
	CHECK_HEX(f, BROKEN | DONE, N("the broken kevent was unregistered"));
	close(b);
}

static void t_fd_reuse(void)
{
	struct ukevent uk, ev[2];
	__u32 f = 0;
	int a, b, c, d, n;

	tcp_pair(&a, &b);
	n = a;
	uk = uk_sock(a, RECV, 0, 0x10e);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV on fd n"));
	close(a);
	close(b);
	tcp_pair(&c, &d);
	if (c != n) {
		dup2(c, n);
		close(c);
		c = n;
	}
	CHECK_RET(send(d, "new", 3, 0), 3, N("data arrives on the new file at fd n"));
	CHECK_RET(k_wait(kfd, ev, 2, 1500), 1, N("one event for the old kevent"));
	CHECK_HEX(ev[0].ret_flags, BROKEN | DONE,
		  N("it is BROKEN|DONE: the new file never fires the old kevent"));
	CHECK_RET(k_wait(kfd, ev, 1, 300), 0, N("nothing more"));
	CHECK_RET(k_remove1(kfd, uk, &f), 0, N("REMOVE"));
	CHECK_HEX(f, BROKEN | DONE, N("the old kevent is gone"));
	close(c);
	close(d);
}

static void t_two_queues(void)
{
	int q2 = dev_open(t_dev, O_RDWR);
	struct ukevent u1, u2, ev[1];
	int a, b;

	tcp_pair(&a, &b);
	u1 = uk_sock(a, RECV, 0, 0x201);
	u2 = uk_sock(a, RECV, 0, 0x202);
	CHECK_RET(add1(kfd, &u1), 0, N("queue 1: ADD RECV"));
	CHECK_RET(add1(q2, &u2), 0, N("queue 2: ADD RECV on the same socket"));
	send(b, "x", 1, 0);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("queue 1 gets RECV"));
	CHECK_HEX(ev[0].user[0], 0x201, N("queue 1's kevent"));
	CHECK_RET(k_wait(q2, ev, 1, 1000), 1, N("queue 2 gets RECV"));
	CHECK_HEX(ev[0].user[0], 0x202, N("queue 2's kevent"));
	close(a);
	CHECK(poll_fd(b, POLLIN, 500) & POLLIN, N("two watches keep nothing open"));
	CHECK_RET(k_wait(kfd, ev, 1, 2000), 1, N("queue 1: closed socket delivered"));
	CHECK_HEX(ev[0].ret_flags, BROKEN | DONE, N("queue 1: BROKEN|DONE"));
	CHECK_RET(k_wait(q2, ev, 1, 2000), 1, N("queue 2: closed socket delivered"));
	CHECK_HEX(ev[0].ret_flags, BROKEN | DONE, N("queue 2: BROKEN|DONE"));
	close(b);
	close(q2);
}

static void t_modify_remove_oneshot(void)
{
	struct ukevent uk, ev[1];
	__u32 f = 0;
	int a, b;

	tcp_pair(&a, &b);
	/* MODIFY re-checks at once: RECV (idle) becomes SEND (writable). */
	uk = uk_sock(a, RECV, 0, 0x301);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV on an idle socket"));
	uk.event = SEND;
	CHECK_RET(k_ctl(kfd, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0, N("MODIFY to SEND"));
	CHECK_HEX(uk.ret_flags, DONE, N("MODIFY writes back DONE"));
	CHECK_RET(k_wait(kfd, ev, 1, 500), 1, N("writable: ready right after MODIFY"));
	CHECK_HEX(ev[0].event, SEND, N("with the new mask"));
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, N("and only once"));
	uk.event = RECV;
	CHECK_RET(k_ctl(kfd, KEVENT_CTL_MODIFY, &uk, 1, NULL), 0, N("MODIFY back to RECV"));
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, N("idle: nothing after MODIFY"));

	/* REMOVE drops a ready, uncollected event. */
	send(b, "x", 1, 0);
	CHECK(poll_fd(kfd, POLLIN, 1000) & POLLIN, N("the event is ready"));
	CHECK_RET(k_remove1(kfd, uk, &f), 0, N("REMOVE"));
	CHECK_HEX(f, DONE, N("found"));
	CHECK_RET(k_wait(kfd, ev, 1, 150), 0, N("REMOVE dropped the ready event"));

	/* ONESHOT: delivered once, then unregistered. */
	drain(a);
	uk = uk_sock(a, RECV, KEVENT_REQ_ONESHOT, 0x302);
	CHECK_RET(add1(kfd, &uk), 0, N("ADD RECV ONESHOT"));
	send(b, "y", 1, 0);
	CHECK_RET(k_wait(kfd, ev, 1, 1000), 1, N("ONESHOT delivered"));
	CHECK_RET(k_remove1(kfd, uk, &f), 0, N("REMOVE after a ONESHOT delivery"));
	CHECK_HEX(f, BROKEN | DONE, N("ONESHOT was unregistered"));
	close(a);
	close(b);
}

static T_UNUSED void t_wrong_fds(void)
{
	struct ukevent uk;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe");
	uk = uk_sock(p[0], RECV, 0, 0x401);
	CHECK_ERR(add1(kfd, &uk), EINVAL, N("SOCKET on a pipe: EINVAL"));
	CHECK_HEX(uk.ret_flags, BROKEN | DONE, N("written back BROKEN|DONE"));
	uk = uk_sock(kfd, RECV, 0, 0x402);
	CHECK_ERR(add1(kfd, &uk), EINVAL, N("SOCKET on the kevent fd itself: EINVAL"));
	uk = uk_sock(987, RECV, 0, 0x403);
	close(987);
	CHECK_ERR(add1(kfd, &uk), ENODEV, N("SOCKET on a closed fd number: ENODEV"));
	CHECK_HEX(uk.ret_flags, BROKEN | DONE, N("written back BROKEN|DONE"));
	close(p[0]);
	close(p[1]);
}

static void run_family(int f)
{
	fam = f;
	t_recv_edge_triggered();
	t_recv_ready_at_once();
	t_peer_shutdown_with_data();
	t_rst();
	t_send();
	t_accept();
	t_closed_socket();
	t_fd_reuse();
	t_two_queues();
	t_modify_remove_oneshot();
}

/* IPv6 needs a usable ::1 (absent on some CI hosts): 77 otherwise. */
static T_UNUSED int have_ipv6(void)
{
	struct sockaddr_in6 a = { .sin6_family = AF_INET6 };
	int s = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0), ok;

	if (s < 0)
		return 0;
	a.sin6_addr = in6addr_loopback;
	ok = bind(s, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(s);
	return ok;
}

#ifndef TEST_SOCKET_IPV6
int main(int argc, char **argv)
{
	t_init(argc, argv, "test_socket");
	signal(SIGPIPE, SIG_IGN);
	kfd = dev_open(t_dev, O_RDWR);
	run_family(AF_INET);
	run_family(AF_UNIX);
	t_wrong_fds();
	close(kfd);
	return t_done();
}
#else
int main(int argc, char **argv)
{
	t_init(argc, argv, "test_socket_ipv6");
	signal(SIGPIPE, SIG_IGN);
	if (!have_ipv6())
		t_skip_all("no usable IPv6 loopback (::1) on this host");
	kfd = dev_open(t_dev, O_RDWR);
	run_family(AF_INET6);
	close(kfd);
	return t_done();
}
#endif
