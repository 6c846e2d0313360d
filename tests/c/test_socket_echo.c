/*
 * test_socket_echo - the example echo servers of client-c/examples serve
 * 100 concurrent clients correctly: echo_kevent (KEVENT_SOCKET ACCEPT,
 * RECV and SEND on /dev/kevent) and its twin echo_epoll, compiled in from
 * the example sources.  Each client thread sends 20 messages with a
 * pattern of its own (up to 20000 bytes; up to 300000 bytes into a tiny
 * receive buffer for every fourth client, so the server's output must wait
 * for SEND), checks every echoed byte, then half-closes and expects the
 * server's close.  The server runs in a thread of this process (no fork:
 * see docs/WIRE.md).
 */

#include "testutil.h"

#include <netinet/in.h>
#include <pthread.h>

#define ECHO_NO_MAIN 1
#include "../../client-c/examples/echo_kevent.c"
#include "../../client-c/examples/echo_epoll.c"

#define CLIENTS	100
#define MSGS	20
#define MAXMSG	20000
#define BIGMSG	300000

static struct sockaddr_in srv_addr;
static struct echo_server srv;
static volatile sig_atomic_t srv_stop;
static int use_kevent, srv_result;

static void *server(void *arg)
{
	(void)arg;
	if (use_kevent)
		srv_result = echo_kevent_serve(t_dev, &srv, &srv_stop);
	else
		srv_result = echo_epoll_serve(&srv, &srv_stop);
	return NULL;
}

struct client {
	int id;
	int ok;
	char why[96];
	unsigned long bytes;
};

/* Message m of client id: its length and its i-th byte. */
static size_t msg_len(int id, int m)
{
	unsigned max = id % 4 == 0 ? BIGMSG : MAXMSG;

	return 1 + ((unsigned)id * 7919u + (unsigned)m * 104729u) % max;
}

static unsigned char msg_byte(int id, int m, size_t i)
{
	return (unsigned char)(id * 31 + m * 7 + i + i / 251);
}

/*
 * One client: sends its messages and reads the echoes at the same time
 * (non-blocking, poll), so it never deadlocks with a server that stops
 * reading while its output waits.  Every fourth client has a tiny receive
 * buffer and messages up to BIGMSG bytes: the server's output then has to
 * wait for SEND readiness.
 */
static void *client(void *arg)
{
	struct client *cl = arg;
	static __thread unsigned char buf[16384];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), m = 0, rm = 0;
	size_t sent = 0, got = 0;

	if (fd >= 0 && cl->id % 4 == 0) {
		int small = 4096;

		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	}
	if (fd < 0 || connect(fd, (struct sockaddr *)&srv_addr, sizeof(srv_addr)) < 0) {
		snprintf(cl->why, sizeof(cl->why), "connect: %s", strerror(errno));
		goto out;
	}
	fcntl(fd, F_SETFL, O_NONBLOCK);
	while (rm < MSGS) {
		/* Messages go out in order; echoes are checked as they come. */
		short ev = POLLIN | (m < MSGS ? POLLOUT : 0);
		int rev = poll_fd(fd, ev, 10000);

		if (rev == 0) {
			snprintf(cl->why, sizeof(cl->why), "message %d: stuck for 10 s", rm);
			goto out;
		}
		if (rev & POLLOUT && m < MSGS) {
			size_t len = msg_len(cl->id, m), n = len - sent, i;
			ssize_t w;

			if (n > sizeof(buf))
				n = sizeof(buf);
			for (i = 0; i < n; i++)
				buf[i] = msg_byte(cl->id, m, sent + i);
			w = send(fd, buf, n, MSG_NOSIGNAL);
			if (w < 0 && errno != EAGAIN) {
				snprintf(cl->why, sizeof(cl->why), "send: %s", strerror(errno));
				goto out;
			}
			if (w > 0 && (sent += (size_t)w) == len) {
				m++;
				sent = 0;
			}
		}
		if (rev & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0), i;

			if (n == 0 || (n < 0 && errno != EAGAIN)) {
				snprintf(cl->why, sizeof(cl->why), "message %d: recv %zd (%s)", rm, n,
					 n < 0 ? strerror(errno) : "eof");
				goto out;
			}
			for (i = 0; i < n; i++) {
				if (buf[i] != msg_byte(cl->id, rm, got)) {
					snprintf(cl->why, sizeof(cl->why),
						 "message %d: byte %zu differs", rm, got);
					goto out;
				}
				cl->bytes++;
				if (++got == msg_len(cl->id, rm)) {
					rm++;
					got = 0;
				}
			}
		}
	}
	shutdown(fd, SHUT_WR);
	if (poll_fd(fd, POLLIN, 10000) == 0 || recv(fd, buf, 1, 0) != 0) {
		snprintf(cl->why, sizeof(cl->why), "no close from the server after our FIN");
		goto out;
	}
	cl->ok = 1;
out:
	if (fd >= 0)
		close(fd);
	return NULL;
}

static void run(int kevent)
{
	static struct client cl[CLIENTS];
	pthread_t st, ct[CLIENTS];
	pthread_attr_t attr;
	socklen_t len = sizeof(srv_addr);
	unsigned long total = 0;
	const char *name = kevent ? "echo_kevent" : "echo_epoll";
	char what[128];
	int lfd = echo_listen("127.0.0.1:0"), i, ok = 0;
	long long t0 = now_ms();

	CHECK(lfd >= 0, "listen on 127.0.0.1");
	getsockname(lfd, (struct sockaddr *)&srv_addr, &len);
	echo_init(&srv, lfd);
	srv_stop = 0;
	use_kevent = kevent;
	pthread_create(&st, NULL, server, NULL);

	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	for (i = 0; i < CLIENTS; i++) {
		memset(&cl[i], 0, sizeof(cl[i]));
		cl[i].id = i;
		pthread_create(&ct[i], &attr, client, &cl[i]);
	}
	for (i = 0; i < CLIENTS; i++) {
		pthread_join(ct[i], NULL);
		if (cl[i].ok)
			ok++;
		else
			t_note("%s: client %d: %s", name, i, cl[i].why);
		total += cl[i].bytes;
	}
	t_note("%s: %d clients, %lu bytes each way in %lld ms", name, CLIENTS, total,
	       now_ms() - t0);
	snprintf(what, sizeof(what), "%s: all %d concurrent clients got their echoes", name,
		 CLIENTS);
	CHECK_EQ(ok, CLIENTS, what);
	srv_stop = 1;
	pthread_join(st, NULL);
	snprintf(what, sizeof(what), "%s: the server loop ended cleanly", name);
	CHECK_RET(srv_result, 0, what);
	snprintf(what, sizeof(what), "%s: it accepted %d connections", name, CLIENTS);
	CHECK_EQ(srv.accepted, CLIENTS, what);
	snprintf(what, sizeof(what), "%s: it echoed every byte", name);
	CHECK_EQ(srv.bytes, total, what);
	snprintf(what, sizeof(what), "%s: output waited for writability (%lu times)", name,
		 srv.waits);
	CHECK(srv.waits > 0, what);
	close(lfd);
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_socket_echo");
	signal(SIGPIPE, SIG_IGN);
	run(1);
	run(0);
	return t_done();
}
