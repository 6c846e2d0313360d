/*
 * test_fileserv - the example static file servers of client-c/examples
 * serve concurrent clients the exact file: fileserv_kevent (aio_sendfile,
 * KEVENT_AIO, with KEVENT_SOCKET ACCEPT) and its twin fileserv_epoll
 * (sendfile(2) on epoll), compiled in from the example sources and run in
 * a thread of this process.  Each of CLIENTS clients connects over TCP,
 * reads until the server closes, and checks every byte; then the same with
 * an empty file.
 */

#include "testutil.h"

#include <netinet/in.h>
#include <pthread.h>

#define ECHO_NO_MAIN 1
#define FILESERV_NO_MAIN 1
#include "../../client-c/examples/fileserv_kevent.c"
#include "../../client-c/examples/fileserv_epoll.c"

#define CLIENTS	30
#define FSIZE	(1024 * 1024 + 4321)

static struct sockaddr_in srv_addr;
static struct fileserv fk;
static struct fileserv_epoll fe;
static volatile sig_atomic_t srv_stop;
static int use_kevent, srv_result;
static size_t fsize;

static unsigned char fbyte(size_t i)
{
	return (unsigned char)(i * 13 + i / 4099);
}

static void *server(void *arg)
{
	(void)arg;
	if (use_kevent)
		srv_result = fileserv_kevent_serve(t_dev, &fk, &srv_stop);
	else
		srv_result = fileserv_epoll_serve(&fe, &srv_stop);
	return NULL;
}

struct client {
	size_t got;
	size_t bad;	/* first wrong byte, or got */
	int ok;
};

static void *client(void *arg)
{
	struct client *cl = arg;
	static __thread unsigned char buf[65536];
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cl->got = 0;
	cl->bad = (size_t)-1;
	if (fd < 0 || connect(fd, (void *)&srv_addr, sizeof(srv_addr)) != 0)
		goto out;
	for (;;) {
		ssize_t n, i;

		if (!(poll_fd(fd, POLLIN, 20000) & (POLLIN | POLLHUP | POLLERR)))
			goto out;	/* stuck: got stays short */
		n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (i = 0; i < n; i++)
			if (buf[i] != fbyte(cl->got + (size_t)i) && cl->bad == (size_t)-1)
				cl->bad = cl->got + (size_t)i;
		cl->got += (size_t)n;
	}
	cl->ok = 1;
out:
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int make_file(size_t n)
{
	char path[] = "/tmp/kevent-fileserv-XXXXXX";
	unsigned char b[65536];
	size_t off = 0;
	int fd = mkstemp(path);

	if (fd < 0)
		return -1;
	unlink(path);
	while (off < n) {
		size_t k = n - off < sizeof(b) ? n - off : sizeof(b), i;

		for (i = 0; i < k; i++)
			b[i] = fbyte(off + i);
		if (write(fd, b, k) != (ssize_t)k)
			return -1;
		off += k;
	}
	return fd;
}

static void run(int kevent, size_t size)
{
	const char *name = kevent ? "fileserv_kevent" : "fileserv_epoll";
	static struct client cl[CLIENTS];
	pthread_t srv, th[CLIENTS];
	socklen_t len = sizeof(srv_addr);
	int lfd, file, i, good = 0, exact = 0;
	unsigned long served, failed;
	char what[128];

	file = make_file(size);
	lfd = echo_listen("127.0.0.1:0");
	CHECK(file >= 0 && lfd >= 0, "file and listener");
	if (file < 0 || lfd < 0)
		return;
	getsockname(lfd, (void *)&srv_addr, &len);
	memset(&fk, 0, sizeof(fk));
	memset(&fe, 0, sizeof(fe));
	fk.lfd = fe.lfd = lfd;
	fk.file = fe.file = file;
	fsize = size;
	use_kevent = kevent;
	srv_stop = 0;
	pthread_create(&srv, NULL, server, NULL);
	for (i = 0; i < CLIENTS; i++)
		pthread_create(&th[i], NULL, client, &cl[i]);
	for (i = 0; i < CLIENTS; i++) {
		pthread_join(th[i], NULL);
		good += cl[i].ok && cl[i].got == size;
		exact += cl[i].ok && cl[i].bad == (size_t)-1;
	}
	srv_stop = 1;
	pthread_join(srv, NULL);
	served = kevent ? fk.served : fe.served;
	failed = kevent ? fk.failed : fe.failed;
	snprintf(what, sizeof(what), "%s, %zu B file: every client got the whole file", name, size);
	CHECK_EQ(good, CLIENTS, what);
	snprintf(what, sizeof(what), "%s, %zu B file: every byte exact", name, size);
	CHECK_EQ(exact, CLIENTS, what);
	snprintf(what, sizeof(what), "%s, %zu B file: server counted every client served", name, size);
	CHECK_EQ(served, CLIENTS, what);
	snprintf(what, sizeof(what), "%s, %zu B file: no failed transfer", name, size);
	CHECK_EQ(failed, 0, what);
	CHECK_EQ(srv_result, 0, "the server loop ended cleanly");
	close(lfd);
	close(file);
}

int main(int argc, char **argv)
{
	t_init(argc, argv, "test_fileserv");
	alarm(300);
	signal(SIGPIPE, SIG_IGN);
	run(1, FSIZE);
	run(0, FSIZE);
	run(1, 0);
	run(0, 0);
	return t_done();
}
