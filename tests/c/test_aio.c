/*
 * test_aio - KEVENT_NAIO and KEVENT_AIO through libkevent's aio_recv,
 * aio_send and aio_sendfile (docs/ABI.md section 4, NAIO and AIO rows, and
 * the README's "AIO" section).
 *
 * aio_recv/aio_send register a oneshot KEVENT_NAIO kevent {raw[0] = socket,
 * raw[1] = size, ptr = buffer}; aio_sendfile a KEVENT_AIO kevent {raw[0] =
 * file, raw[1] = pages per chunk, ret_data[0] = socket}.  Each returns 0
 * (queued: an event follows), 1 (done inside the call: no event follows)
 * or -1.  Delivered NAIO events carry id.raw[1] = bytes still to go,
 * ret_data[0] = pages the buffer spans (the errno when BROKEN),
 * ret_data[1] = bytes moved; AIO events ret_data[0] = socket, ret_data[1] =
 * bytes sent (the errno when BROKEN).
 *
 * Environment:
 *   KEVENT_AIO_SMALL=1   the 64 MiB transfers and the 100 MiB file shrink to
 *                        8 MiB and 16 MiB (for the slow TCG VM only; the
 *                        host always runs the full sizes).
 *   KEVENT_AIO_DAEMON_PID (or KEVENT_DAEMON_PID) the daemon's pid, to
 *                        check that its descriptor count returns to the
 *                        baseline (else the only kevent-cuse process, if
 *                        there is exactly one).
 */

#include "testutil.h"

#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

static int kfd;
static size_t big = 64 * MIB, huge = 100 * MIB;
static long page;
static pid_t daemon_pid;

static unsigned char pat(size_t i, unsigned seed)
{
	return (unsigned char)((i * 131u + (i >> 13) * 7u + seed) & 0xff);
}

static void fill(unsigned char *b, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = pat(i, seed);
}

/* Index of the first byte that differs from the pattern, or n. */
static size_t check_pat(const unsigned char *b, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (b[i] != pat(i, seed))
			return i;
	return n;
}

static __u32 pages_of(const void *p, size_t n)
{
	uintptr_t a = (uintptr_t)p;

	if (n == 0)
		return 0;
	return (__u32)((a + n - 1) / (uintptr_t)page - a / (uintptr_t)page + 1);
}

/* ---- sockets ---------------------------------------------------------- */

enum fam { UNIX, TCP4, TCP6 };
static const char *fam_name[] = { "unix", "tcp4", "tcp6" };

/* A connected stream pair: sv[0] ours, sv[1] the peer.  0 on success. */
static int stream_pair(enum fam f, int sv[2])
{
	int l, one = 1;
	socklen_t len;

	if (f == UNIX)
		return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	if (f == TCP4) {
		struct sockaddr_in a = { .sin_family = AF_INET };

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		len = sizeof(a);
		if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 8) ||
		    getsockname(l, (void *)&a, &len))
			goto fail;
		sv[0] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (sv[0] < 0 || connect(sv[0], (void *)&a, sizeof(a)))
			goto fail;
	} else {
		struct sockaddr_in6 a = { .sin6_family = AF_INET6 };

		a.sin6_addr = in6addr_loopback;
		l = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		len = sizeof(a);
		if (l < 0 || bind(l, (void *)&a, sizeof(a)) || listen(l, 8) ||
		    getsockname(l, (void *)&a, &len))
			goto fail;
		sv[0] = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (sv[0] < 0 || connect(sv[0], (void *)&a, sizeof(a)))
			goto fail;
	}
	sv[1] = accept4(l, NULL, NULL, SOCK_CLOEXEC);
	close(l);
	if (sv[1] < 0)
		return -1;
	setsockopt(sv[0], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sv[1], IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
fail:
	if (l >= 0)
		close(l);
	return -1;
}

/* ---- peer threads -------------------------------------------------------- */

struct peer {
	pthread_t th;
	int fd;
	size_t n;		/* bytes to write / read */
	unsigned seed;
	size_t got;		/* read: bytes read */
	size_t bad;		/* read: first mismatch, or n */
	int close_after;	/* close fd when done */
};

static void *writer(void *arg)
{
	struct peer *p = arg;
	unsigned char b[64 * 1024];
	size_t off = 0;

	while (off < p->n) {
		size_t k = p->n - off < sizeof(b) ? p->n - off : sizeof(b), i;
		ssize_t w;

		for (i = 0; i < k; i++)
			b[i] = pat(off + i, p->seed);
		w = send(p->fd, b, k, MSG_NOSIGNAL);
		if (w <= 0) {
			if (w < 0 && errno == EINTR)
				continue;
			break;
		}
		off += (size_t)w;
	}
	if (p->close_after)
		close(p->fd);
	return NULL;
}

static void *reader(void *arg)
{
	struct peer *p = arg;
	unsigned char b[64 * 1024];

	p->got = 0;
	p->bad = p->n;
	while (p->got < p->n) {
		size_t k = p->n - p->got < sizeof(b) ? p->n - p->got : sizeof(b), i;
		ssize_t r;

		if (!(poll_fd(p->fd, POLLIN, 20000) & (POLLIN | POLLHUP)))
			break;
		r = recv(p->fd, b, k, 0);
		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < (size_t)r && p->bad == p->n; i++)
			if (b[i] != pat(p->got + i, p->seed))
				p->bad = p->got + i;
		p->got += (size_t)r;
	}
	return NULL;
}

static void peer_start(struct peer *p, void *(*fn)(void *))
{
	if (pthread_create(&p->th, NULL, fn, p) != 0) {
		perror("pthread_create");
		exit(1);
	}
}

/* ---- kevent helpers --------------------------------------------------- */

/* Waits (bounded) for one event; returns 1 with *e filled, else 0. */
static int wait_one(int fd, struct ukevent *e, long limit_ms)
{
	long long t0 = now_ms();

	while (now_ms() - t0 < limit_ms) {
		int r = k_wait(fd, e, 1, 1000);

		if (r == 1)
			return 1;
		if (r < 0)
			return 0;
	}
	return 0;
}

static int daemon_fds(void)
{
	char path[64];
	DIR *d;
	struct dirent *de;
	int n = 0;

	if (daemon_pid <= 0)
		return -1;
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)daemon_pid);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static pid_t find_daemon(void)
{
	const char *s = getenv("KEVENT_AIO_DAEMON_PID");
	DIR *d;
	struct dirent *de;
	pid_t found = 0;
	int count = 0;

	if (s == NULL || *s == '\0')
		s = getenv("KEVENT_DAEMON_PID");
	if (s != NULL && *s != '\0')
		return (pid_t)atoi(s);
	d = opendir("/proc");
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char path[300], comm[64] = "";
		FILE *f;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/comm", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue;
		if (fgets(comm, sizeof(comm), f) && strcmp(comm, "kevent-cuse\n") == 0) {
			found = (pid_t)atoi(de->d_name);
			count++;
		}
		fclose(f);
	}
	closedir(d);
	return count == 1 ? found : 0;
}

/* The daemon's descriptor count comes back to base within 5 s. */
static void check_fds(int base, const char *name)
{
	long long t0 = now_ms();
	int n = daemon_fds();

	if (base < 0) {
		t_note("%s: daemon pid unknown, descriptors not counted", name);
		return;
	}
	while (n != base && now_ms() - t0 < 5000) {
		sleep_ms(20);
		n = daemon_fds();
	}
	CHECK_EQ(n, base, name);
}

static unsigned char *map(size_t n)
{
	void *p = mmap(NULL, n, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("mmap");
		exit(1);
	}
	return p;
}

/* Checks a delivered, complete NAIO event. */
static void check_naio_done(const struct ukevent *e, int s, void *buf, size_t n,
			    __u32 event, const char *what)
{
	char name[160];

#define NAME(x) (snprintf(name, sizeof(name), "%s: %s", what, x), name)
	CHECK_HEX(e->type, KEVENT_NAIO, NAME("type NAIO"));
	CHECK_HEX(e->event, event, NAME("event"));
	CHECK_HEX(e->ret_flags, KEVENT_RET_DONE, NAME("ret_flags DONE"));
	CHECK_EQ(e->id.raw[0], (__u32)s, NAME("raw[0] = socket"));
	CHECK_EQ(e->id.raw[1], 0, NAME("raw[1] = 0 bytes to go"));
	CHECK_EQ(e->ret_data[0], pages_of(buf, n), NAME("ret_data[0] = pages spanned"));
	CHECK_EQ(e->ret_data[1], (__u32)n, NAME("ret_data[1] = bytes moved"));
	CHECK(e->ptr == buf, NAME("ptr = the buffer"));
#undef NAME
}

/* ---- receive / send of one size --------------------------------------- */

/*
 * aio_recv of n bytes at offset off into a fresh mapping, the peer writing
 * only after the call (so it is queued), or before it when n fits the
 * socket buffer and ready_first is set (then it is done at once).
 */
static void recv_case(enum fam f, size_t n, size_t off, int ready_first)
{
	char what[96];
	size_t maplen = ((off + n) / (size_t)page + 2) * (size_t)page;
	unsigned char *m = map(maplen), *buf = m + off;
	struct peer p = { .n = n, .seed = (unsigned)(n + off) };
	struct ukevent e;
	int sv[2], r;

	snprintf(what, sizeof(what), "%s aio_recv %zu B at +%zu%s", fam_name[f],
		 n, off, ready_first ? " (data first)" : "");
	if (stream_pair(f, sv) != 0) {
		CHECK(0, what);
		return;
	}
	p.fd = sv[1];
	if (ready_first) {
		long long t0 = now_ms();
		int avail = 0;

		writer(&p);
		/* Wait until every byte is in our receive queue. */
		while (now_ms() - t0 < 5000 &&
		       (ioctl(sv[0], FIONREAD, &avail) != 0 || (size_t)avail < n))
			sleep_ms(5);
		r = aio_recv(kfd, sv[0], buf, n, 0);
		CHECK_RET(r, 1, what);
		CHECK_RET(k_wait(kfd, &e, 1, 200), 0, "done at once: no event follows");
	} else {
		r = aio_recv(kfd, sv[0], buf, n, 0);
		CHECK_RET(r, 0, what);
		peer_start(&p, writer);
		if (r == 0) {
			int got = wait_one(kfd, &e, 60000);

			CHECK(got, "the completion is delivered");
			if (got)
				check_naio_done(&e, sv[0], buf, n, KEVENT_SOCKET_RECV, what);
		}
		pthread_join(p.th, NULL);
	}
	CHECK_EQ(check_pat(buf, n, p.seed), n, "received bytes are exact");
	if (off > 0)
		CHECK_EQ(buf[-1], 0, "nothing written before the buffer");
	CHECK_EQ(buf[n], 0, "nothing written after the buffer");
	close(sv[0]);
	close(sv[1]);
	munmap(m, maplen);
}

static void send_case(enum fam f, size_t n, size_t off)
{
	char what[96];
	size_t maplen = ((off + n) / (size_t)page + 2) * (size_t)page;
	unsigned char *m = map(maplen), *buf = m + off;
	struct peer p = { .n = n, .seed = (unsigned)(n * 3 + off) };
	struct ukevent e;
	int sv[2], r;

	snprintf(what, sizeof(what), "%s aio_send %zu B at +%zu", fam_name[f], n, off);
	if (stream_pair(f, sv) != 0) {
		CHECK(0, what);
		return;
	}
	fill(buf, n, p.seed);
	p.fd = sv[1];
	peer_start(&p, reader);
	r = aio_send(kfd, sv[0], buf, n, 0);
	CHECK_RANGE(r, 0, 1, what);
	if (n <= 4 * KIB)
		CHECK_RET(r, 1, "a send that fits the socket buffer is done at once");
	if (big <= n)
		CHECK_RET(r, 0, "a send larger than the socket buffer is queued");
	if (r == 0) {
		int got = wait_one(kfd, &e, 60000);

		CHECK(got, "the completion is delivered");
		if (got)
			check_naio_done(&e, sv[0], buf, n, KEVENT_SOCKET_SEND, what);
	} else if (r == 1) {
		CHECK_RET(k_wait(kfd, &e, 1, 100), 0, "done at once: no event follows");
	}
	pthread_join(p.th, NULL);
	CHECK_EQ(p.got, n, "the peer received every byte");
	CHECK_EQ(p.bad, n, "the peer received exact bytes");
	close(sv[0]);
	close(sv[1]);
	munmap(m, maplen);
}

/* ---- the cases ---------------------------------------------------------- */

static void test_sizes(void)
{
	size_t sizes[] = { 1, 4 * KIB, 1 * MIB, big };
	unsigned i;

	/* Data already there: done inside ADD. */
	recv_case(UNIX, 1, 0, 1);
	recv_case(TCP4, 4 * KIB, 0, 1);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		/* Page-aligned, unaligned, and spanning a page boundary. */
		recv_case(TCP4, sizes[i], 0, 0);
		recv_case(UNIX, sizes[i], 1, 0);
		recv_case(TCP4, sizes[i], (size_t)page - 3, 0);
		send_case(TCP4, sizes[i], 0);
		send_case(UNIX, sizes[i], 7);
		send_case(TCP4, sizes[i], (size_t)page - 5);
	}
	{
		int sv[2];

		if (stream_pair(TCP6, sv) == 0) {
			close(sv[0]);
			close(sv[1]);
			recv_case(TCP6, 1 * MIB, 3, 0);
			send_case(TCP6, 1 * MIB, 3);
		} else {
			t_note("no IPv6 loopback: the tcp6 transfers are left out");
		}
	}
}

static void test_concurrent(void)
{
	enum { N = 100 };
	static int sv[N][2];
	static struct peer p[N];
	unsigned char *m = map(N * 64 * KIB + (size_t)page);
	int i, ok = 1, done = 0, mism = 0, queued = 0;
	long long t0;

	for (i = 0; i < N && ok; i++)
		ok = stream_pair(i % 2 ? UNIX : TCP4, sv[i]) == 0;
	CHECK(ok, "100 socket pairs");
	if (!ok)
		return;
	for (i = 0; i < N; i++)
		queued += aio_recv(kfd, sv[i][0], m + i * 64 * KIB + (i % 5), 60 * KIB, 0) == 0;
	CHECK_EQ(queued, N, "100 concurrent aio_recv are queued");
	for (i = 0; i < N; i++) {
		p[i].fd = sv[i][1];
		p[i].n = 60 * KIB;
		p[i].seed = (unsigned)i;
		peer_start(&p[i], writer);
	}
	t0 = now_ms();
	while (done < N && now_ms() - t0 < 60000) {
		struct ukevent e[N];
		int r = k_wait(kfd, e, N, 1000), j;

		for (j = 0; j < r; j++) {
			if (e[j].ret_flags != KEVENT_RET_DONE || e[j].ret_data[1] != 60 * KIB)
				mism++;
		}
		if (r > 0)
			done += r;
	}
	CHECK_EQ(done, N, "100 completions delivered");
	CHECK_EQ(mism, 0, "every completion is DONE with 60 KiB moved");
	mism = 0;
	for (i = 0; i < N; i++) {
		pthread_join(p[i].th, NULL);
		if (check_pat(m + i * 64 * KIB + (i % 5), 60 * KIB, (unsigned)i) != 60 * KIB)
			mism++;
		close(sv[i][0]);
		close(sv[i][1]);
	}
	CHECK_EQ(mism, 0, "100 buffers hold exactly their peer's bytes");
	munmap(m, N * 64 * KIB + (size_t)page);
}

static void test_peer_close(void)
{
	unsigned char *m = map(1 * MIB);
	struct peer p = { .n = 1000, .seed = 5, .close_after = 1 };
	struct ukevent e;
	int sv[2];

	/* Receive: the peer sends 1000 bytes and closes. */
	if (stream_pair(TCP4, sv) != 0)
		return;
	CHECK_RET(aio_recv(kfd, sv[0], m, 1 * MIB, 0), 0, "aio_recv 1 MiB queued");
	p.fd = sv[1];
	peer_start(&p, writer);
	if (wait_one(kfd, &e, 20000)) {
		CHECK_HEX(e.ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
			  "peer closed mid-receive: BROKEN|DONE");
		CHECK_EQ(e.ret_data[0], ENODATA, "end of file: ret_data[0] = ENODATA");
		CHECK_EQ(e.ret_data[1], 1000, "ret_data[1] = the 1000 bytes that came");
		CHECK_EQ(e.id.raw[1], 1 * MIB - 1000, "raw[1] = bytes still to go");
	} else {
		CHECK(0, "peer closed mid-receive: an event follows");
	}
	pthread_join(p.th, NULL);
	CHECK_EQ(check_pat(m, 1000, 5), 1000, "the 1000 bytes are exact");
	/* Now EOF is there at ADD: the ADD itself fails. */
	CHECK_ERR(aio_recv(kfd, sv[0], m, 10, 0), ENODATA,
		  "aio_recv after end of file: -1/ENODATA");
	close(sv[0]);

	/* Send: the peer reads a little and closes. */
	if (stream_pair(UNIX, sv) != 0)
		return;
	CHECK_RET(aio_send(kfd, sv[0], m, 1 * MIB, 0), 0,
		  "aio_send of 1 MiB to a slow peer is queued");
	{
		char b[1000];

		CHECK(recv(sv[1], b, sizeof(b), 0) > 0, "the peer reads some");
		close(sv[1]);
	}
	if (wait_one(kfd, &e, 20000)) {
		CHECK_HEX(e.ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
			  "peer closed mid-send: BROKEN|DONE");
		CHECK(e.ret_data[0] == EPIPE || e.ret_data[0] == ECONNRESET,
		      "peer closed mid-send: ret_data[0] = EPIPE or ECONNRESET");
		CHECK(e.ret_data[1] > 0 && e.ret_data[1] < 1 * MIB,
		      "peer closed mid-send: part was sent");
	} else {
		CHECK(0, "peer closed mid-send: an event follows");
	}
	CHECK_ERR(aio_send(kfd, sv[0], m, 10, 0), EPIPE,
		  "aio_send to a closed peer: -1/EPIPE");
	close(sv[0]);
	munmap(m, 1 * MIB);
}

static void test_bad_buffers(void)
{
	size_t pg = (size_t)page;
	unsigned char *m = map(3 * pg), *good = map(64 * KIB);
	struct peer p = { .n = 3 * pg, .seed = 9 }, q = { .n = 64 * KIB, .seed = 10 };
	struct ukevent e[2];
	int sv[2], sw[2], got = 0, i, broken = -1, fine = -1;
	long long t0;

	if (stream_pair(UNIX, sv) != 0 || stream_pair(TCP4, sw) != 0)
		return;
	/* Unmapped and read-only buffers are refused inside ADD. */
	munmap(m, 3 * pg);
	CHECK_ERR(aio_recv(kfd, sv[0], m, 100, 0), EFAULT,
		  "aio_recv into unmapped memory: -1/EFAULT");
	CHECK_ERR(aio_send(kfd, sv[0], m, 100, 0), EFAULT,
		  "aio_send from unmapped memory: -1/EFAULT");
	m = mmap(NULL, 3 * pg, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK_ERR(aio_recv(kfd, sv[0], m, 100, 0), EFAULT,
		  "aio_recv into read-only memory: -1/EFAULT");
	CHECK_ERR(aio_recv(kfd, sv[0], (void *)8, 100, 0), EFAULT,
		  "aio_recv into address 8: -1/EFAULT");
	munmap(m, 3 * pg);

	/* A hole in the middle is found during the transfer; another
	 * transfer running beside it is unaffected. */
	m = map(3 * pg);
	munmap(m + pg, pg);
	CHECK_RET(aio_recv(kfd, sv[0], m, 3 * pg, 0), 0, "aio_recv over a hole: queued");
	CHECK_RET(aio_recv(kfd, sw[0], good, 64 * KIB, 0), 0, "a good aio_recv beside it");
	p.fd = sv[1];
	q.fd = sw[1];
	peer_start(&p, writer);
	peer_start(&q, writer);
	t0 = now_ms();
	while (got < 2 && now_ms() - t0 < 20000) {
		int r = k_wait(kfd, &e[got], 1, 1000);

		if (r == 1)
			got++;
	}
	CHECK_EQ(got, 2, "both transfers end");
	for (i = 0; i < got; i++) {
		if (e[i].id.raw[0] == (__u32)sv[0])
			broken = i;
		else if (e[i].id.raw[0] == (__u32)sw[0])
			fine = i;
	}
	if (broken >= 0) {
		CHECK_HEX(e[broken].ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
			  "the hole: BROKEN|DONE");
		CHECK_EQ(e[broken].ret_data[0], EFAULT, "the hole: ret_data[0] = EFAULT");
		CHECK_EQ(e[broken].ret_data[1], (__u32)pg, "the hole: the first page was filled");
		CHECK_EQ(check_pat(m, pg, 9), pg, "the first page holds exact bytes");
	} else {
		CHECK(0, "the hole: an event");
	}
	if (fine >= 0) {
		CHECK_HEX(e[fine].ret_flags, KEVENT_RET_DONE, "the good transfer: DONE");
		CHECK_EQ(check_pat(good, 64 * KIB, 10), 64 * KIB, "the good transfer: exact bytes");
	} else {
		CHECK(0, "the good transfer: an event");
	}
	pthread_join(q.th, NULL);
	close(sv[1]);	/* unblocks the first writer if it is still sending */
	pthread_join(p.th, NULL);
	close(sv[0]);
	close(sw[0]);
	close(sw[1]);
	munmap(m, pg);
	munmap(m + 2 * pg, pg);
	munmap(good, 64 * KIB);
}

static int temp_file(size_t size, unsigned seed)
{
	static const char *dirs[] = { "/tmp", "/dev/shm", "." };
	unsigned char b[64 * 1024];
	char path[64];
	size_t off = 0;
	unsigned i;
	int fd = -1;

	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]) && fd < 0; i++) {
		snprintf(path, sizeof(path), "%s/kevent-aio-XXXXXX", dirs[i]);
		fd = mkstemp(path);
		if (fd >= 0)
			unlink(path);
	}
	if (fd < 0)
		return -1;
	while (off < size) {
		size_t k = size - off < sizeof(b) ? size - off : sizeof(b), j;

		for (j = 0; j < k; j++)
			b[j] = pat(off + j, seed);
		if (write(fd, b, k) != (ssize_t)k) {
			close(fd);
			return -1;
		}
		off += k;
	}
	lseek(fd, 5, SEEK_SET);	/* the position must not matter */
	return fd;
}

static void sendfile_case(size_t n, unsigned flags)
{
	char what[96];
	struct peer p = { .n = n, .seed = (unsigned)n + 1 };
	struct ukevent e;
	int sv[2], f = temp_file(n, (unsigned)n + 1), r;

	snprintf(what, sizeof(what), "aio_sendfile of %zu B (flags %u)", n, flags);
	CHECK(f >= 0, "temporary file");
	if (f < 0 || stream_pair(TCP4, sv) != 0)
		return;
	p.fd = sv[1];
	peer_start(&p, reader);
	r = aio_sendfile(kfd, f, sv[0], 0, flags);
	if (n == 0) {
		struct ukevent none;

		CHECK_RET(r, 1, "aio_sendfile of an empty file: done at once");
		CHECK_RET(k_wait(kfd, &none, 1, 100), 0, "empty file: no event follows");
	} else {
		CHECK_RET(r, 0, what);
		if (wait_one(kfd, &e, 120000)) {
			CHECK_HEX(e.type, KEVENT_AIO, "aio_sendfile event: type AIO");
			CHECK_HEX(e.event, KEVENT_AIO_BIO, "aio_sendfile event: AIO_BIO");
			CHECK_HEX(e.ret_flags, KEVENT_RET_DONE, "aio_sendfile event: DONE");
			CHECK_EQ(e.id.raw[0], (__u32)f, "aio_sendfile event: raw[0] = file");
			CHECK_EQ(e.id.raw[1], (flags & 7) ? (flags & 7) : 8,
				 "aio_sendfile event: raw[1] = pages per chunk");
			CHECK_EQ(e.ret_data[0], (__u32)sv[0], "aio_sendfile event: ret_data[0] = socket");
			CHECK_EQ(e.ret_data[1], (__u32)n, "aio_sendfile event: ret_data[1] = bytes sent");
		} else {
			CHECK(0, "aio_sendfile: an event follows");
		}
	}
	close(sv[0]);	/* the peer then sees end of file */
	pthread_join(p.th, NULL);
	CHECK_EQ(p.got, n, "the peer received the whole file");
	CHECK_EQ(p.bad, n, "the peer received the file's exact bytes");
	CHECK(lseek(f, 0, SEEK_CUR) == 5, "the file position is untouched");
	close(sv[1]);
	close(f);
}

static void test_sendfile(void)
{
	sendfile_case(0, 0);
	sendfile_case(1, 0);
	sendfile_case(10000, 1);
	sendfile_case(huge, 0);
}

/* REMOVE, close of the queue, close of the socket during a transfer. */
static void test_cancel(int base)
{
	unsigned char *m = map(32 * MIB);
	struct ukevent uk, e;
	__u32 flags = 0;
	int sv[2], k2, f;
	size_t i, touched = 0;

	/* REMOVE: nothing is written afterwards. */
	if (stream_pair(TCP4, sv) != 0)
		return;
	CHECK_RET(aio_recv(kfd, sv[0], m, 1 * MIB, 0), 0, "aio_recv queued");
	CHECK_RET(send(sv[1], "abcdefgh", 8, 0), 8, "the peer sends 8 bytes");
	sleep_ms(100);
	memset(&uk, 0, sizeof(uk));
	uk.type = KEVENT_NAIO;
	uk.id.raw[0] = (__u32)sv[0];
	uk.id.raw[1] = 1 * MIB;
	uk.ptr = m;
	CHECK_RET(k_remove1(kfd, uk, &flags), 0, "REMOVE of a transfer in progress");
	CHECK_HEX(flags, KEVENT_RET_DONE, "REMOVE found it (DONE)");
	memset(m, 0xee, 1 * MIB);
	{
		static char more[256 * 1024];

		memset(more, 'x', sizeof(more));
		CHECK(send(sv[1], more, sizeof(more), MSG_DONTWAIT) > 0, "the peer sends more");
	}
	sleep_ms(300);
	for (i = 0; i < 1 * MIB; i++)
		touched += m[i] != 0xee;
	CHECK_EQ(touched, 0, "nothing is written into the buffer after REMOVE");
	CHECK_RET(k_wait(kfd, &e, 1, 100), 0, "no event after REMOVE");
	close(sv[0]);
	close(sv[1]);

	/* Close of the queue with transfers running (a receive, a send, a
	 * sendfile): everything is freed. */
	k2 = dev_open(t_dev, O_RDWR);
	if (stream_pair(UNIX, sv) != 0)
		return;
	CHECK_RET(aio_recv(k2, sv[0], m, 1 * MIB, 0), 0, "second queue: aio_recv queued");
	{
		int sw[2];

		if (stream_pair(TCP4, sw) == 0) {
			CHECK_RET(aio_send(k2, sw[0], m, 32 * MIB, 0), 0,
				  "second queue: aio_send to a peer that does not read: queued");
			f = temp_file(4 * MIB, 1);
			if (f >= 0) {
				int r = aio_sendfile(k2, f, sw[0], 0, 0);

				CHECK(r == 0, "second queue: aio_sendfile queued");
				close(f);
			}
			close(k2);
			check_fds(base, "closing a queue mid-transfer frees every daemon descriptor");
			close(sw[0]);
			close(sw[1]);
		} else {
			close(k2);
		}
	}
	close(sv[0]);
	close(sv[1]);

	/* Close of the socket: the transfer ends BROKEN (EBADF) and the peer
	 * sees the connection close. */
	if (stream_pair(TCP4, sv) != 0)
		return;
	CHECK_RET(aio_recv(kfd, sv[0], m, 1 * MIB, 0), 0, "aio_recv queued");
	close(sv[0]);
	if (wait_one(kfd, &e, 10000)) {
		CHECK_HEX(e.ret_flags, KEVENT_RET_BROKEN | KEVENT_RET_DONE,
			  "socket closed mid-transfer: BROKEN|DONE");
		CHECK_EQ(e.ret_data[0], EBADF, "socket closed mid-transfer: ret_data[0] = EBADF");
	} else {
		CHECK(0, "socket closed mid-transfer: an event follows");
	}
	CHECK(poll_fd(sv[1], POLLIN, 10000) & (POLLIN | POLLHUP),
	      "the peer sees the close");
	{
		char c;

		CHECK_RET(recv(sv[1], &c, 1, MSG_DONTWAIT), 0, "the peer reads end of file");
	}
	close(sv[1]);
	munmap(m, 32 * MIB);
}

/* A caller SIGKILLed in the middle of a transfer. */
static void test_killed_caller(int base)
{
	int sv[2], ready[2];
	pid_t pid;
	int st;
	char c;

	if (stream_pair(TCP4, sv) != 0 || pipe(ready) != 0)
		return;
	pid = t_fork();
	if (pid == 0) {
		int k = open(t_dev, O_RDWR);
		unsigned char *m = map(4 * MIB);

		close(sv[1]);
		if (k < 0 || aio_recv(k, sv[0], m, 4 * MIB, 0) != 0)
			_exit(2);
		if (write(ready[1], "r", 1) != 1)
			_exit(3);
		for (;;)
			pause();
	}
	close(sv[0]);
	close(ready[1]);
	CHECK_RET(read(ready[0], &c, 1), 1, "the child queued a transfer");
	{
		static char some[100 * 1024];

		memset(some, 'y', sizeof(some));
		CHECK(send(sv[1], some, sizeof(some), 0) > 0, "data flows to the child");
	}
	kill(pid, SIGKILL);
	CHECK(t_reap(pid, &st, 10000) >= 0, "the child is gone");
	CHECK(poll_fd(sv[1], POLLIN, 10000) & (POLLIN | POLLHUP | POLLERR),
	      "the peer sees the connection close");
	check_fds(base, "after the caller was killed the daemon holds nothing of it");
	close(sv[1]);
	close(ready[0]);
}

static void test_errors(void)
{
	char buf[8];
	int p[2], u, sv[2], f;
	struct ukevent uk;

	close(998);
	CHECK_ERR(aio_recv(kfd, 998, buf, 4, 0), ENODEV,
		  "aio_recv on a socket fd that does not exist: -1/ENODEV");
	if (stream_pair(UNIX, sv) != 0)
		return;
#if SIZE_MAX > UINT32_MAX
	CHECK_ERR(aio_recv(kfd, sv[0], buf, (size_t)1 << 33, 0), EINVAL,
		  "aio_recv with a size over 32 bits: -1/EINVAL");
#endif
	if (pipe(p) == 0) {
		CHECK_ERR(aio_recv(kfd, p[0], buf, 4, 0), EINVAL,
			  "aio_recv on a pipe (not a socket): -1/EINVAL");
		CHECK_ERR(aio_send(kfd, p[1], buf, 4, 0), EINVAL,
			  "aio_send on a pipe (not a socket): -1/EINVAL");
		CHECK_ERR(aio_sendfile(kfd, p[0], sv[0], 0, 0), EINVAL,
			  "aio_sendfile of a pipe (not a file): -1/EINVAL");
		close(p[0]);
		close(p[1]);
	}
	u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (u >= 0) {
		CHECK_ERR(aio_recv(kfd, u, buf, 4, 0), EINVAL,
			  "aio_recv on a datagram socket: -1/EINVAL");
		close(u);
	}
	CHECK_ERR(aio_sendfile(kfd, sv[1], sv[0], 0, 0), EINVAL,
		  "aio_sendfile of a socket (not a file): -1/EINVAL");
	f = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f >= 0) {
		CHECK_ERR(aio_sendfile(kfd, f, sv[0], 0, 0), EINVAL,
			  "aio_sendfile of a directory: -1/EINVAL");
		close(f);
	}
	f = temp_file(10, 3);
	if (f >= 0) {
		CHECK_ERR(aio_sendfile(kfd, f, kfd, 0, 0), EINVAL,
			  "aio_sendfile to the kevent fd (not a socket): -1/EINVAL");
		CHECK_ERR(aio_sendfile(kfd, f, 998, 0, 0), ENODEV,
			  "aio_sendfile to a socket that does not exist: -1/ENODEV");
		memset(&uk, 0, sizeof(uk));
		uk.type = KEVENT_AIO;
		uk.event = KEVENT_AIO_BIO;
		uk.id.raw[0] = (__u32)f;
		uk.id.raw[1] = 9;
		uk.ret_data[0] = (__u32)sv[0];
		CHECK_ERR(k_add1(kfd, uk), EINVAL, "AIO with 9 pages per chunk: -1/EINVAL");
		close(f);
	}
	memset(&uk, 0, sizeof(uk));
	uk.type = KEVENT_NAIO;
	uk.event = KEVENT_SOCKET_RECV | KEVENT_SOCKET_SEND;
	uk.id.raw[0] = (__u32)sv[0];
	uk.id.raw[1] = 4;
	uk.ptr = buf;
	CHECK_ERR(k_add1(kfd, uk), EINVAL, "NAIO with both RECV and SEND: -1/EINVAL");
	uk.event = KEVENT_SOCKET_RECV;
	uk.id.raw[1] = 0;
	CHECK_RET(k_add1(kfd, uk), 1, "NAIO of 0 bytes: done at once");
	CHECK_RET(aio_recv(kfd, sv[0], buf, 4, 0), 0, "the daemon still serves after all that");
	CHECK_RET(send(sv[1], "1234", 4, 0), 4, "peer sends 4 bytes");
	{
		struct ukevent e;

		CHECK(wait_one(kfd, &e, 10000) && e.ret_data[1] == 4, "and completes it");
	}
	close(sv[0]);
	close(sv[1]);
}

int main(int argc, char **argv)
{
	const char *s;
	int base;

	t_init(argc, argv, "test_aio");
	alarm(600);	/* 64 MiB and 100 MiB transfers, twice over */
	page = sysconf(_SC_PAGESIZE);
	s = getenv("KEVENT_AIO_SMALL");
	if (s != NULL && strcmp(s, "1") == 0) {
		big = 8 * MIB;
		huge = 16 * MIB;
		t_note("KEVENT_AIO_SMALL=1: 8 MiB and 16 MiB instead of 64 MiB and 100 MiB");
	}
	daemon_pid = find_daemon();
	kfd = dev_open(t_dev, O_RDWR);
	base = daemon_fds();
	t_note("daemon pid %d, %d descriptors at the start", (int)daemon_pid, base);

	test_errors();
	test_sizes();
	test_concurrent();
	test_peer_close();
	test_bad_buffers();
	test_sendfile();
	test_cancel(base);
	test_killed_caller(base);
	check_fds(base, "the daemon's descriptor count is back at its start");

	close(kfd);
	return t_done();
}
