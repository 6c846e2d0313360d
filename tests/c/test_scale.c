/*
 * test_scale - one daemon holds 100,000 TIMER kevents (100 queues of 1000)
 * and 20,000 SOCKET kevents (20 queues of 1000, on both ends of 10,000
 * socket pairs) at the same time.  Exactly the few short timers and the
 * sockets that were written to are delivered, each once and with its own
 * user data; closing one watched socket among the 20,000 gives its kevent
 * BROKEN|DONE within a second.  The daemon needs no descriptor per kevent
 * for either type (README, "Scale").
 *
 * The sockets are held by two child processes of 10,000 each, so that no
 * process needs more than ~10,200 descriptors (a container may not let
 * root raise the hard RLIMIT_NOFILE); all 120,000 kevents are registered
 * at the same time before anything is delivered.
 */

#include "testutil.h"

#include <sys/resource.h>
#include <sys/socket.h>

#define PERQ	1000u		/* kevents per queue (below the 1023 limit) */
#define NTQ	100u		/* timer queues: 100,000 timers */
#define NPAIR	10000u		/* socket pairs: 20,000 sockets */
#define NSQ	(2u * NPAIR / PERQ)	/* socket queues */
#define NW	2u		/* socket worker processes */
#define WSOCK	(2u * NPAIR / NW)	/* sockets per worker */
#define WQ	(NSQ / NW)		/* socket queues per worker */
#define SHORT_MS 100u		/* the few timers that fire */
#define TMAGIC	0x7133e5u
/* WAIT timeout 0 sleeps up to a second (docs/ABI.md): "ready now?" is 1 ms. */
#define SMAGIC	0x5ca1e5u

static int tq[NTQ];
/* In a worker: its queues and sockets; socket n (global) is
 * sk[n - base], in queue sq[(n - base) / PERQ]; n and n ^ 1 are a pair. */
static int sq[WQ];
static int sk[WSOCK];
static unsigned base;

/* Timer j of queue q fires if it is one of the ten short ones. */
static int short_timer(unsigned q, unsigned j)
{
	return q % 10 == 3 && j == 500;
}

/* Socket n is written to (through its peer n ^ 1). */
static int chosen(unsigned n)
{
	return n % 997 == 5;
}

static int add_batch(int kfd, struct ukevent *uks, unsigned n)
{
	struct kevent_user_control h;
	int r = k_ctl(kfd, KEVENT_CTL_ADD, uks, n, &h);

	if (r != 0 || h.num != 0) {
		t_note("ADD: ret %d (%s), num %u", r, r < 0 ? strerror(errno) : "-", h.num);
		return -1;
	}
	return 0;
}

/*
 * Collects socket events from every socket queue until want arrived or
 * limit_ms passed; each must be distinct, carry SMAGIC and ret_flags
 * flags, and satisfy ok(user[0]).  Returns the count, -1 on a bad one.
 */
static int collect_sockets(unsigned want, __u32 flags, int (*ok)(unsigned),
			   long limit_ms, unsigned char *seen)
{
	struct ukevent ev[64];
	long long t0 = now_ms();
	unsigned got = 0, q;
	int bad = 0;

	memset(seen, 0, 2 * NPAIR);
	while (got < want && now_ms() - t0 < limit_ms) {
		int any = 0;

		for (q = 0; q < WQ; q++) {
			int r = k_wait(sq[q], ev, 64, 1);

			for (int i = 0; i < r; i++) {
				unsigned u = ev[i].user[0];

				any = 1;
				if (u >= 2 * NPAIR || seen[u] || !ok(u) ||
				    ev[i].ret_flags != flags || ev[i].user[1] != SMAGIC ||
				    u < base || (u - base) / PERQ != q) {
					t_note("bad event: user %u queue %u flags 0x%x", u, q,
					       ev[i].ret_flags);
					bad = 1;
					continue;
				}
				seen[u] = 1;
				got++;
			}
		}
		if (!any)
			sleep_ms(10);
	}
	return bad ? -1 : (int)got;
}

static unsigned nothing_ready(const int *qs, unsigned n)
{
	struct ukevent ev[4];
	unsigned q, quiet = 0;

	for (q = 0; q < n; q++)
		quiet += k_wait(qs[q], ev, 4, 1) == 0;
	return quiet;
}

static int is_chosen(unsigned n) { return chosen(n); }

static unsigned n_chosen(void)
{
	unsigned n, c = 0;

	for (n = base; n < base + WSOCK; n++)
		c += chosen(n);
	return c;
}

/* Raises the soft (and if allowed the hard) descriptor limit to need. */
static void want_nofile(rlim_t need)
{
	struct rlimit rl;

	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur >= need)
		return;
	rl.rlim_cur = need;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		rl.rlim_max = need;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
		t_note("setrlimit(%lu): %s", (unsigned long)need, strerror(errno));
		t_skip_all("cannot raise RLIMIT_NOFILE to 10,200");
	}
}

static char sync_read(int fd)
{
	char c = 0;

	while (read(fd, &c, 1) < 0 && errno == EINTR)
		;
	return c;
}

/*
 * Worker w: registers its 10,000 sockets, reports 'r' (or 'f') on up, waits
 * for 'g' on down, then checks deliveries and (worker 1) the close.
 */
static int socket_worker(unsigned w, int up, int down)
{
	struct ukevent *uks = calloc(PERQ, sizeof(*uks));
	static unsigned char seen[2 * NPAIR];
	unsigned q, j, n, ok = 1;
	long long t0;

	base = w * WSOCK;
	want_nofile(WSOCK + NTQ + WQ + 64);
	for (n = 0; n < WSOCK; n += 2) {
		int sv[2];

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) < 0) {
			t_note("socketpair %u: %s", n, strerror(errno));
			ok = 0;
			break;
		}
		sk[n] = sv[0];
		sk[n + 1] = sv[1];
	}
	t0 = now_ms();
	for (q = 0; q < WQ && ok; q++) {
		sq[q] = dev_open(t_dev, O_RDWR);
		for (j = 0; j < PERQ; j++) {
			n = base + q * PERQ + j;
			uks[j] = uk_make(KEVENT_SOCKET, (__u32)sk[n - base], KEVENT_SOCKET_RECV, 0,
					 n, SMAGIC);
		}
		ok &= add_batch(sq[q], uks, PERQ) == 0;
	}
	CHECK(ok, "worker: 10,000 SOCKET kevents registered (10 ADDs of 1000)");
	t_note("worker %u: socket ADDs took %lld ms", w, now_ms() - t0);
	if (write(up, ok ? "r" : "f", 1) != 1 || sync_read(down) != 'g')
		return 1;

	/* Write to the peers of the chosen sockets. */
	CHECK_EQ(nothing_ready(sq, WQ), WQ, "worker: no socket event before any write");
	for (n = base, ok = 1; n < base + WSOCK; n++)
		if (chosen(n))
			ok &= send(sk[(n ^ 1) - base], "x", 1, 0) == 1;
	CHECK(ok, "worker: the peers of the chosen sockets wrote one byte");
	CHECK_EQ(collect_sockets(n_chosen(), KEVENT_RET_DONE, is_chosen, 10000 + t_slack, seen),
		 (int)n_chosen(), "worker: exactly the chosen sockets' RECV delivered, each once");
	sleep_ms(100);
	CHECK_EQ(nothing_ready(sq, WQ), WQ, "worker: and nothing else");

	/* Close one watched socket among the 20,000. */
	if (w == 1) {
		const unsigned victim = 12344;	/* not chosen; its peer is 12345 */
		struct ukevent ev[4];
		unsigned got = 0, broken = 0, peer = 0;
		int qv = sq[(victim - base) / PERQ];

		t0 = now_ms();
		close(sk[victim - base]);
		sk[victim - base] = -1;
		while (got < 2 && now_ms() - t0 < 5000 + t_slack) {
			int r = k_wait(qv, ev, 2 - got, 200);

			for (int i = 0; i < r; i++, got++) {
				if (ev[i].user[0] == victim &&
				    ev[i].ret_flags == (KEVENT_RET_BROKEN | KEVENT_RET_DONE))
					broken++;
				else if (ev[i].user[0] == (victim ^ 1) &&
					 ev[i].ret_flags == KEVENT_RET_DONE)
					peer++;
				else
					t_note("unexpected: user %u flags 0x%x", ev[i].user[0],
					       ev[i].ret_flags);
			}
		}
		CHECK_EQ(broken, 1, "the closed socket's kevent: BROKEN|DONE");
		CHECK_TIME(now_ms() - t0, 0, 1000, "within one second of the close");
		CHECK_EQ(peer, 1, "its peer's RECV kevent: DONE (end of file)");
		CHECK_EQ(got, 2, "no other event");
		sleep_ms(100);
		CHECK_EQ(nothing_ready(sq, WQ), WQ, "the other sockets stay quiet");
	}

	/* Queues first (their kevents go), then the sockets. */
	for (q = 0; q < WQ; q++)
		close(sq[q]);
	for (n = 0; n < WSOCK; n++)
		if (sk[n] >= 0)
			close(sk[n]);
	free(uks);
	return t_done();
}

int main(int argc, char **argv)
{
	struct ukevent *uks = calloc(PERQ, sizeof(*uks));
	unsigned q, j, w, fired = 0, ok = 1;
	int up[2], down[2];
	pid_t pid[NW];
	long long t0;

	t_init(argc, argv, "test_scale");
	alarm(300);
	want_nofile(NTQ + 64);

	/* 100,000 timers: ten of them short, the rest far in the future. */
	t0 = now_ms();
	for (q = 0; q < NTQ && ok; q++) {
		tq[q] = dev_open(t_dev, O_RDWR);
		for (j = 0; j < PERQ; j++)
			uks[j] = uk_timer(short_timer(q, j) ? SHORT_MS : NEVER_MS, 0,
					  q * PERQ + j, TMAGIC);
		ok &= add_batch(tq[q], uks, PERQ) == 0;
	}
	CHECK(ok, "100,000 TIMER kevents registered (100 ADDs of 1000)");
	t_note("timer ADDs took %lld ms", now_ms() - t0);

	/* 20,000 sockets in two workers; all registered before going on. */
	if (pipe2(up, O_CLOEXEC) || pipe2(down, O_CLOEXEC))
		t_skip_all("pipe2 failed");
	for (w = 0; w < NW; w++) {
		pid[w] = t_fork();
		if (pid[w] == 0) {
			close(up[0]);
			close(down[1]);
			_exit(socket_worker(w, up[1], down[0]));
		}
	}
	close(up[1]);
	close(down[0]);
	for (w = 0, ok = 1; w < NW; w++)
		ok &= sync_read(up[0]) == 'r';
	CHECK(ok, "20,000 SOCKET and 100,000 TIMER kevents registered at once");

	/* The ten short timers fire, nothing else. */
	for (q = 0, ok = 1; q < NTQ; q++) {
		struct ukevent ev[4];
		int want = q % 10 == 3, r;

		r = k_wait(tq[q], ev, want ? 1 : 4, want ? 2000 + (unsigned)t_slack : 1);
		if (r != want) {
			t_note("timer queue %u: %d events, expected %d", q, r, want);
			ok = 0;
			continue;
		}
		if (want) {
			ok &= ev[0].user[0] == q * PERQ + 500 && ev[0].user[1] == TMAGIC &&
			      ev[0].ret_flags == KEVENT_RET_DONE && ev[0].ret_data[1] >= 1 &&
			      ev[0].id.raw[0] == SHORT_MS;
			fired++;
		}
	}
	CHECK(ok, "exactly the short timers are delivered, each with its own key and user data");
	CHECK_EQ(fired, 10, "ten timer deliveries");
	/* Each short timer fires again; none of the others. */
	sleep_ms(3 * SHORT_MS);
	for (q = 0, ok = 1; q < NTQ; q++) {
		struct ukevent ev[4];
		int want = q % 10 == 3;
		int r = k_wait(tq[q], ev, want ? 1 : 4, want ? 2000 + (unsigned)t_slack : 1);

		ok &= r == want && (r == 0 || ev[0].user[0] == q * PERQ + 500);
	}
	CHECK(ok, "periodic: the short ones again, the long ones still quiet");

	/* The workers check their sockets. */
	for (w = 0; w < NW; w++)
		if (write(down[1], "gg", 1) != 1)
			t_note("write to the workers failed");
	for (w = 0, ok = 1; w < NW; w++) {
		int st = -1;

		t_reap(pid[w], &st, 120000);
		ok &= st == 0;
	}
	CHECK(ok, "both socket workers passed");

	for (q = 0; q < NTQ; q++)
		close(tq[q]);
	free(uks);
	return t_done();
}
