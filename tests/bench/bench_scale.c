/*
 * bench_scale - how the daemon's costs grow with the number of kevents
 * registered (README, "Scale").  Not a test: it prints a table and never
 * fails on timing.
 *
 *   bench_scale DEVPATH DAEMON_PID [KMAX]
 *
 * For K = 10, 1000, 10000, 100000 (up to KMAX) TIMER kevents, then SOCKET
 * kevents (held by worker processes of at most 10,000 sockets each, so no
 * process needs more descriptors than a container's hard limit allows):
 * the cost of one ADD (+ its REMOVE, not timed) and of one empty WAIT, the
 * daemon's CPU use over 3 idle seconds, and its RSS growth per kevent.
 * Then INODE watch setup at 10 and 4000 watches, the lateness of a 10 ms
 * periodic TIMER against a plain timerfd, and batch ADD / MODIFY+WAIT /
 * WAIT of 1000 SOCKET kevents against the same work with epoll.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "kevent.h"

#define PERQ	1000u
#define WSOCK	10000u
#define NEVER	1000000u

static const char *dev;
static pid_t dpid;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Queues are O_NONBLOCK: a WAIT never sleeps (timeout 0 would sleep up to 1 s). */
static int kopen(void)
{
	int fd = open(dev, O_RDWR | O_NONBLOCK);

	if (fd < 0) {
		perror(dev);
		exit(1);
	}
	return fd;
}

/* One ioctl on a buffer of n ukevents; returns the result, *num the new hdr.num. */
static int kcall(int fd, unsigned long req, unsigned cmd, unsigned timeout,
		 struct ukevent *uks, unsigned n, unsigned *num)
{
	size_t sz = sizeof(struct kevent_user_control) + n * sizeof(struct ukevent);
	static unsigned char *b;
	static size_t bsz;
	struct kevent_user_control h = { cmd, n, timeout };
	int r;

	if (sz > bsz) {
		b = realloc(b, sz);
		bsz = sz;
	}
	memcpy(b, &h, sizeof(h));
	memcpy(b + sizeof(h), uks, n * sizeof(*uks));
	r = ioctl(fd, req, b);
	memcpy(&h, b, sizeof(h));
	memcpy(uks, b + sizeof(h), n * sizeof(*uks));
	if (num)
		*num = h.num;
	return r;
}

static int kctl(int fd, unsigned cmd, struct ukevent *uks, unsigned n)
{
	unsigned num;
	int r = kcall(fd, KEVENT_USER_CTL, cmd, 0, uks, n, &num);

	if (cmd == KEVENT_CTL_ADD && (r != 0 || num != 0))
		return -1;
	return r;
}

static int kwait(int fd, struct ukevent *uks, unsigned n, unsigned timeout)
{
	return kcall(fd, KEVENT_USER_WAIT, KEVENT_CTL_WAIT, timeout, uks, n, NULL);
}

static struct ukevent uk_make(unsigned type, unsigned id0, unsigned event, unsigned u0)
{
	struct ukevent uk;

	memset(&uk, 0, sizeof(uk));
	uk.id.raw[0] = id0;
	uk.type = type;
	uk.event = event;
	uk.user[0] = u0;
	uk.user[1] = 0xbe7c;
	return uk;
}

/* The daemon's utime+stime in clock ticks, and its RSS in KiB. */
static long long daemon_ticks(void)
{
	char path[64], buf[2048], *p;
	unsigned long long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", dpid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, sizeof(buf), f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	p = strrchr(buf, ')');
	/* fields after ")": state(3) ... utime(14) stime(15) */
	if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

static long daemon_rss_kb(void)
{
	char path[64], line[256];
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", dpid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static int daemon_fds(void)
{
	char cmd[96];
	int n = -1;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ls /proc/%d/fd | wc -l", dpid);
	p = popen(cmd, "r");
	if (p) {
		if (fscanf(p, "%d", &n) != 1)
			n = -1;
		pclose(p);
	}
	return n;
}

/* Daemon CPU in percent of one core over sec idle seconds. */
static double idle_cpu(double sec)
{
	long long a = daemon_ticks(), b;
	double t0 = now();

	usleep((useconds_t)(sec * 1e6));
	b = daemon_ticks();
	return (double)(b - a) / sysconf(_SC_CLK_TCK) / (now() - t0) * 100.0;
}

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return x < y ? -1 : x > y;
}

/* Cost of one ADD (REMOVE afterwards, untimed) and one empty WAIT on q. */
static void op_costs(int q, struct ukevent probe, double *add_us, double *wait_us)
{
	const int n = 2000;
	struct ukevent uk, w[1];
	double tadd = 0, t0;
	int i;

	for (i = 0; i < n; i++) {
		uk = probe;
		t0 = now();
		kctl(q, KEVENT_CTL_ADD, &uk, 1);
		tadd += now() - t0;
		uk = probe;
		kctl(q, KEVENT_CTL_REMOVE, &uk, 1);
	}
	*add_us = tadd / n * 1e6;
	t0 = now();
	for (i = 0; i < n; i++)
		kwait(q, w, 1, 0);
	*wait_us = (now() - t0) / n * 1e6;
}

static void row(const char *what, unsigned k, double add, double wait, double cpu,
		long rss0, long rss1, int fds)
{
	printf("| %-6s | %7u | %7.1f | %7.1f | %6.2f | %7.0f | %5d |\n", what, k, add, wait,
	       cpu, k ? (rss1 - rss0) * 1024.0 / k : 0.0, fds);
	fflush(stdout);
}

static void header(void)
{
	printf("| type   |       K | ADD us  | WAIT us | idle %% | B/kevent | fds  |\n");
	printf("|--------|---------|---------|---------|--------|---------|-------|\n");
}

static void bench_timers(unsigned kmax)
{
	static const unsigned ks[] = { 10, 1000, 10000, 100000 };
	struct ukevent *uks = calloc(PERQ, sizeof(*uks));
	int *qs = calloc(kmax / PERQ + 2, sizeof(int));
	unsigned have = 0, nq = 0, i, j;
	long rss0 = daemon_rss_kb();
	int probe_q = kopen();

	for (i = 0; i < sizeof(ks) / sizeof(ks[0]) && ks[i] <= kmax; i++) {
		double add, wait;

		while (have < ks[i]) {
			unsigned n = ks[i] - have < PERQ ? ks[i] - have : PERQ;

			if (nq == 0 || have % PERQ == 0)
				qs[nq++] = kopen();
			for (j = 0; j < n; j++)
				uks[j] = uk_make(KEVENT_TIMER, NEVER, KEVENT_TIMER_FIRED, have + j);
			if (kctl(qs[nq - 1], KEVENT_CTL_ADD, uks, n) != 0) {
				printf("timer ADD failed at %u: %s\n", have, strerror(errno));
				goto out;
			}
			have += n;
		}
		op_costs(probe_q, uk_make(KEVENT_TIMER, NEVER, KEVENT_TIMER_FIRED, 0xffffff), &add,
			 &wait);
		row("timer", have, add, wait, idle_cpu(3), rss0, daemon_rss_kb(), daemon_fds());
	}
out:
	for (i = 0; i < nq; i++)
		close(qs[i]);
	close(probe_q);
	free(qs);
	free(uks);
}

/* The parent's ends of the workers' pipes (a worker closes the others'). */
static int worker_downs[64], n_worker_downs;

/* A worker holding n sockets (n / 2 pairs), all watched for RECV. */
static pid_t socket_worker(unsigned n, int *ready_fd)
{
	int up[2], down[2];
	pid_t pid;

	if (pipe(up) || pipe(down))
		exit(1);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		struct rlimit rl;
		struct ukevent *uks = calloc(PERQ, sizeof(*uks));
		int *sk = calloc(n, sizeof(int));
		unsigned i, j;
		char c;

		close(up[0]);
		close(down[1]);
		for (i = 0; i < (unsigned)n_worker_downs; i++)
			close(worker_downs[i]);
		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		for (i = 0; i < n; i += 2) {
			int sv[2];

			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
				_exit(2);
			sk[i] = sv[0];
			sk[i + 1] = sv[1];
		}
		for (i = 0; i < n; i += PERQ) {
			int q = kopen();
			unsigned m = n - i < PERQ ? n - i : PERQ;

			for (j = 0; j < m; j++)
				uks[j] = uk_make(KEVENT_SOCKET, (unsigned)sk[i + j], KEVENT_SOCKET_RECV,
						 i + j);
			if (kctl(q, KEVENT_CTL_ADD, uks, m) != 0)
				_exit(3);
		}
		if (write(up[1], "r", 1) != 1)
			_exit(4);
		/* Hold everything until the parent closes the pipe. */
		while (read(down[0], &c, 1) > 0)
			;
		_exit(0);
	}
	close(up[1]);
	close(down[0]);
	{
		char c = 0;

		if (read(up[0], &c, 1) != 1 || c != 'r') {
			int st;

			waitpid(pid, &st, 0);
			printf("socket worker failed (status %d)\n", WEXITSTATUS(st));
			close(up[0]);
			close(down[1]);
			*ready_fd = -1;
			return -1;
		}
	}
	close(up[0]);
	*ready_fd = down[1];
	worker_downs[n_worker_downs++] = down[1];
	return pid;
}

static void bench_sockets(unsigned kmax)
{
	static const unsigned ks[] = { 10, 1000, 10000, 100000 };
	pid_t pids[64];
	int downs[64], nw = 0, sv[2];
	unsigned have = 0, i;
	long rss0 = daemon_rss_kb();
	int probe_q = kopen();

	socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
	for (i = 0; i < sizeof(ks) / sizeof(ks[0]) && ks[i] <= kmax; i++) {
		double add, wait;

		while (have < ks[i]) {
			unsigned n = ks[i] - have < WSOCK ? ks[i] - have : WSOCK;

			pids[nw] = socket_worker(n, &downs[nw]);
			if (pids[nw] < 0)
				goto out;
			nw++;
			have += n;
		}
		op_costs(probe_q, uk_make(KEVENT_SOCKET, (unsigned)sv[0], KEVENT_SOCKET_RECV, 0),
			 &add, &wait);
		row("socket", have, add, wait, idle_cpu(3), rss0, daemon_rss_kb(), daemon_fds());
	}
out:
	for (i = 0; i < (unsigned)nw; i++) {
		int st;

		close(downs[i]);
		waitpid(pids[i], &st, 0);
	}
	close(probe_q);
	close(sv[0]);
	close(sv[1]);
}

/* INODE: cost per ADD at the first 10 watches and at 3991..4000. */
static void bench_inode(void)
{
	char base[] = "/tmp/kevent-bench-inode.XXXXXX", path[128];
	const unsigned n = 4000;
	int *fds = calloc(n, sizeof(int));
	double t_first = 0, t_last = 0, t0;
	int q = kopen();
	unsigned i;

	if (!mkdtemp(base)) {
		perror("mkdtemp");
		return;
	}
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/d%u", base, i);
		mkdir(path, 0700);
		fds[i] = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	for (i = 0; i < n; i++) {
		struct ukevent uk = uk_make(KEVENT_INODE, (unsigned)fds[i],
					    KEVENT_INODE_CREATE | KEVENT_INODE_REMOVE, i);
		int q2 = q;

		if (i % PERQ == 0 && i)
			q2 = q = kopen();
		t0 = now();
		if (kctl(q2, KEVENT_CTL_ADD, &uk, 1) != 0) {
			printf("INODE ADD %u failed: %s\n", i, strerror(errno));
			break;
		}
		t0 = now() - t0;
		if (i < 10)
			t_first += t0;
		if (i >= n - 10)
			t_last += t0;
	}
	printf("| INODE watch setup | %.1f us at 10 watches | %.1f us at 4000 watches |\n",
	       t_first / 10 * 1e6, t_last / 10 * 1e6);
	/* The queues are released at exit; remove the tree. */
	for (i = 0; i < n; i++) {
		close(fds[i]);
		snprintf(path, sizeof(path), "%s/d%u", base, i);
		rmdir(path);
	}
	rmdir(base);
	free(fds);
}

static void percentiles(const char *what, long long *v, int n)
{
	qsort(v, n, sizeof(*v), cmp_ll);
	printf("| %-28s | %7.1f | %7.1f |\n", what, v[n / 2] / 1e3, v[n * 99 / 100] / 1e3);
}

/* Lateness of a 10 ms periodic timer: kevent TIMER vs timerfd. */
static void bench_lateness(void)
{
	const int n = 300;
	long long *v = calloc(n, sizeof(*v)), base, period = 10000000;
	struct ukevent uk, w[1];
	struct itimerspec its;
	int q = open(dev, O_RDWR), tfd, i;
	long long t1, t2;

	printf("| timer lateness (10 ms period) | p50 us | p99 us |\n|---|---|---|\n");
	/* timerfd, absolute grid. */
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	base = now_ns() + period;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = base / 1000000000;
	its.it_value.tv_nsec = base % 1000000000;
	its.it_interval.tv_nsec = period;
	timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
	for (i = 0; i < n; i++) {
		unsigned long long x;
		struct pollfd p = { tfd, POLLIN, 0 };

		poll(&p, 1, -1);
		t1 = now_ns();
		if (read(tfd, &x, sizeof(x)) != sizeof(x))
			break;
		v[i] = (t1 - base) % period;
	}
	close(tfd);
	percentiles("timerfd + poll", v, n);

	/* kevent: the grid starts one period after the ADD (midpoint). */
	uk = uk_make(KEVENT_TIMER, 10, KEVENT_TIMER_FIRED, 1);
	t1 = now_ns();
	kctl(q, KEVENT_CTL_ADD, &uk, 1);
	t2 = now_ns();
	base = (t1 + t2) / 2 + period;
	for (i = 0; i < n; i++) {
		if (kwait(q, w, 1, 1000) != 1)
			break;
		v[i] = (now_ns() - base) % period;
	}
	close(q);
	percentiles("kevent TIMER + WAIT", v, i > 0 ? i : 1);
	printf("(ADD took %.1f us: the kevent grid is known to +-%.1f us)\n", (t2 - t1) / 1e3,
	       (t2 - t1) / 2e3);
	free(v);
}

/* Batch work on 1000 sockets: kevent vs epoll in the caller. */
static void bench_batch(void)
{
	const unsigned n = 1000, rounds = 200;
	struct ukevent *uks = calloc(n, sizeof(*uks));
	struct epoll_event *evs = calloc(n, sizeof(*evs));
	int a[1000], b[1000], q = kopen(), ep, r;
	double t0, tk_add, te_add, tk_mw, te_mw, tk_w, te_w;
	unsigned i, k;

	for (i = 0; i < n; i++) {
		int sv[2];

		socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv);
		a[i] = sv[0];
		b[i] = sv[1];
	}
	/* ADD 1000 + REMOVE 1000 (nothing ready). */
	t0 = now();
	for (k = 0; k < rounds / 4; k++) {
		for (i = 0; i < n; i++)
			uks[i] = uk_make(KEVENT_SOCKET, (unsigned)a[i], KEVENT_SOCKET_RECV, i);
		if (kctl(q, KEVENT_CTL_ADD, uks, n) != 0)
			printf("batch ADD failed\n");
		for (i = 0; i < n; i++)
			uks[i] = uk_make(KEVENT_SOCKET, (unsigned)a[i], KEVENT_SOCKET_RECV, i);
		kctl(q, KEVENT_CTL_REMOVE, uks, n);
	}
	tk_add = now() - t0;
	ep = epoll_create1(EPOLL_CLOEXEC);
	t0 = now();
	for (k = 0; k < rounds / 4; k++) {
		for (i = 0; i < n; i++) {
			struct epoll_event e = { EPOLLIN | EPOLLRDHUP | EPOLLET, { .u64 = i } };

			epoll_ctl(ep, EPOLL_CTL_ADD, a[i], &e);
		}
		for (i = 0; i < n; i++)
			epoll_ctl(ep, EPOLL_CTL_DEL, a[i], NULL);
	}
	te_add = now() - t0;

	/* Register, make every socket readable, then MODIFY 1000 + WAIT 1000. */
	for (i = 0; i < n; i++)
		uks[i] = uk_make(KEVENT_SOCKET, (unsigned)a[i], KEVENT_SOCKET_RECV, i);
	kctl(q, KEVENT_CTL_ADD, uks, n);
	for (i = 0; i < n; i++)
		if (write(b[i], "x", 1) != 1)
			printf("write failed\n");
	usleep(100000);
	r = kwait(q, uks, n, 0);
	if (r != (int)n)
		printf("(first WAIT got %d of %u)\n", r, n);
	t0 = now();
	tk_w = 0;
	for (k = 0; k < rounds; k++) {
		double tw;

		for (i = 0; i < n; i++)
			uks[i] = uk_make(KEVENT_SOCKET, (unsigned)a[i], KEVENT_SOCKET_RECV, i);
		kctl(q, KEVENT_CTL_MODIFY, uks, n);
		tw = now();
		r = kwait(q, uks, n, 0);
		tk_w += now() - tw;
		if (r != (int)n) {
			printf("(MODIFY+WAIT round %u got %d)\n", k, r);
			break;
		}
	}
	tk_mw = now() - t0;
	for (i = 0; i < n; i++) {
		struct epoll_event e = { EPOLLIN | EPOLLONESHOT, { .u64 = i } };

		epoll_ctl(ep, EPOLL_CTL_ADD, a[i], &e);
	}
	epoll_wait(ep, evs, n, 0);
	t0 = now();
	for (k = 0; k < rounds; k++) {
		for (i = 0; i < n; i++) {
			struct epoll_event e = { EPOLLIN | EPOLLONESHOT, { .u64 = i } };

			epoll_ctl(ep, EPOLL_CTL_MOD, a[i], &e);
		}
		epoll_wait(ep, evs, n, 0);
	}
	te_mw = now() - t0;
	/* Level-triggered epoll_wait of 1000 ready. */
	for (i = 0; i < n; i++) {
		struct epoll_event e = { EPOLLIN, { .u64 = i } };

		epoll_ctl(ep, EPOLL_CTL_MOD, a[i], &e);
	}
	t0 = now();
	for (k = 0; k < rounds; k++)
		epoll_wait(ep, evs, n, 0);
	te_w = now() - t0;

	printf("| batch of 1000 SOCKET | kevent M/s | epoll M/s | kevent/epoll |\n|---|---|---|---|\n");
	printf("| ADD + REMOVE          | %6.2f | %6.2f | %.2fx |\n", n * (rounds / 4) / tk_add / 1e6,
	       n * (rounds / 4) / te_add / 1e6, te_add / tk_add);
	printf("| MODIFY + WAIT (re-arm) | %6.2f | %6.2f | %.2fx |\n", n * rounds / tk_mw / 1e6,
	       n * rounds / te_mw / 1e6, te_mw / tk_mw);
	printf("| WAIT of 1000 ready     | %6.2f | %6.2f | %.2fx |\n", n * rounds / tk_w / 1e6,
	       n * rounds / te_w / 1e6, te_w / tk_w);
	close(ep);
	close(q);
	for (i = 0; i < n; i++) {
		close(a[i]);
		close(b[i]);
	}
	free(uks);
	free(evs);
}

int main(int argc, char **argv)
{
	unsigned kmax;
	struct rlimit rl;

	if (argc < 3) {
		fprintf(stderr, "usage: bench_scale DEVPATH DAEMON_PID [KMAX]\n");
		return 2;
	}
	dev = argv[1];
	dpid = atoi(argv[2]);
	kmax = argc > 3 ? (unsigned)atoi(argv[3]) : 100000;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	signal(SIGPIPE, SIG_IGN);

	printf("daemon pid %d: %ld KiB RSS, %d fds, %.2f%% CPU idle\n\n", dpid, daemon_rss_kb(),
	       daemon_fds(), idle_cpu(2));
	header();
	bench_timers(kmax);
	bench_sockets(kmax);
	printf("\n");
	bench_inode();
	printf("\n");
	bench_lateness();
	printf("\n");
	bench_batch();
	return 0;
}
